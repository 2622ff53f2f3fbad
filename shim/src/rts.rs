//! Safe wrappers over `csrc/rts_glue.c`: what the RTS this program was linked
//! with lets the shim do, and the stopped-world operations.

use elstream_format::{Class, ClassSet};

use crate::error::Error;
use crate::writer::EventLogWriter;

mod glue {
    use std::ffi::{c_int, c_uint, c_void};
    extern "C" {
        pub fn elstream_glue_rts_present() -> c_int;
        pub fn elstream_glue_eventlog_running() -> c_int;
        pub fn elstream_glue_has_switches() -> c_int;
        pub fn elstream_glue_can_stop_world() -> c_int;
        pub fn elstream_glue_patched_api() -> c_int;
        pub fn elstream_glue_scheduler_running() -> c_int;
        pub fn elstream_glue_get_classes() -> c_uint;
        pub fn elstream_glue_stopped_world(
            ops: c_uint,
            writer: *const c_void,
            classes: c_uint,
        ) -> c_int;
        pub fn elstream_glue_start_unlocked(writer: *const c_void) -> c_int;
        pub fn elstream_glue_end_unlocked();
        pub fn elstream_glue_thread_done();
    }
}

const OP_END: u32 = 1;
const OP_START: u32 = 2;
const OP_SET_CLASSES: u32 = 4;

/// The class bits shared with the C glue, in `s g n p f u` order.
const CLASS_BITS: [(Class, u32); 6] = [
    (Class::Scheduler, 1),
    (Class::Gc, 2),
    (Class::NonmovingGc, 4),
    (Class::SparksSampled, 8),
    (Class::SparksFull, 16),
    (Class::User, 32),
];

fn to_mask(set: ClassSet) -> u32 {
    CLASS_BITS
        .iter()
        .filter(|(c, _)| set.contains(*c))
        .map(|(_, b)| b)
        .sum()
}

fn from_mask(mask: u32) -> ClassSet {
    let letters: String = CLASS_BITS
        .iter()
        .filter(|(_, b)| mask & b != 0)
        .map(|(c, _)| c.letter())
        .collect();
    ClassSet::parse(&letters).unwrap_or(ClassSet::DEFAULT)
}

/// What the linked RTS offers, found once at start.
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    /// The public eventlog API is there (an `-eventlog` RTS).
    pub rts: bool,
    /// Hidden `TRACE_*` switches reachable (static link).
    pub switches: bool,
    /// Stop-the-world reachable (static link, threaded RTS).
    pub stop_world: bool,
    /// Level of the patched RTS API (ghc-patches/), 0 on stock GHC.
    pub patched: i32,
}

pub fn probe() -> Capabilities {
    // SAFETY: the probes only compare weak symbol addresses with NULL and call
    // RTS functions that are safe at any time after hs_init.
    unsafe {
        Capabilities {
            rts: glue::elstream_glue_rts_present() != 0,
            switches: glue::elstream_glue_has_switches() != 0,
            stop_world: glue::elstream_glue_can_stop_world() != 0,
            patched: glue::elstream_glue_patched_api(),
        }
    }
}

pub fn eventlog_running() -> bool {
    // SAFETY: eventLogStatus reads one RTS flag.
    unsafe { glue::elstream_glue_eventlog_running() != 0 }
}

pub fn scheduler_running() -> bool {
    // SAFETY: reads the RTS's scheduler state word (NULL-checked).
    unsafe { glue::elstream_glue_scheduler_running() != 0 }
}

/// The classes the RTS currently traces, if the switches are reachable.
pub fn classes() -> Option<ClassSet> {
    // SAFETY: plain reads of RTS ints, NULL-checked in C.
    unsafe {
        (glue::elstream_glue_has_switches() != 0)
            .then(|| from_mask(glue::elstream_glue_get_classes()))
    }
}

/// Runs `ops` with every capability stopped, on a thread of our own: the
/// calling thread may be a Haskell thread inside a safe foreign call.
fn stopped_world(
    ops: u32,
    writer: Option<&'static EventLogWriter>,
    classes: ClassSet,
) -> Result<(), Error> {
    let writer_addr = writer.map_or(0usize, |w| w as *const EventLogWriter as usize);
    let mask = to_mask(classes);
    let rc = std::thread::Builder::new()
        .name("elstream-rts".into())
        .spawn(move || {
            // SAFETY: this thread holds no capability; the glue checks that the
            // scheduler runs and the hidden functions exist before rts_lock.
            let rc = unsafe {
                glue::elstream_glue_stopped_world(ops, writer_addr as *const std::ffi::c_void, mask)
            };
            // SAFETY: frees the RTS task rts_lock made for this thread.
            unsafe { glue::elstream_glue_thread_done() };
            rc
        })
        .map_err(|e| Error::Rts(format!("cannot start a thread: {e}")))?
        .join()
        .map_err(|_| Error::Panic("stop-the-world thread panicked".into()))?;
    match rc {
        0 => Ok(()),
        -1 => Err(Error::Rts(
            "the RTS cannot be stopped from here (not a static -threaded -eventlog link)".into(),
        )),
        -2 => Err(Error::Rts("the RTS is shutting down".into())),
        _ => Err(Error::Rts(
            "startEventLogging refused (another writer is running)".into(),
        )),
    }
}

/// Starts `writer` in place of any running writer (the `+RTS -l` file), and
/// sets `classes` if `set_classes`.
pub fn take_over(
    caps: Capabilities,
    writer: &'static EventLogWriter,
    classes: Option<ClassSet>,
) -> Result<(), Error> {
    if caps.stop_world {
        let ops = OP_END | OP_START | if classes.is_some() { OP_SET_CLASSES } else { 0 };
        return stopped_world(ops, Some(writer), classes.unwrap_or(ClassSet::DEFAULT));
    }
    if eventlog_running() {
        return Err(Error::Rts(
            "the eventlog is already being written (+RTS -l) and this link cannot stop the RTS \
             safely to take over; link libelstream.a statically, or use RtsConfig.eventlog_writer = \
             elstream_writer() from a C main"
                .into(),
        ));
    }
    // SAFETY: startEventLogging with a writer that lives for the whole program.
    match unsafe { glue::elstream_glue_start_unlocked(writer as *const EventLogWriter as *const _) }
    {
        0 => Ok(()),
        _ => Err(Error::Rts(
            "startEventLogging failed (RTS built without -eventlog?)".into(),
        )),
    }
}

/// Ends the eventlog session (every buffer written out, then the writer's stop).
pub fn end(caps: Capabilities) -> Result<(), Error> {
    if caps.stop_world {
        return stopped_world(OP_END, None, ClassSet::DEFAULT);
    }
    // SAFETY: endEventLogging; racy only against capabilities posting events,
    // which a shared-library link cannot prevent (documented).
    unsafe { glue::elstream_glue_end_unlocked() };
    Ok(())
}

/// Writes out every capability buffer now: end + restart with the same writer.
pub fn flush(writer: &'static EventLogWriter) -> Result<(), Error> {
    stopped_world(OP_END | OP_START, Some(writer), ClassSet::DEFAULT)
}

/// Sets the RTS's event classes with the world stopped.
pub fn set_classes(classes: ClassSet) -> Result<(), Error> {
    stopped_world(OP_SET_CLASSES, None, classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_masks_round_trip() {
        for letters in ["", "s", "gu", "sgpu", "sgnpfu"] {
            let set = ClassSet::parse(letters).unwrap();
            assert_eq!(from_mask(to_mask(set)).to_string(), set.to_string());
        }
    }

    #[test]
    fn without_an_rts_nothing_is_available() {
        let caps = probe();
        assert!(!caps.rts && !caps.switches && !caps.stop_world);
        assert_eq!(caps.patched, 0);
        assert!(classes().is_none());
    }
}
