//! GHC 9.0.2 with ghc-patches/: the RTS's own streaming API for flush,
//! classes and sync; take-over and end as on stock 9.0.

use elstream_format::ClassSet;

use super::{ghc90, glue, to_mask, Adapter, Cx};
use crate::error::Error;

pub struct Patched;

impl Adapter for Patched {
    fn take_over(&self, cx: &Cx, classes: Option<ClassSet>) -> Result<(), Error> {
        ghc90::take_over(cx, classes)
    }

    fn end(&self, cx: &Cx) -> Result<(), Error> {
        ghc90::end(cx)
    }

    fn flush(&self, cx: &Cx) -> Result<(), Error> {
        // SAFETY: GHC 9.2's public flush (patch 6) or the patched RTS's own,
        // both thread-safe from a thread holding no capability.
        unsafe {
            if cx.caps().public_flush {
                glue::elstream_glue_public_flush();
            } else {
                glue::elstream_glue_patched_flush();
            }
        }
        Ok(())
    }

    fn set_classes(&self, cx: &Cx, classes: ClassSet) -> Result<(), Error> {
        if cx.caps().trace_flags {
            // GHC 10.0's API (patch 7 backports it): upstream's first.
            return ghc90::Ghc90.set_classes(cx, classes);
        }
        // SAFETY: the patched RTS's public setter.
        match unsafe { glue::elstream_glue_patched_set_classes(to_mask(classes)) } {
            0 => Ok(()),
            _ => Err(Error::Unavailable(
                "the patched RTS has no rts_setTraceFlag".into(),
            )),
        }
    }

    fn sync(&self, _cx: &Cx) -> Result<(), Error> {
        // SAFETY: the patched RTS's public resync, then its flush.
        unsafe {
            glue::elstream_glue_patched_resync();
            glue::elstream_glue_patched_flush();
        }
        Ok(())
    }
}
