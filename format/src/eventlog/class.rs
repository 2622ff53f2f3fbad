//! Event type numbers and the RTS trace class that gates each one.

use std::fmt;
use std::str::FromStr;

use super::FormatError;

// Type numbers from GHC 9.0.2 includes/rts/EventLogFormat.h.
pub const EVENT_CREATE_THREAD: u16 = 0;
pub const EVENT_RUN_THREAD: u16 = 1;
pub const EVENT_STOP_THREAD: u16 = 2;
pub const EVENT_THREAD_RUNNABLE: u16 = 3;
pub const EVENT_MIGRATE_THREAD: u16 = 4;
pub const EVENT_THREAD_WAKEUP: u16 = 8;
pub const EVENT_GC_START: u16 = 9;
pub const EVENT_GC_END: u16 = 10;
pub const EVENT_REQUEST_SEQ_GC: u16 = 11;
pub const EVENT_REQUEST_PAR_GC: u16 = 12;
pub const EVENT_CREATE_SPARK_THREAD: u16 = 15;
pub const EVENT_LOG_MSG: u16 = 16;
pub const EVENT_BLOCK_MARKER: u16 = 18;
pub const EVENT_USER_MSG: u16 = 19;
pub const EVENT_GC_IDLE: u16 = 20;
pub const EVENT_GC_WORK: u16 = 21;
pub const EVENT_GC_DONE: u16 = 22;
pub const EVENT_CAPSET_CREATE: u16 = 25;
pub const EVENT_CAPSET_DELETE: u16 = 26;
pub const EVENT_CAPSET_ASSIGN_CAP: u16 = 27;
pub const EVENT_CAPSET_REMOVE_CAP: u16 = 28;
pub const EVENT_RTS_IDENTIFIER: u16 = 29;
pub const EVENT_PROGRAM_ARGS: u16 = 30;
pub const EVENT_PROGRAM_ENV: u16 = 31;
pub const EVENT_OSPROCESS_PID: u16 = 32;
pub const EVENT_OSPROCESS_PPID: u16 = 33;
pub const EVENT_SPARK_COUNTERS: u16 = 34;
pub const EVENT_SPARK_CREATE: u16 = 35;
pub const EVENT_SPARK_DUD: u16 = 36;
pub const EVENT_SPARK_OVERFLOW: u16 = 37;
pub const EVENT_SPARK_RUN: u16 = 38;
pub const EVENT_SPARK_STEAL: u16 = 39;
pub const EVENT_SPARK_FIZZLE: u16 = 40;
pub const EVENT_SPARK_GC: u16 = 41;
pub const EVENT_INTERN_STRING: u16 = 42;
pub const EVENT_WALL_CLOCK_TIME: u16 = 43;
pub const EVENT_THREAD_LABEL: u16 = 44;
pub const EVENT_CAP_CREATE: u16 = 45;
pub const EVENT_CAP_DELETE: u16 = 46;
pub const EVENT_CAP_DISABLE: u16 = 47;
pub const EVENT_CAP_ENABLE: u16 = 48;
pub const EVENT_HEAP_ALLOCATED: u16 = 49;
pub const EVENT_HEAP_SIZE: u16 = 50;
pub const EVENT_HEAP_LIVE: u16 = 51;
pub const EVENT_HEAP_INFO_GHC: u16 = 52;
/// Info-table provenance (`-finfo-table-map`), 9.2+.
pub const EVENT_IPE: u16 = 169;
pub const EVENT_GC_STATS_GHC: u16 = 53;
pub const EVENT_GC_GLOBAL_SYNC: u16 = 54;
pub const EVENT_TASK_CREATE: u16 = 55;
pub const EVENT_TASK_MIGRATE: u16 = 56;
pub const EVENT_TASK_DELETE: u16 = 57;
pub const EVENT_USER_MARKER: u16 = 58;
pub const EVENT_HACK_BUG_T9003: u16 = 59;
pub const EVENT_HEAP_PROF_BEGIN: u16 = 160;
pub const EVENT_HEAP_PROF_COST_CENTRE: u16 = 161;
pub const EVENT_HEAP_PROF_SAMPLE_BEGIN: u16 = 162;
pub const EVENT_HEAP_PROF_SAMPLE_COST_CENTRE: u16 = 163;
pub const EVENT_HEAP_PROF_SAMPLE_STRING: u16 = 164;
pub const EVENT_HEAP_PROF_SAMPLE_END: u16 = 165;
pub const EVENT_HEAP_BIO_PROF_SAMPLE_BEGIN: u16 = 166;
pub const EVENT_PROF_SAMPLE_COST_CENTRE: u16 = 167;
pub const EVENT_PROF_BEGIN: u16 = 168;
pub const EVENT_USER_BINARY_MSG: u16 = 181;
pub const EVENT_CONC_MARK_BEGIN: u16 = 200;
pub const EVENT_CONC_MARK_END: u16 = 201;
pub const EVENT_CONC_SYNC_BEGIN: u16 = 202;
pub const EVENT_CONC_SYNC_END: u16 = 203;
pub const EVENT_CONC_SWEEP_BEGIN: u16 = 204;
pub const EVENT_CONC_SWEEP_END: u16 = 205;
pub const EVENT_CONC_UPD_REM_SET_FLUSH: u16 = 206;
pub const EVENT_NONMOVING_HEAP_CENSUS: u16 = 207;

/// The RTS trace switch (`TRACE_*` in rts/Trace.c) that gates an event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// `TRACE_sched` (`-ls`).
    Scheduler,
    /// `TRACE_gc` (`-lg`).
    Gc,
    /// `TRACE_nonmoving_gc` (`-ln`).
    NonmovingGc,
    /// `TRACE_spark_sampled` (`-lp`).
    SparksSampled,
    /// `TRACE_spark_full` (`-lf`).
    SparksFull,
    /// `TRACE_user` (`-lu`).
    User,
    /// Posted whenever the eventlog runs (or gated by `TRACE_cap`, which is on
    /// whenever any class is): never filtered out.
    Always,
}

impl Class {
    /// The six switchable classes, in the RTS's `-l` letter order.
    pub const SWITCHABLE: [Class; 6] = [
        Class::Scheduler,
        Class::Gc,
        Class::NonmovingGc,
        Class::SparksSampled,
        Class::SparksFull,
        Class::User,
    ];

    /// The RTS `-l` flag letter; `Always` has none in the RTS and uses `a`.
    pub fn letter(self) -> char {
        match self {
            Class::Scheduler => 's',
            Class::Gc => 'g',
            Class::NonmovingGc => 'n',
            Class::SparksSampled => 'p',
            Class::SparksFull => 'f',
            Class::User => 'u',
            Class::Always => 'a',
        }
    }

    /// Inverse of [`Class::letter`] for the six switchable classes.
    pub fn from_letter(c: char) -> Option<Class> {
        Class::SWITCHABLE.into_iter().find(|k| k.letter() == c)
    }

    fn bit(self) -> u8 {
        match self {
            Class::Scheduler => 1,
            Class::Gc => 2,
            Class::NonmovingGc => 4,
            Class::SparksSampled => 8,
            Class::SparksFull => 16,
            Class::User => 32,
            Class::Always => 0,
        }
    }
}

/// Which trace switch gates `event_type` in GHC 9.0.2's RTS.
///
/// Checked against rts/Trace.h, Trace.c and eventlog/EventLog.c (9.0.2):
/// - capability/capset events are gated by `TRACE_cap`, which is on whenever
///   any class is on, so they are `Always`;
/// - RTS identifier, args, env, pids, wall clock, heap profiling and the
///   concurrent mark/sweep events (200-206) check only `eventlog_enabled` in
///   9.0.2, so they are `Always` too; only the nonmoving heap census (207) and
///   `trace(TRACE_nonmoving_gc, ..)` log messages (16) are `NonmovingGc`;
/// - types 9.0.2 never posts (obsolete or newer than 9.0.2, unknown) are
///   `Always`, so filtering never loses what it does not understand.
pub fn class_of(event_type: u16) -> Class {
    match event_type {
        EVENT_CREATE_THREAD
        | EVENT_RUN_THREAD
        | EVENT_STOP_THREAD
        | EVENT_THREAD_RUNNABLE
        | EVENT_MIGRATE_THREAD
        | EVENT_THREAD_WAKEUP
        | EVENT_THREAD_LABEL
        | EVENT_TASK_CREATE
        | EVENT_TASK_MIGRATE
        | EVENT_TASK_DELETE => Class::Scheduler,
        EVENT_GC_START | EVENT_GC_END | EVENT_REQUEST_SEQ_GC | EVENT_REQUEST_PAR_GC
        | EVENT_GC_IDLE | EVENT_GC_WORK | EVENT_GC_DONE | EVENT_GC_GLOBAL_SYNC
        | EVENT_GC_STATS_GHC | EVENT_HEAP_INFO_GHC | EVENT_HEAP_ALLOCATED | EVENT_HEAP_SIZE
        | EVENT_HEAP_LIVE => Class::Gc,
        EVENT_LOG_MSG | EVENT_NONMOVING_HEAP_CENSUS => Class::NonmovingGc,
        EVENT_SPARK_COUNTERS => Class::SparksSampled,
        EVENT_CREATE_SPARK_THREAD
        | EVENT_SPARK_CREATE
        | EVENT_SPARK_DUD
        | EVENT_SPARK_OVERFLOW
        | EVENT_SPARK_RUN
        | EVENT_SPARK_STEAL
        | EVENT_SPARK_FIZZLE
        | EVENT_SPARK_GC => Class::SparksFull,
        EVENT_USER_MSG | EVENT_USER_MARKER | EVENT_USER_BINARY_MSG => Class::User,
        _ => Class::Always,
    }
}

/// A set of switchable classes, like the RTS's `-l` letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ClassSet(u8);

impl ClassSet {
    /// The RTS default for a bare `-l`: `sgpu`.
    pub const DEFAULT: ClassSet = ClassSet(1 | 2 | 8 | 32);
    /// Every switchable class: `sgnpfu`.
    pub const ALL: ClassSet = ClassSet(63);
    /// No switchable class (only `Always` events pass a filter).
    pub const EMPTY: ClassSet = ClassSet(0);

    /// Parses letters from `sgnpfu` in any order; anything else is an error.
    pub fn parse(letters: &str) -> Result<ClassSet, FormatError> {
        let mut set = ClassSet::EMPTY;
        for c in letters.chars() {
            match Class::from_letter(c) {
                Some(k) => set.insert(k),
                None => {
                    return Err(FormatError::BadClassLetter {
                        letter: c,
                        input: letters.to_string(),
                    })
                }
            }
        }
        Ok(set)
    }

    /// `Always` is in every set.
    pub fn contains(self, class: Class) -> bool {
        class == Class::Always || self.0 & class.bit() != 0
    }

    pub fn insert(&mut self, class: Class) {
        self.0 |= class.bit();
    }

    pub fn remove(&mut self, class: Class) {
        self.0 &= !class.bit();
    }

    /// Whether an event of this type passes a filter keeping this set.
    pub fn keeps(self, event_type: u16) -> bool {
        self.contains(class_of(event_type))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> ClassSet {
        ClassSet(bits & ClassSet::ALL.0)
    }
}

impl fmt::Display for ClassSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for k in Class::SWITCHABLE {
            if self.contains(k) {
                write!(f, "{}", k.letter())?;
            }
        }
        Ok(())
    }
}

impl FromStr for ClassSet {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClassSet::parse(s)
    }
}
