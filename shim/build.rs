fn main() {
    println!("cargo:rerun-if-changed=csrc/rts_glue.c");
    cc::Build::new()
        .file("csrc/rts_glue.c")
        .warnings(true)
        .flag_if_supported("-Wno-unused-parameter")
        .compile("elstream_rts_glue");
}
