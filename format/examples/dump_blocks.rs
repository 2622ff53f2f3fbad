//! Prints the frames of an eventlog file (a debugging aid).
use elstream_format::eventlog::{BlockMarker, Frame, StreamDecoder};

fn main() {
    let path = std::env::args().nth(1).expect("usage: dump_blocks FILE");
    let bytes = std::fs::read(&path).expect("read");
    let mut d = StreamDecoder::new();
    d.push(&bytes);
    let mut off = 0usize;
    while let Some(f) = d.finish().expect("decode") {
        match f {
            Frame::Header(h) => {
                println!(
                    "{off}: header {} bytes, {} types",
                    h.raw.len(),
                    h.types.len()
                );
                off += h.raw.len();
            }
            Frame::DataEnd => {
                println!("{off}: data end");
                off += 2;
            }
            Frame::Block(b) => {
                let m = BlockMarker::parse(&b.bytes);
                println!(
                    "{off}: block {} bytes cap {} events {} time {}..{} marker {:?}",
                    b.bytes.len(),
                    b.cap,
                    b.events,
                    b.start_time,
                    b.end_time,
                    m
                );
                off += b.bytes.len();
            }
        }
    }
}
