//! GHC 9.2 and later: `startEventLogging`, `endEventLogging` and
//! `flushEventLog(Capability **)` stop the world themselves, so the shim calls
//! them from its own thread holding no capability (calling them with the world
//! stopped deadlocks), and start re-posts the start-up state itself. The world
//! is stopped by the shim only for what must not race running threads:
//! switching classes and listing live threads. From 10.0 the classes go
//! through the public `setTraceFlag` (the glue picks it when present).

use elstream_format::ClassSet;

use super::glue::{self, *};
use super::{
    classes, eventlog_running, replay_threads, set_classes_following_threads, stop_world_error,
    to_mask, with_threads, writer_ptr, Adapter, Cx,
};
use crate::error::Error;

pub struct Ghc92;

fn stopped(ops: u32, classes: ClassSet) -> i32 {
    debug_assert_eq!(ops & (OP_END | OP_START | OP_FLUSH | OP_POST_STATE), 0);
    // SAFETY: runs on the shim's RTS thread, which holds no capability; only
    // flags are switched, state posted and thread lists walked inside, never
    // the session started, ended or flushed (that deadlocks on 9.2+).
    unsafe { glue::elstream_glue_stopped_world(ops, writer_ptr(), to_mask(classes)) }
}

fn start() -> Result<(), Error> {
    // SAFETY: startEventLogging with a writer that lives as long as the
    // program, from a thread holding no capability.
    match unsafe { glue::elstream_glue_start(writer_ptr()) } {
        0 => Ok(()),
        _ => Err(Error::Rts(
            "startEventLogging refused (another writer is running)".into(),
        )),
    }
}

fn end() {
    // SAFETY: endEventLogging from a thread holding no capability.
    unsafe { glue::elstream_glue_end() };
}

impl Adapter for Ghc92 {
    fn take_over(&self, cx: &Cx, wanted: Option<ClassSet>) -> Result<(), Error> {
        let caps = cx.caps();
        let running = eventlog_running();
        // With +RTS -l the user's classes stay; they are off between the file
        // writer's end and our start, so no thread changes state unseen.
        let keep = classes();
        let set = wanted.or(keep);
        if running {
            if caps.stop_world {
                stop_world_error(stopped(OP_SET_CLASSES, ClassSet::EMPTY))?;
            }
            end();
        }
        start()?;
        if caps.public_flush {
            // What start posted reaches the writer first: its clock stamps
            // the thread replay.
            // SAFETY: the public flush, from a thread holding no capability.
            unsafe { glue::elstream_glue_public_flush() };
        }
        if caps.stop_world {
            let mut ops = OP_SET_CLASSES | OP_POST_CAPS;
            if caps.list_threads {
                ops |= OP_THREADS;
            }
            let set = set.unwrap_or(ClassSet::EMPTY);
            let threads = with_threads(ops, |ops| stopped(ops, set))?;
            // SAFETY: reads one RTS word (NULL-checked).
            let n_caps = unsafe { glue::elstream_glue_n_capabilities() };
            cx.shared
                .post_capabilities(n_caps.min(u16::MAX as u32) as u16);
            replay_threads(cx, threads);
        } else if let Some(set) = set {
            // A shared library: 10.0's public flags, else what -l chose.
            if caps.trace_flags {
                // SAFETY: the RTS's public setter, from the shim's RTS thread only.
                unsafe { glue::elstream_glue_set_trace_flags(to_mask(set)) };
            }
        }
        Ok(())
    }

    fn end(&self, cx: &Cx) -> Result<(), Error> {
        // Classes off first: the RTS posts by its switches alone, and every
        // buffer it fills with no writer is thrown away with a complaint on
        // stderr. Where they are out of reach, the end goes ahead regardless.
        let caps = cx.caps();
        if caps.stop_world {
            let _ = stop_world_error(stopped(OP_SET_CLASSES, ClassSet::EMPTY));
        } else if caps.trace_flags {
            // SAFETY: the RTS's public setter, from the shim's RTS thread only.
            unsafe { glue::elstream_glue_set_trace_flags(0) };
        }
        end();
        Ok(())
    }

    fn flush(&self, cx: &Cx) -> Result<(), Error> {
        if !cx.caps().public_flush {
            return Err(Error::Unavailable(
                "flush: no flushEventLog in this RTS".into(),
            ));
        }
        // SAFETY: the public flush, from a thread that holds no capability.
        unsafe { glue::elstream_glue_public_flush() };
        Ok(())
    }

    fn set_classes(&self, cx: &Cx, set: ClassSet) -> Result<(), Error> {
        let caps = cx.caps();
        if set_classes_following_threads(cx, set, |ops| stopped(ops, set))? {
            Ok(())
        } else if caps.stop_world {
            stop_world_error(stopped(OP_SET_CLASSES, set))
        } else if caps.trace_flags {
            // SAFETY: the RTS's public setter, from the shim's RTS thread only.
            unsafe { glue::elstream_glue_set_trace_flags(to_mask(set)) };
            Ok(())
        } else {
            Err(Error::Unavailable(
                "the RTS's class switches are out of reach (shared library, GHC < 10.0)".into(),
            ))
        }
    }

    fn sync(&self, cx: &Cx) -> Result<(), Error> {
        // A restart re-posts the start-up state (9.2+); the stream swallows
        // the data end and the repeated header.
        cx.shared.restarting_while(|| {
            end();
            start()
        })
    }
}
