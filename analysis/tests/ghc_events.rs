//! The analysis model against ghc-events, on logs written by a real GHC
//! program (Demo, `-N2`, with a `-hT` heap profile): GC pause pairs and
//! their durations, per-capability running time, user spans, markers and
//! heap figures equal what ghc-events decodes from the same file.

use std::collections::HashMap;
use std::process::Command;

use elstream_analysis::Analysis;
use elstream_format::eventlog::{
    EVENT_GC_END, EVENT_GC_START, EVENT_RUN_THREAD, EVENT_STOP_THREAD,
};
use testkit::{check, event_sequence, example, run_to_l_file, TempDir};

fn demo_log(
    dir: &TempDir,
    args: &[&str],
    rts: &[&str],
) -> (std::path::PathBuf, std::collections::BTreeMap<String, u64>) {
    let log = dir.join("demo.eventlog");
    // In `dir`: -hT writes Demo.hp there.
    let counts = run_to_l_file(&example("Demo"), args, rts, &log, dir.path());
    (log, counts)
}

fn analyse(bytes: &[u8], chunk: usize) -> Analysis {
    let mut a = Analysis::default();
    for c in bytes.chunks(chunk) {
        a.push(c).expect("decodes");
    }
    a.finish();
    a
}

/// `ghc-events show` lines of one kind, e.g. "heap live" values.
fn show_values(log: &std::path::Path, what: &str) -> Vec<(u64, u64)> {
    let out = Command::new("ghc-events")
        .arg("show")
        .arg(log)
        .output()
        .expect("ghc-events show");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // e.g. "cap 1: size of heap capset 0: 3145728 bytes"
            let time = l.trim_start().split(':').next()?.parse().ok()?;
            let rest = l.split_once(&format!("{what} heap capset "))?.1;
            Some((
                time,
                rest.split_once(": ")?.1.split(' ').next()?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn demo_figures_equal_ghc_events() {
    let dir = TempDir::new("analysis-demo");
    let (log, counts) = demo_log(
        &dir,
        // A second of work at -i0.005: census times follow the RTS's clock.
        &["20", "10", "8000"],
        &["-hT", "-i0.005"],
    );
    let judged = check(&log);
    judged.assert_ok();
    let seq = event_sequence(&log);
    let bytes = std::fs::read(&log).unwrap();
    let a = analyse(&bytes, 7919);
    let t = a.totals();

    // GC pauses: StartGC -> EndGC pairs per capability, with their durations.
    let mut open: HashMap<i32, u64> = HashMap::new();
    let (mut pairs, mut pause_ns, mut pause_max) = (0u64, 0u64, 0u64);
    let mut pair_list = Vec::new();
    // Running time per capability: RunThread -> the next StopThread/StartGC.
    let mut running: HashMap<i32, u64> = HashMap::new();
    let mut run_ns: HashMap<i32, u64> = HashMap::new();
    for &(time, cap, ty) in &seq {
        match ty {
            EVENT_GC_START => {
                if let Some(s) = running.remove(&cap) {
                    *run_ns.entry(cap).or_default() += time - s;
                }
                open.insert(cap, time);
            }
            EVENT_GC_END => {
                if let Some(s) = open.remove(&cap) {
                    pairs += 1;
                    pair_list.push((s, time));
                    pause_ns += time - s;
                    pause_max = pause_max.max(time - s);
                }
            }
            EVENT_RUN_THREAD => {
                running.insert(cap, time);
            }
            EVENT_STOP_THREAD => {
                if let Some(s) = running.remove(&cap) {
                    *run_ns.entry(cap).or_default() += time - s;
                }
            }
            _ => {}
        }
    }
    assert!(pairs > 5, "Demo should GC: {pairs}");
    assert_eq!(t.gc_pauses.count, pairs);
    assert_eq!(t.gc_pauses.total, pause_ns);
    assert_eq!(t.gc_pauses.max, pause_max);
    assert_eq!(t.gcs, judged.count(53), "GCStatsGHC events");
    let per_gen: u64 = t.generations.iter().map(|g| g.1.gcs).sum();
    assert_eq!(per_gen, judged.count(53));
    // A pause belongs to the generation of the GCStatsGHC posted within it
    // or within 200 us after its end (9.0.2 posts it after the EndGC).
    let stats: Vec<u64> = seq.iter().filter(|e| e.2 == 53).map(|e| e.0).collect();
    let with_gen = pair_list
        .iter()
        .filter(|(s, e)| stats.iter().any(|&g| g >= *s && g <= e + 200_000))
        .count() as u64;
    let gen_pauses: u64 = t.generations.iter().map(|g| g.2.count).sum();
    assert!(with_gen >= stats.len() as u64);
    assert_eq!(gen_pauses, with_gen, "pauses given a generation");

    assert_eq!(t.info.caps, 2);
    for c in &t.caps {
        assert_eq!(
            c.running_ns,
            run_ns.get(&(c.cap as i32)).copied().unwrap_or(0),
            "cap {}",
            c.cap
        );
        assert!(c.running_ns > 0);
    }

    // Spans and markers.
    let rounds = counts["rounds"];
    let work = t
        .spans
        .iter()
        .find(|s| s.name == "work")
        .expect("work spans");
    assert_eq!(work.totals.count, rounds * counts["workers"]);
    assert_eq!(work.totals.count, judged.user_count("STOP work "));
    assert_eq!(t.markers, judged.markers.len() as u64);
    assert_eq!(t.markers, counts["markers"]);
    assert_eq!(t.user_messages, judged.count(19));
    // The same markers (ghc-events lists them in file order, ours are in time order).
    let mut ours: Vec<String> = a.markers.iter().map(|m| m.text.clone()).collect();
    let mut theirs = judged.markers.clone();
    assert!(a
        .markers
        .iter()
        .zip(a.markers.iter().skip(1))
        .all(|(x, y)| x.time <= y.time));
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);

    // Heap: the last and peak HeapLive/HeapSize values ghc-events shows.
    let live = show_values(&log, "live data in");
    let size = show_values(&log, "size of");
    assert!(
        !live.is_empty() && !size.is_empty(),
        "ghc-events show lists heap events"
    );
    let last = |v: &[(u64, u64)]| v.iter().max_by_key(|p| p.0).unwrap().1;
    let peak = |v: &[(u64, u64)]| v.iter().map(|p| p.1).max().unwrap();
    let alloc = show_values(&log, "allocated on");
    assert_eq!(t.heap.live, last(&live));
    assert_eq!(t.heap.size, last(&size));
    // HeapAllocated is per capability ("cap N: allocated on heap ..."): the
    // heap's allocation is the sum of each capability's last value.
    let out = Command::new("ghc-events")
        .arg("show")
        .arg(&log)
        .output()
        .unwrap();
    let mut per_cap: HashMap<String, (u64, u64)> = HashMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((head, rest)) = l.split_once(": allocated on heap capset ") else {
            continue;
        };
        let mut h = head.trim().split(": ");
        let time: u64 = h.next().unwrap().parse().unwrap();
        let cap = h.next().unwrap_or("global").to_string();
        let v: u64 = rest
            .split_once(": ")
            .unwrap()
            .1
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let e = per_cap.entry(cap).or_default();
        if time >= e.0 {
            *e = (time, v);
        }
    }
    assert!(per_cap.len() >= 2, "allocation on both capabilities");
    assert_eq!(t.heap.allocated, per_cap.values().map(|v| v.1).sum::<u64>());
    assert_eq!(t.heap_peak.live, peak(&live));
    assert_eq!(t.heap_peak.size, peak(&size));
    assert!(t.heap_peak.allocated >= peak(&alloc));

    // Heap profile: one sample per HeapProfSampleBegin, bands named.
    assert_eq!(t.heap_prof_samples, judged.count(162));
    assert!(t.heap_prof_samples >= 3, "heap profile samples");
    assert!(t.bands.len() > 3, "-hT bands: {:?}", t.bands);

    // The raw tail: the newest events, filtered by text.
    let tail = a.tail("round ", None, 3);
    assert!(!tail.is_empty() && tail.len() <= 3);
    assert!(tail
        .iter()
        .all(|e| e.text.as_deref().unwrap().starts_with("round ")));
    assert_eq!(a.tail("", None, 50).len(), 50);

    // The same figures whatever the chunking.
    let b = analyse(&bytes, 1 << 20);
    assert_eq!(b.totals().gc_pauses, t.gc_pauses);
    assert_eq!(b.totals().spans[0].totals, t.spans[0].totals);

    // A summary of the whole run at 200 columns: both capabilities busy somewhere.
    let s = a.summary(0, t.end, 200, 10_000);
    assert_eq!(s.activity.len(), 2);
    for cap in &s.activity {
        assert!(cap.iter().any(|c| c[0] > 0.0), "running shows");
        assert!(cap.iter().all(|c| c[0] + c[1] <= 1.0001));
    }
    assert_eq!(s.pauses.len() as u64, pairs);
    assert_eq!(s.markers.len() as u64, rounds);
    let busy: f64 = s.activity[0].iter().map(|c| c[0] as f64).sum::<f64>() * (t.end as f64 / 200.0);
    let want = t.caps[0].running_ns as f64;
    assert!(
        (busy - want).abs() / want < 0.02,
        "column sums {busy} vs {want}"
    );
}

#[test]
fn truncated_log_keeps_what_came_before_the_cut() {
    let dir = TempDir::new("analysis-cut");
    let (log, _) = demo_log(&dir, &["6", "0", "3000"], &[]);
    let bytes = std::fs::read(&log).unwrap();
    let cut = &bytes[..bytes.len() * 2 / 3 + 3];
    let cut_path = dir.join("cut.eventlog");
    std::fs::write(&cut_path, cut).unwrap();
    let judged = check(&cut_path);
    let a = analyse(cut, 65536);
    let t = a.totals();
    assert!(t.health.truncated.is_some() && !t.health.data_end);
    assert!(t.health.error.is_none());
    assert_eq!(t.user_messages, judged.count(19));
    assert_eq!(t.markers, judged.markers.len() as u64);
    assert_eq!(
        t.health.events, judged.events,
        "every event ghc-events read"
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut a = Analysis::default();
    assert!(a.push(b"this is not an eventlog at all").is_err());
    assert!(a
        .totals()
        .health
        .error
        .unwrap()
        .contains("not a GHC eventlog"));
    assert!(a.push(b"more").is_ok(), "later input ignored");
}

#[test]
fn retention_is_bounded_and_totals_survive_it() {
    // The yield load: scheduler events as fast as the RTS writes them.
    let dir = TempDir::new("analysis-retention");
    let log = dir.join("yield.eventlog");
    run_to_l_file(&example("Yield"), &["4", "50000"], &[], &log, dir.path());
    let bytes = std::fs::read(&log).unwrap();
    let full = analyse(&bytes, 1 << 17);
    let small = elstream_analysis::Config {
        max_intervals: 1000,
        max_buckets: 64,
        max_points: 50,
        max_items: 20,
        tail_bytes: 1,
        ..Default::default()
    };
    let mut a = Analysis::new(small.clone());
    for c in bytes.chunks(1 << 17) {
        a.push(c).unwrap();
    }
    a.finish();
    let (tf, ts) = (full.totals(), a.totals());
    assert!(
        tf.health.events > 200_000,
        "a busy log: {}",
        tf.health.events
    );
    // Everything whole-run is the same; what is held is bounded.
    assert_eq!(ts.health.events, tf.health.events);
    assert_eq!(ts.gc_pauses, tf.gc_pauses);
    assert_eq!(ts.threads, tf.threads);
    for (x, y) in ts.caps.iter().zip(&tf.caps) {
        assert_eq!(
            x.running_ns.abs_diff(y.running_ns),
            0,
            "cap {} running time",
            x.cap
        );
    }
    assert!(a.memory() < 200_000, "held {} bytes", a.memory());
    assert!(full.memory() > 10 * a.memory());
    assert!(a.pauses.len() <= small.max_items);
    // A summary of the whole run still covers it (from the coarsened buckets).
    let s = a.summary(0, ts.end, 100, 1000);
    let busy: f64 = s
        .activity
        .iter()
        .flatten()
        .map(|c| c[0] as f64)
        .sum::<f64>()
        * ts.end as f64
        / 100.0;
    let want: f64 = ts.caps.iter().map(|c| c.running_ns as f64).sum();
    assert!((busy - want).abs() / want < 0.02, "{busy} vs {want}");
    assert!(s.coarse);
}
