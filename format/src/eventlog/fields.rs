//! Decoded payload fields of the events the analysis model reads (layouts as
//! GHC 9.0.2's rts/eventlog/EventLog.c posts them; later GHCs append fields,
//! which are ignored). Every accessor checks lengths: a short payload gives
//! `None`, never a panic.

use super::*;

/// The fields of one event, for the types the analysis model understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fields<'a> {
    CreateThread {
        thread: u32,
    },
    RunThread {
        thread: u32,
    },
    /// `status` as in GHC's `StopThread` (2 heap overflow .. 5 finished, ...).
    StopThread {
        thread: u32,
        status: u16,
        blocked_on: u32,
    },
    ThreadRunnable {
        thread: u32,
    },
    MigrateThread {
        thread: u32,
        new_cap: u16,
    },
    ThreadWakeup {
        thread: u32,
        other_cap: u16,
    },
    ThreadLabel {
        thread: u32,
        label: &'a [u8],
    },
    StartGc,
    EndGc,
    GlobalSync,
    RequestSeqGc,
    RequestParGc,
    CapCreate {
        cap: u16,
    },
    CapsetAssignCap {
        capset: u32,
        cap: u16,
    },
    RtsIdentifier {
        capset: u32,
        text: &'a [u8],
    },
    /// NUL-separated strings.
    ProgramArgs {
        capset: u32,
        args: &'a [u8],
    },
    OsProcessPid {
        capset: u32,
        pid: u32,
    },
    HeapAllocated {
        capset: u32,
        bytes: u64,
    },
    HeapSize {
        capset: u32,
        bytes: u64,
    },
    HeapLive {
        capset: u32,
        bytes: u64,
    },
    BlocksSize {
        capset: u32,
        bytes: u64,
    },
    HeapInfo {
        capset: u32,
        generations: u16,
        max_heap: u64,
        alloc_area: u64,
    },
    GcStats {
        capset: u32,
        generation: u16,
        copied: u64,
        slop: u64,
        frag: u64,
        par_threads: u32,
    },
    /// created, dud, overflowed, converted, GC'd, fizzled, remaining.
    SparkCounters {
        counters: [u64; 7],
    },
    /// One of the per-spark events (35..41): which one is the event type.
    Spark,
    UserMessage {
        text: &'a [u8],
    },
    UserMarker {
        text: &'a [u8],
    },
    HeapProfSampleBegin {
        era: u64,
    },
    HeapProfSampleEnd {
        era: u64,
    },
    /// One band's residency in a sample (`-hT` closure type, `-hi` info table, ...).
    HeapProfSampleString {
        profile: u8,
        residency: u64,
        label: &'a [u8],
    },
    WallClockTime {
        capset: u32,
        secs: u64,
        nsecs: u32,
    },
}

/// GHC 8.10+ `EVENT_BLOCKS_SIZE`.
pub const EVENT_BLOCKS_SIZE: u16 = 91;

fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// Decodes `payload` (as [`Event::payload`] gives it) of an event of type `ty`.
pub fn fields(ty: u16, p: &[u8]) -> Option<Fields<'_>> {
    let need = |n: usize| (p.len() >= n).then_some(());
    let u32at = |at| be32(p, at);
    let u64at = |at| be64(p, at);
    Some(match ty {
        EVENT_CREATE_THREAD => {
            need(4)?;
            Fields::CreateThread { thread: u32at(0) }
        }
        EVENT_RUN_THREAD => {
            need(4)?;
            Fields::RunThread { thread: u32at(0) }
        }
        EVENT_STOP_THREAD => {
            need(6)?;
            let blocked_on = if p.len() >= 10 { u32at(6) } else { 0 };
            Fields::StopThread {
                thread: u32at(0),
                status: be16(p, 4),
                blocked_on,
            }
        }
        EVENT_THREAD_RUNNABLE => {
            need(4)?;
            Fields::ThreadRunnable { thread: u32at(0) }
        }
        EVENT_MIGRATE_THREAD => {
            need(6)?;
            Fields::MigrateThread {
                thread: u32at(0),
                new_cap: be16(p, 4),
            }
        }
        EVENT_THREAD_WAKEUP => {
            need(6)?;
            Fields::ThreadWakeup {
                thread: u32at(0),
                other_cap: be16(p, 4),
            }
        }
        EVENT_THREAD_LABEL => {
            need(4)?;
            Fields::ThreadLabel {
                thread: u32at(0),
                label: cstr(&p[4..]),
            }
        }
        EVENT_GC_START => Fields::StartGc,
        EVENT_GC_END => Fields::EndGc,
        EVENT_GC_GLOBAL_SYNC => Fields::GlobalSync,
        EVENT_REQUEST_SEQ_GC => Fields::RequestSeqGc,
        EVENT_REQUEST_PAR_GC => Fields::RequestParGc,
        EVENT_CAP_CREATE => {
            need(2)?;
            Fields::CapCreate { cap: be16(p, 0) }
        }
        EVENT_CAPSET_ASSIGN_CAP => {
            need(6)?;
            Fields::CapsetAssignCap {
                capset: u32at(0),
                cap: be16(p, 4),
            }
        }
        EVENT_RTS_IDENTIFIER => {
            need(4)?;
            Fields::RtsIdentifier {
                capset: u32at(0),
                text: cstr(&p[4..]),
            }
        }
        EVENT_PROGRAM_ARGS => {
            need(4)?;
            Fields::ProgramArgs {
                capset: u32at(0),
                args: &p[4..],
            }
        }
        EVENT_OSPROCESS_PID => {
            need(8)?;
            Fields::OsProcessPid {
                capset: u32at(0),
                pid: u32at(4),
            }
        }
        EVENT_HEAP_ALLOCATED => {
            need(12)?;
            Fields::HeapAllocated {
                capset: u32at(0),
                bytes: u64at(4),
            }
        }
        EVENT_HEAP_SIZE => {
            need(12)?;
            Fields::HeapSize {
                capset: u32at(0),
                bytes: u64at(4),
            }
        }
        EVENT_HEAP_LIVE => {
            need(12)?;
            Fields::HeapLive {
                capset: u32at(0),
                bytes: u64at(4),
            }
        }
        EVENT_BLOCKS_SIZE => {
            need(12)?;
            Fields::BlocksSize {
                capset: u32at(0),
                bytes: u64at(4),
            }
        }
        EVENT_HEAP_INFO_GHC => {
            need(22)?;
            Fields::HeapInfo {
                capset: u32at(0),
                generations: be16(p, 4),
                max_heap: u64at(6),
                alloc_area: u64at(14),
            }
        }
        EVENT_GC_STATS_GHC => {
            need(34)?;
            Fields::GcStats {
                capset: u32at(0),
                generation: be16(p, 4),
                copied: u64at(6),
                slop: u64at(14),
                frag: u64at(22),
                par_threads: u32at(30),
            }
        }
        EVENT_SPARK_COUNTERS => {
            need(56)?;
            Fields::SparkCounters {
                counters: std::array::from_fn(|i| u64at(i * 8)),
            }
        }
        EVENT_SPARK_CREATE..=EVENT_SPARK_GC => Fields::Spark,
        EVENT_USER_MSG => Fields::UserMessage { text: p },
        EVENT_USER_MARKER => Fields::UserMarker { text: p },
        EVENT_HEAP_PROF_SAMPLE_BEGIN => {
            need(8)?;
            Fields::HeapProfSampleBegin { era: u64at(0) }
        }
        EVENT_HEAP_PROF_SAMPLE_END => {
            need(8)?;
            Fields::HeapProfSampleEnd { era: u64at(0) }
        }
        EVENT_HEAP_PROF_SAMPLE_STRING => {
            need(9)?;
            Fields::HeapProfSampleString {
                profile: p[0],
                residency: u64at(1),
                label: cstr(&p[9..]),
            }
        }
        EVENT_WALL_CLOCK_TIME => {
            need(16)?;
            Fields::WallClockTime {
                capset: u32at(0),
                secs: u64at(4),
                nsecs: u32at(12),
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_payloads_are_none_not_panics() {
        for ty in 0..=210u16 {
            for len in 0..64 {
                let _ = fields(ty, &vec![0u8; len]);
            }
        }
        assert_eq!(fields(EVENT_HEAP_LIVE, &[0; 11]), None);
    }

    #[test]
    fn decodes_big_endian_fields() {
        let mut p = 7u32.to_be_bytes().to_vec();
        p.extend(3u16.to_be_bytes());
        p.extend(9u32.to_be_bytes());
        assert_eq!(
            fields(EVENT_STOP_THREAD, &p),
            Some(Fields::StopThread {
                thread: 7,
                status: 3,
                blocked_on: 9
            })
        );
        let mut s = vec![1u8];
        s.extend(4096u64.to_be_bytes());
        s.extend(b"ARR_WORDS\0");
        assert_eq!(
            fields(EVENT_HEAP_PROF_SAMPLE_STRING, &s),
            Some(Fields::HeapProfSampleString {
                profile: 1,
                residency: 4096,
                label: b"ARR_WORDS"
            })
        );
    }
}
