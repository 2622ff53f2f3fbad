mod common;

#[test]
fn every_corpus_log_decodes() {
    for p in common::corpus_logs() {
        let bytes = std::fs::read(&p).unwrap();
        let d = common::decode_all(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        eprintln!(
            "{}: {} headers {} blocks {} events {} data ends",
            p.display(),
            d.headers.len(),
            d.blocks.len(),
            d.events.len(),
            d.data_ends
        );
    }
}
