//! Example elstream proxy plugin in Rust (ABI: include/elstream_plugin.h).
//! Prints one line per GC to stdout:
//!
//! ```text
//! gcstats cap=0 pause_ns=123456 gen=1 copied=40960
//! ```
//!
//! CONFIG: `panic` makes on_block panic, to show that a panic is caught here
//! and reported as an error, which disables the plugin and not the proxy.
//! A panic must never unwind out of an `extern "C"` function (the process
//! would abort), so every callback runs inside `catch_unwind`.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

use elstream_format::eventlog::{
    events, Header, EVENT_BLOCK_MARKER, EVENT_GC_END, EVENT_GC_START, EVENT_GC_STATS_GHC,
};

#[repr(C)]
pub struct VtableV1 {
    abi_version: u32,
    name: *const c_char,
    init: unsafe extern "C" fn(*const c_char, *mut c_char, usize) -> *mut c_void,
    on_header: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> c_int,
    on_block: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> c_int,
    on_drop: unsafe extern "C" fn(*mut c_void, u64, u64) -> c_int,
    on_stop: unsafe extern "C" fn(*mut c_void) -> c_int,
    fini: unsafe extern "C" fn(*mut c_void),
}

// SAFETY: the vtable is immutable; the name points to a static string.
unsafe impl Sync for VtableV1 {}

struct Plugin {
    panic_on_block: bool,
    header: Option<Header>,
    /// GC start time per capability (u16::MAX: the global buffer).
    started: HashMap<u16, u64>,
    /// GC statistics waiting for the matching GC end, per capability.
    stats: HashMap<u16, (u16, u64)>,
}

impl Plugin {
    fn block(&mut self, block: &[u8]) {
        if self.panic_on_block {
            panic!("asked to panic (config \"panic\")");
        }
        let Some(h) = &self.header else { return };
        let mut cap = u16::MAX;
        let mut out = std::io::stdout().lock();
        for ev in events(h, block).map_while(Result::ok) {
            let p = ev.payload;
            match ev.ty {
                EVENT_BLOCK_MARKER if p.len() >= 14 => cap = u16::from_be_bytes([p[12], p[13]]),
                EVENT_GC_START => {
                    self.started.insert(cap, ev.time);
                }
                // capset u32, gen u16, copied u64, ...
                EVENT_GC_STATS_GHC if p.len() >= 14 => {
                    let gen = u16::from_be_bytes([p[4], p[5]]);
                    let copied = u64::from_be_bytes(p[6..14].try_into().expect("8 bytes"));
                    self.stats.insert(cap, (gen, copied));
                }
                EVENT_GC_END => {
                    if let Some(t0) = self.started.remove(&cap) {
                        let (gen, copied) = self.stats.remove(&cap).unwrap_or((0, 0));
                        let cap = if cap == u16::MAX { -1 } else { cap as i32 };
                        let _ = writeln!(
                            out,
                            "gcstats cap={cap} pause_ns={} gen={gen} copied={copied}",
                            ev.time.saturating_sub(t0)
                        );
                    }
                }
                _ => {}
            }
        }
        let _ = out.flush();
    }
}

/// Runs a callback, turning a panic into an error return.
fn guard(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(-1)
}

unsafe extern "C" fn init(config: *const c_char, err: *mut c_char, err_len: usize) -> *mut c_void {
    // SAFETY: the proxy passes a NUL-terminated config.
    let config = unsafe { CStr::from_ptr(config) }.to_string_lossy();
    if !config.is_empty() && config != "panic" {
        let msg = format!("unknown config {config:?} (expected nothing or \"panic\")");
        let n = msg.len().min(err_len);
        // SAFETY: the proxy gives err_len writable bytes plus one for the NUL.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), err as *mut u8, n);
            *err.add(n) = 0;
        }
        return std::ptr::null_mut();
    }
    Box::into_raw(Box::new(Plugin {
        panic_on_block: config == "panic",
        header: None,
        started: HashMap::new(),
        stats: HashMap::new(),
    })) as *mut c_void
}

/// # Safety
/// `ctx` comes from `init`; `(b, len)` is a valid byte range.
unsafe fn parts<'a>(ctx: *mut c_void, b: *const u8, len: usize) -> (&'a mut Plugin, &'a [u8]) {
    // SAFETY: the caller's contract.
    unsafe {
        (
            &mut *(ctx as *mut Plugin),
            std::slice::from_raw_parts(b, len),
        )
    }
}

unsafe extern "C" fn on_header(ctx: *mut c_void, b: *const u8, len: usize) -> c_int {
    guard(|| {
        // SAFETY: the ABI's contract.
        let (p, bytes) = unsafe { parts(ctx, b, len) };
        match Header::parse(bytes) {
            Ok(h) => {
                p.header = Some(h);
                0
            }
            Err(_) => -2,
        }
    })
}

unsafe extern "C" fn on_block(ctx: *mut c_void, b: *const u8, len: usize) -> c_int {
    guard(|| {
        // SAFETY: the ABI's contract.
        let (p, bytes) = unsafe { parts(ctx, b, len) };
        p.block(bytes);
        0
    })
}

unsafe extern "C" fn on_drop(ctx: *mut c_void, _blocks: u64, _bytes: u64) -> c_int {
    guard(|| {
        // SAFETY: ctx comes from init.
        let p = unsafe { &mut *(ctx as *mut Plugin) };
        p.started.clear();
        p.stats.clear();
        0
    })
}

unsafe extern "C" fn on_stop(ctx: *mut c_void) -> c_int {
    guard(|| {
        // SAFETY: ctx comes from init.
        let p = unsafe { &mut *(ctx as *mut Plugin) };
        p.header = None;
        println!("gcstats session-end");
        0
    })
}

unsafe extern "C" fn fini(ctx: *mut c_void) {
    // SAFETY: ctx comes from init and is not used after fini.
    drop(unsafe { Box::from_raw(ctx as *mut Plugin) });
}

static VTABLE: VtableV1 = VtableV1 {
    abi_version: 1,
    name: c"rust-gc-stats".as_ptr(),
    init,
    on_header,
    on_block,
    on_drop,
    on_stop,
    fini,
};

/// The plugin's entry point.
#[no_mangle]
pub extern "C" fn elstream_plugin_v1() -> *const VtableV1 {
    &VTABLE
}
