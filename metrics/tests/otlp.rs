//! OTLP export over HTTP/protobuf into a receiver: the GC count, total GC
//! pause, `work` spans and user messages that arrive equal ghc-events'
//! figures of a capture of the same Demo run, and its markers arrive as log
//! records, each once. Then, with the receiver
//! stopped, a second run streams to its other subscriber and to `/metrics`
//! unaffected while the OTLP drop counter rises.
//!
//! The receiver is this test's own HTTP server decoding the requests with
//! opentelemetry-proto: Debian's Prometheus (trixie's 2.53.3, sid's 3.5.3)
//! is built with its OTLP endpoint disabled (its changelog: "Disable OTLP
//! Ingestion endpoint ... until golang-opentelemetry-collector is in
//! Debian", #1080354), and no other OTLP receiver is packaged.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, HistogramDataPoint};
use prost::Message;
use testkit::{example, wait_until, TempDir};

/// A decoded metrics request and the HTTP headers it came with.
type Received = (ExportMetricsServiceRequest, Vec<(String, String)>);

/// An OTLP/HTTP metrics receiver keeping the latest request it decoded.
struct Receiver {
    server: Arc<tiny_http::Server>,
    /// Log records received: (session attribute, body).
    logs: Arc<Mutex<Vec<(String, String)>>>,
    latest: Arc<Mutex<Option<Received>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: String,
}

impl Receiver {
    fn start() -> Receiver {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap().to_string();
        let latest = Arc::new(Mutex::new(None));
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (s, l, lg) = (server.clone(), latest.clone(), logs.clone());
        let thread = std::thread::spawn(move || {
            for mut req in s.incoming_requests() {
                let mut body = Vec::new();
                req.as_reader().read_to_end(&mut body).unwrap();
                if req.url() == "/v1/logs" {
                    let r = ExportLogsServiceRequest::decode(&body[..]).unwrap();
                    for rl in r.resource_logs {
                        for sl in rl.scope_logs {
                            for rec in sl.log_records {
                                let body = match rec.body.and_then(|b| b.value) {
                                    Some(any_value::Value::StringValue(t)) => t,
                                    other => format!("{other:?}"),
                                };
                                let s = attr(&rec.attributes, "session").unwrap_or_default();
                                lg.lock().unwrap().push((s, body));
                            }
                        }
                    }
                    let _ = req.respond(tiny_http::Response::empty(200));
                    continue;
                }
                let ok = req.url() == "/v1/metrics"
                    && req.headers().iter().any(|h| {
                        h.field.equiv("Content-Type")
                            && h.value.as_str() == "application/x-protobuf"
                    });
                let code = match ExportMetricsServiceRequest::decode(&body[..]) {
                    Ok(r) if ok => {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|h| (h.field.to_string(), h.value.to_string()))
                            .collect();
                        *l.lock().unwrap() = Some((r, headers));
                        200
                    }
                    _ => 400,
                };
                let _ = req.respond(tiny_http::Response::empty(code));
            }
        });
        Receiver {
            server,
            logs,
            latest,
            thread: Some(thread),
            addr,
        }
    }

    fn stop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn attr(a: &[opentelemetry_proto::tonic::common::v1::KeyValue], k: &str) -> Option<String> {
    a.iter()
        .find(|kv| kv.key == k)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// Sum of a counter's / gauge's points whose attributes include `want`.
fn number(r: &ExportMetricsServiceRequest, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let m = r.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)?;
    let pts = match m.data.as_ref()? {
        metric::Data::Sum(s) => &s.data_points,
        metric::Data::Gauge(g) => &g.data_points,
        _ => return None,
    };
    let mut v = None;
    for p in pts {
        if want
            .iter()
            .all(|(k, x)| attr(&p.attributes, k).as_deref() == Some(*x))
        {
            if let Some(number_data_point::Value::AsDouble(d)) = p.value {
                *v.get_or_insert(0.0) += d;
            }
        }
    }
    v
}

fn hist(
    r: &ExportMetricsServiceRequest,
    name: &str,
    want: &[(&str, &str)],
) -> Option<HistogramDataPoint> {
    let m = r.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .find(|m| m.name == name)?;
    let metric::Data::Histogram(h) = m.data.as_ref()? else {
        return None;
    };
    h.data_points
        .iter()
        .find(|p| {
            want.iter()
                .all(|(k, x)| attr(&p.attributes, k).as_deref() == Some(*x))
        })
        .cloned()
}

/// The figures an export carries for `session` equal ghc-events' of the
/// same run's capture: GCs, the pause histogram (count, total), `work`
/// spans, user messages.
fn figures_arrive(r: &ExportMetricsServiceRequest, session: &str, j: &Judged) {
    let demo_s = [("session", session)];
    assert_eq!(number(r, "ghc_gc", &demo_s), Some(j.gcs as f64), "GCs");
    let p = hist(r, "ghc_gc_pause", &demo_s).unwrap();
    assert_eq!(p.count, j.pauses, "GC pauses");
    assert_eq!(
        (p.sum.unwrap() * 1e9).round() as u64,
        j.pause_ns,
        "total GC pause"
    );
    assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
    assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
    let w = hist(r, "ghc_span", &[("session", session), ("span", "work")]).unwrap();
    assert_eq!(w.count, j.work_spans);
    assert_eq!(
        number(r, "ghc_user_messages", &demo_s),
        Some(j.user_messages as f64)
    );
}

#[test]
fn otlp_export_equals_ghc_events_and_a_down_receiver_stalls_nothing() {
    let demo = example("Demo");
    let dir = TempDir::new("metrics-otlp");
    let sock = dir.join("demo.sock");
    let mut rx = Receiver::start();
    let endpoint = format!("http://{}", rx.addr);
    let metrics = spawn_metrics(
        &["--source", &format!("demo=unix:{}", sock.display())],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team%20a"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_SERVICE_NAME", "elstream-test"),
        ],
    );
    let addr = metrics.addr.clone();
    assert!(get(&addr, "/metrics").is_some());

    let (counts, bytes) = run_demo(&demo, &sock, 8);
    let log = dir.join("capture1.eventlog");
    std::fs::write(&log, &bytes).unwrap();
    let j = judge(&log);
    assert!(j.gcs > 3, "Demo should GC");
    assert_eq!(j.user_messages, counts["user-events"]);

    let demo_s = [("session", "demo")];
    let latest = || rx.latest.lock().unwrap().clone();
    assert!(
        wait_until(Duration::from_secs(20), || latest().is_some_and(
            |(r, _)| number(&r, "elstream_session_ended", &demo_s) == Some(1.0)
        )),
        "no export with the session's data end arrived"
    );
    let (r, headers) = latest().unwrap();
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-tenant") && v == "team a"),
        "{headers:?}"
    );
    let res = r.resource_metrics[0].resource.as_ref().unwrap();
    assert_eq!(
        attr(&res.attributes, "service.name").as_deref(),
        Some("elstream-test")
    );
    assert_eq!(j.work_spans, 4 * 8);
    figures_arrive(&r, "demo", &j);
    // The markers, as log records, each once.
    let want: Vec<(String, String)> = (0..8)
        .map(|r| ("demo".to_string(), format!("round {r}")))
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || *rx.logs.lock().unwrap() == want),
        "log records: {:?}",
        rx.logs.lock().unwrap()
    );
    let sent = scraped(&addr, r#"elstream_otlp_batches_total{result="sent"}"#).unwrap();
    assert!(sent >= 2.0, "sent {sent}");

    // The receiver stops: the next run is unaffected, OTLP drops rise.
    rx.stop();
    let dropped0 = scraped(&addr, "elstream_otlp_dropped_batches_total{}").unwrap();
    let (counts2, bytes2) = run_demo(&demo, &sock, 8);
    let c2 = testkit::check_bytes(&bytes2);
    c2.assert_ok();
    assert_eq!(c2.user_messages.len() as u64, counts2["user-events"]);
    assert!(wait_until(Duration::from_secs(20), || {
        scraped(&addr, r#"elstream_session_ended{session="demo"}"#) == Some(1.0)
            && scraped(&addr, r#"elstream_session_number{session="demo"}"#) == Some(2.0)
    }));
    assert_eq!(
        scraped(&addr, r#"ghc_user_messages_total{session="demo"}"#),
        Some(counts2["user-events"] as f64)
    );
    assert!(wait_until(Duration::from_secs(10), || {
        scraped(&addr, "elstream_otlp_dropped_batches_total{}").unwrap_or(0.0) >= dropped0 + 3.0
    }));
    drop(metrics);
}

/// `elstream proxy --metrics ... --otlp`: the exporter inside the proxy sends
/// the same figures, configured by the same OTEL_* variables.
#[test]
fn proxy_otlp_export_equals_ghc_events() {
    let demo = example("Demo");
    let dir = TempDir::new("metrics-proxy-otlp");
    let sock = dir.join("demo.sock");
    let rx = Receiver::start();
    let endpoint = format!("http://{}", rx.addr);
    let _proxy = spawn_proxy_metrics(
        &sock,
        &["--otlp"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    );
    let (counts, bytes) = run_demo(&demo, &sock, 6);
    let log = dir.join("capture.eventlog");
    std::fs::write(&log, &bytes).unwrap();
    let j = judge(&log);
    assert!(j.gcs > 3, "Demo should GC");
    assert_eq!(j.user_messages, counts["user-events"]);
    assert_eq!(j.work_spans, 4 * 6);
    let latest = || rx.latest.lock().unwrap().clone();
    assert!(
        wait_until(Duration::from_secs(20), || latest().is_some_and(
            |(r, _)| number(&r, "elstream_session_ended", &[("session", "demo")]) == Some(1.0)
        )),
        "no export from the proxy with the session's data end arrived"
    );
    let (r, _) = latest().unwrap();
    figures_arrive(&r, "demo", &j);
}
