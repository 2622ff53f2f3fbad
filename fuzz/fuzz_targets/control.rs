//! Feeds arbitrary bytes, in varying chunks, to the control-frame decoder the
//! shim's control socket uses, and parses every decoded frame as a command.
//! Must never panic, and the decoder's memory must stay bounded by one frame
//! however long the byte stream is (a counting allocator checks what it keeps).
//! Run: `cargo +nightly fuzz run control fuzz/corpus/control`.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use elstream_format::control::{
    encode, ClassChange, Command, ControlDecoder, FRAME_HEADER, MAX_PAYLOAD,
};
use elstream_format::eventlog::ClassSet;
use libfuzzer_sys::fuzz_target;

/// Counts live heap bytes of Rust allocations (libFuzzer's own use malloc directly).
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwards to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Between pushes the decoder keeps at most one unfinished frame plus the
/// chunk just pushed (Vec growth may double that). The stream replayed can be
/// 16 MiB long, so a decoder that buffers without bound goes over this.
const BOUND: usize = 2 * (FRAME_HEADER + MAX_PAYLOAD + 256) + 4096;

fuzz_target!(|data: &[u8]| {
    // data[0]: chunk size; data[1]: how often the rest is replayed (a long
    // stream from a short input, to see that memory does not grow with it).
    if data.len() < 2 {
        return;
    }
    let chunk = 1 + data[0] as usize;
    let repeats = if data[1] >= 0xf0 {
        256 * (data[1] - 0xef) as usize
    } else {
        1
    };
    let stream = &data[2..];

    let base = LIVE.load(Relaxed);
    let mut d = ControlDecoder::new();
    let mut failed = false;
    for _ in 0..repeats {
        for c in stream.chunks(chunk) {
            // After an error the connection is closed in real use; keep pushing
            // here anyway: a failed decoder must not buffer.
            d.push(c);
            if failed {
                assert!(d.next_frame().is_err(), "decoder errors must stick");
                continue;
            }
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        assert!(f.text.len() <= MAX_PAYLOAD);
                        // Re-encoding a decoded frame gives the same frame back.
                        let mut again = ControlDecoder::new();
                        again.push(&encode(f.kind, f.status, &f.text));
                        assert_eq!(again.next_frame(), Ok(Some(f.clone())));
                        if let Ok(Command::Classes(change)) = Command::parse(&f.text) {
                            let set = change.apply(ClassSet::DEFAULT);
                            if let ClassChange::Set(s) = change {
                                assert_eq!(set, s);
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            let kept = LIVE.load(Relaxed).wrapping_sub(base);
            assert!(
                kept <= BOUND,
                "control decoder keeps {kept} bytes > {BOUND}"
            );
        }
    }
});
