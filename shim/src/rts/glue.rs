//! The C glue's functions (`csrc/rts_glue.c`): the shim's only contact with
//! the RTS. Every RTS symbol behind them is a weak reference, NULL-checked in C.

use std::ffi::{c_int, c_long, c_uint, c_void};

extern "C" {
    pub fn elstream_glue_rts_present() -> c_int;
    pub fn elstream_glue_eventlog_running() -> c_int;
    pub fn elstream_glue_generation() -> c_int;
    pub fn elstream_glue_has_switches() -> c_int;
    pub fn elstream_glue_has_trace_flags() -> c_int;
    pub fn elstream_glue_can_stop_world() -> c_int;
    pub fn elstream_glue_can_post_state() -> c_int;
    pub fn elstream_glue_can_list_threads() -> c_int;
    pub fn elstream_glue_patched_api() -> c_int;
    pub fn elstream_glue_scheduler_running() -> c_int;
    pub fn elstream_glue_get_classes() -> c_uint;
    pub fn elstream_glue_set_classes(classes: c_uint) -> c_int;
    pub fn elstream_glue_get_trace_flags() -> c_uint;
    pub fn elstream_glue_set_trace_flags(classes: c_uint);
    pub fn elstream_glue_gc_stats_collected() -> c_int;
    pub fn elstream_glue_stopped_world(
        ops: c_uint,
        writer: *const c_void,
        classes: c_uint,
    ) -> c_int;
    pub fn elstream_glue_start(writer: *const c_void) -> c_int;
    pub fn elstream_glue_end();
    pub fn elstream_glue_start_unlocked(writer: *const c_void) -> c_int;
    pub fn elstream_glue_end_unlocked();
    pub fn elstream_glue_public_flush_api() -> c_int;
    pub fn elstream_glue_public_flush();
    pub fn elstream_glue_patched_flush();
    pub fn elstream_glue_patched_set_classes(classes: c_uint) -> c_int;
    pub fn elstream_glue_patched_resync();
    pub fn elstream_glue_threads_buffer(ids: *mut u64, cap: c_long);
    pub fn elstream_glue_threads(ids: *mut *const u64) -> c_long;
    pub fn elstream_glue_labels_buffer(buf: *mut u8, cap: c_long);
    pub fn elstream_glue_labels(out: *mut *const u8) -> c_long;
    pub fn elstream_glue_heap_census_available() -> c_int;
    pub fn elstream_glue_heap_timer_available() -> c_int;
    pub fn elstream_glue_heap_census();
    pub fn elstream_glue_heap_timer(on: c_int);
    pub fn elstream_glue_thread_done();
    pub fn elstream_glue_n_capabilities() -> c_uint;
}

pub(super) const OP_END: u32 = 1;
pub(super) const OP_START: u32 = 2;
pub(super) const OP_SET_CLASSES: u32 = 4;
pub(super) const OP_POST_STATE: u32 = 8;
pub(super) const OP_FLUSH: u32 = 16;
pub(super) const OP_THREADS: u32 = 32;
pub(super) const OP_POST_CAPS: u32 = 64;
