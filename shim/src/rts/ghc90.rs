//! GHC 9.0: `startEventLogging`/`endEventLogging` leave the capabilities
//! running, so the shim stops the world around them itself (`rts_lock` +
//! the hidden `stopAllCapabilities`, static link only), and re-posts the
//! start-up state, which 9.0 does not repeat when a writer starts.

use elstream_format::ClassSet;

use super::glue::{self, *};
use super::{
    eventlog_running, replay_threads, set_classes_following_threads, stop_world_error, to_mask,
    with_threads, writer_ptr, Adapter, Cx,
};
use crate::error::Error;

pub struct Ghc90;

/// Runs `ops` with every capability stopped (9.0's way: the glue ends and
/// starts the session inside).
pub(super) fn stopped(ops: u32, classes: ClassSet) -> i32 {
    // SAFETY: runs on the shim's RTS thread, which holds no capability; the glue
    // checks that the scheduler runs and the hidden functions exist first.
    unsafe { glue::elstream_glue_stopped_world(ops, writer_ptr(), to_mask(classes)) }
}

/// Take-over on a 9.0-style RTS (stock or patched).
pub(super) fn take_over(cx: &Cx, classes: Option<ClassSet>) -> Result<(), Error> {
    let caps = cx.caps();
    if caps.stop_world {
        let mut ops = OP_END | OP_START;
        if classes.is_some() {
            ops |= OP_SET_CLASSES;
        }
        if caps.post_state {
            ops |= OP_POST_STATE | OP_FLUSH;
        }
        if caps.list_threads {
            ops |= OP_THREADS;
        }
        let set = classes.unwrap_or(ClassSet::EMPTY);
        let threads = cx
            .shared
            .restarting_while(|| with_threads(ops, |ops| stopped(ops, set)))?;
        replay_threads(cx, threads);
        return Ok(());
    }
    if eventlog_running() {
        return Err(Error::Rts(
            "the eventlog is already being written (+RTS -l) and this link cannot stop the \
             RTS to take over safely; link libelstream.a statically, or use \
             RtsConfig.eventlog_writer = elstream_writer() from a C main"
                .into(),
        ));
    }
    // SAFETY: startEventLogging with a writer that lives as long as the program.
    match unsafe { glue::elstream_glue_start_unlocked(writer_ptr()) } {
        0 => Ok(()),
        _ => Err(Error::Rts("startEventLogging failed".into())),
    }
}

pub(super) fn end(cx: &Cx) -> Result<(), Error> {
    if cx.caps().stop_world {
        // Classes off too: 9.0 posts by its TRACE_* switches alone, and every
        // buffer filled with no writer is thrown away with a complaint on stderr.
        return stop_world_error(stopped(OP_END | OP_SET_CLASSES, ClassSet::EMPTY));
    }
    // SAFETY: racy only against capabilities posting events, which a
    // shared-library link cannot prevent (documented).
    unsafe { glue::elstream_glue_end_unlocked() };
    Ok(())
}

impl Adapter for Ghc90 {
    fn take_over(&self, cx: &Cx, classes: Option<ClassSet>) -> Result<(), Error> {
        take_over(cx, classes)
    }

    fn end(&self, cx: &Cx) -> Result<(), Error> {
        end(cx)
    }

    fn flush(&self, cx: &Cx) -> Result<(), Error> {
        let caps = cx.caps();
        if caps.public_flush {
            // SAFETY: GHC 9.2's public flush (backported), from a thread holding no capability.
            unsafe { glue::elstream_glue_public_flush() };
            Ok(())
        } else if caps.stop_world {
            cx.shared
                .restarting_while(|| stop_world_error(stopped(OP_FLUSH, ClassSet::EMPTY)))
        } else {
            Err(Error::Unavailable(format!(
                "flush: {}",
                caps.flush_mechanism()
            )))
        }
    }

    fn set_classes(&self, cx: &Cx, classes: ClassSet) -> Result<(), Error> {
        if set_classes_following_threads(cx, classes, |ops| stopped(ops, classes))? {
            return Ok(());
        }
        if cx.caps().stop_world {
            // With the world stopped: switching GC events on also switches
            // on GC statistics, which stat_startGC and stat_endGC of one GC
            // must agree on.
            return stop_world_error(stopped(OP_SET_CLASSES, classes));
        }
        // SAFETY: plain stores to RTS flags read racily by design (as -l's are).
        match unsafe { glue::elstream_glue_set_classes(to_mask(classes)) } {
            0 => Ok(()),
            _ => Err(Error::Unavailable(
                "the RTS's class switches are out of reach".into(),
            )),
        }
    }

    fn sync(&self, cx: &Cx) -> Result<(), Error> {
        let caps = cx.caps();
        if caps.stop_world && caps.post_state {
            cx.shared.restarting_while(|| {
                stop_world_error(stopped(OP_POST_STATE | OP_FLUSH, ClassSet::EMPTY))
            })
        } else {
            Err(Error::Unavailable(
                "sync: the RTS's start-up state cannot be re-posted from this link; \
                 late joiners get the shim's cached state only"
                    .into(),
            ))
        }
    }
}
