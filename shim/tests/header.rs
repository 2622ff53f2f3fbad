//! The checked-in include/elstream.h must be what cbindgen makes of the shim now.

use std::path::Path;

#[test]
fn header_is_fresh() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not read the shim")
        .write(&mut generated);
    // Only the public API: the C glue's functions are the shim's own business.
    let text = String::from_utf8_lossy(&generated);
    for internal in ["elstream_glue_", "elstream_rts_exiting"] {
        assert!(
            !text.contains(internal),
            "{internal}* leaked into the header: add it to [export] exclude in shim/cbindgen.toml"
        );
    }
    let path = crate_dir.join("../include/elstream.h");
    if std::env::var_os("ELSTREAM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let current = std::fs::read(&path).unwrap_or_default();
    assert!(
        current == generated,
        "include/elstream.h is stale: run `ELSTREAM_BLESS=1 cargo test -p elstream-shim --test header`"
    );
}
