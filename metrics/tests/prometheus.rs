//! A real Prometheus (Debian trixie's 2.53, in the trixie root) scrapes
//! `elstream metrics` every second while Demo streams through the shim; after
//! the run, the GC count, the total GC pause, the `work` spans and the user
//! messages it holds equal what ghc-events computes from a second consumer's
//! capture of the same stream.

mod common;

use std::time::Duration;

use common::*;
use testkit::{example, TempDir};

#[test]
fn prometheus_scrape_equals_ghc_events() {
    let demo = example("Demo");
    let dir = TempDir::new("metrics-prom");
    let sock = dir.join("demo.sock");
    // A trigger and OTLP (to a closed port) too, so every family is exported
    // for the docs check below.
    let m = start_metrics_env(
        &[
            "--source",
            &format!("demo=unix:{}", sock.display()),
            "--trigger",
            "drops>1000000;snapshot=off",
            "--trigger",
            "span:work>0s;cooldown=0s;max=3;snapshot=off",
            "--trigger",
            "heap-live>1K;snapshot=off",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ],
    );
    let prom = start_prometheus(&dir, Some(&m.addr));
    let j = demo_judged(&demo, &sock, &dir);

    figures_equal(&prom, &j);
    assert_eq!(
        prom.value(r#"elstream_source_sessions_total{session="demo"}"#),
        Some(1.0)
    );
    // The other rule kinds: every work span exceeds 0 s (max 3), the live
    // heap exceeds 1 KiB (once in the cooldown), no drops.
    let fired = |t: &str| {
        scraped(
            &m.addr,
            &format!(r#"elstream_trigger_fired_total{{session="demo",trigger="{t}"}}"#),
        )
    };
    assert_eq!(fired("span:work>0s"), Some(3.0));
    assert_eq!(fired("heap-live>1K"), Some(1.0));
    assert_eq!(fired("drops>1000000"), Some(0.0));
    // The proxy's own families (`elstream_feed_*`) are checked by the proxy's test.
    docs_use_only_exported_names(&[&m.addr], &dir, Some("elstream_feed_"));
    drop(prom);
    drop(m);
}

/// The same through `elstream proxy --metrics`: the proxy is Demo's shim
/// consumer and serves /metrics itself (its metrics thread fed by the loop);
/// Prometheus scrapes the proxy, and the figures equal ghc-events' on a
/// second consumer's capture; a second run of Demo is a second session with
/// its own figures. Its feed dropped nothing, and every name the docs use is
/// exported by `elstream metrics` or the proxy.
#[test]
fn proxy_metrics_scrape_equals_ghc_events() {
    let demo = example("Demo");
    let dir = TempDir::new("metrics-proxy-prom");
    let sock = dir.join("demo.sock");
    let proxy = spawn_proxy_metrics(&sock, &[], &[]);
    let addr = proxy.addr.clone();
    assert!(
        get(&addr, "/metrics").is_some(),
        "the proxy serves no /metrics"
    );
    let prom = start_prometheus(&dir, Some(&addr));
    let j = demo_judged(&demo, &sock, &dir);
    figures_equal(&prom, &j);
    assert_eq!(
        prom.value(r#"elstream_source_sessions_total{session="demo"}"#),
        Some(1.0)
    );
    // Demo again on the same socket: a new session of the proxy, and of its
    // metrics, counting from 0 (the figures are the second run's alone).
    let j = demo_judged(&demo, &sock, &dir);
    prom.wait_value(
        r#"elstream_session_number{session="demo"}"#,
        Duration::from_secs(30),
        |v| v == 2.0,
    );
    figures_equal(&prom, &j);
    assert_eq!(
        prom.value(r#"elstream_source_sessions_total{session="demo"}"#),
        Some(2.0)
    );
    assert_eq!(
        scraped(&addr, "elstream_feed_dropped_blocks_total{}"),
        Some(0.0),
        "the metrics feed dropped blocks"
    );
    // The names elstream metrics alone exports (triggers, OTLP) come from
    // a second exporter, reading the capture as a file.
    let cap = format!("cap=file:{}", dir.join("capture.eventlog").display());
    let m = start_metrics_env(
        &[
            "--source",
            &cap,
            "--trigger",
            "drops>1000000;snapshot=off",
            "--trigger",
            "heap-live>1K;snapshot=off",
        ],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ],
    );
    assert!(
        testkit::wait_until(Duration::from_secs(20), || {
            scraped(&m.addr, r#"elstream_session_ended{session="cap"}"#) == Some(1.0)
                && scraped(&m.addr, r#"elstream_otlp_dropped_batches_total{}"#).is_some()
        }),
        "elstream metrics did not read the capture"
    );
    docs_use_only_exported_names(&[&addr, &m.addr], &dir, None);
}

/// Demo (12 rounds) on `sock` beside a capture, and ghc-events' figures of
/// the capture.
fn demo_judged(demo: &std::path::Path, sock: &std::path::Path, dir: &TempDir) -> Judged {
    let (counts, bytes) = run_demo(demo, sock, 12);
    let log = dir.join("capture.eventlog");
    std::fs::write(&log, &bytes).unwrap();
    let j = judge(&log);
    assert!(
        j.gcs > 3 && j.pauses > 3,
        "Demo should GC: {} / {}",
        j.gcs,
        j.pauses
    );
    assert_eq!(j.user_messages, counts["user-events"]);
    j
}

/// Once Prometheus has scraped the session's end: its GC count, GC pauses,
/// total pause, GC sync, `work` spans and user messages for session `demo`
/// equal ghc-events' figures `j`.
fn figures_equal(prom: &Prometheus, j: &Judged) {
    // A scrape after the data end arrived, then the figures.
    let s = r#"{session="demo"}"#;
    prom.wait_value(
        &format!("elstream_session_ended{s}"),
        Duration::from_secs(30),
        |v| v == 1.0,
    );
    let q = |e: &str| prom.value(e).unwrap_or_else(|| panic!("no value for {e}"));
    assert_eq!(q(&format!("sum(ghc_gc_total{s})")) as u64, j.gcs, "GCs");
    assert_eq!(
        q(&format!("ghc_gc_pause_seconds_count{s}")) as u64,
        j.pauses,
        "GC pauses"
    );
    let pause = q(&format!("ghc_gc_pause_seconds_sum{s}"));
    assert_eq!(
        (pause * 1e9).round() as u64,
        j.pause_ns,
        "total GC pause ({pause} s)"
    );
    assert!(j.syncs > 3, "Demo's GCs should be requested: {}", j.syncs);
    let sync = q(&format!("ghc_gc_sync_seconds_total{s}"));
    assert_eq!((sync * 1e9).round() as u64, j.sync_ns, "GC sync ({sync} s)");
    assert_eq!(
        q(r#"ghc_span_seconds_count{session="demo",span="work"}"#) as u64,
        j.work_spans,
        "work spans"
    );
    assert_eq!(j.work_spans, 4 * 12);
    assert_eq!(
        q(&format!("ghc_user_messages_total{s}")) as u64,
        j.user_messages,
        "user messages"
    );
    // The histogram's buckets add up and the capabilities were busy.
    assert_eq!(
        q(r#"ghc_gc_pause_seconds_bucket{session="demo",le="+Inf"}"#) as u64,
        j.pauses
    );
    assert!(q(&format!("sum(ghc_capability_mutator_seconds_total{s})")) > 0.0);
}

/// Every metric name in docs/OPERATORS.md, the alerting rules and the
/// Grafana dashboard is one these /metrics export (those starting with `skip` aside); promtool accepts the rules.
fn docs_use_only_exported_names(addrs: &[&str], dir: &TempDir, skip: Option<&str>) {
    let text: String = addrs.iter().map(|a| get(a, "/metrics").unwrap()).collect();
    let mut names = std::collections::HashSet::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            names.insert(rest.split(' ').next().unwrap().to_string());
        } else if !l.starts_with('#') {
            names.insert(l.split(['{', ' ']).next().unwrap().to_string());
        }
    }
    let docs = testkit::repo_root().join("docs");
    let mut checked = 0;
    for f in [
        "OPERATORS.md",
        "elstream-alerts.yml",
        "grafana-elstream.json",
    ] {
        let body = std::fs::read_to_string(docs.join(f)).unwrap();
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let rest = &body[i..];
            let starts = (rest.starts_with("ghc_") || rest.starts_with("elstream_"))
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
            if starts {
                let n: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                assert!(
                    names.contains(&n) || skip.is_some_and(|p| n.starts_with(p)),
                    "{f} names {n}, which /metrics does not export"
                );
                checked += 1;
                i += n.len();
            } else {
                i += rest.chars().next().unwrap().len_utf8();
            }
        }
    }
    assert!(checked > 50, "only {checked} names found in the docs");
    let rules = dir.join("alerts.yml");
    std::fs::copy(docs.join("elstream-alerts.yml"), &rules).unwrap();
    let out = std::process::Command::new("chroot")
        .arg(trixie_root())
        .args(["promtool", "check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
