//! OTLP export over HTTP/protobuf: every interval the model's families (the
//! same list `/metrics` serves) become one `ExportMetricsServiceRequest`
//! (opentelemetry-proto's types, prost-encoded), handed to a sender thread
//! through a bounded queue. A receiver that is down or slow costs dropped
//! batches (counted), never a stalled source: the readers never wait on it.
//! User markers go out as log records (`/v1/logs`), each once.
//!
//! Configured the standard way: `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL,
//! `/v1/metrics` appended) or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (as is),
//! `OTEL_EXPORTER_OTLP_HEADERS` / `..._METRICS_HEADERS` (`k=v,k2=v2`),
//! `OTEL_METRIC_EXPORT_INTERVAL` and `OTEL_EXPORTER_OTLP_TIMEOUT` (ms),
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`; only `http/protobuf`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::model::{Family, Kind, Labels, Value};
use crate::Hub;

/// Batches waiting for the sender at most.
pub const QUEUE: usize = 4;

#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// The full metrics URL.
    pub endpoint: String,
    /// The full logs URL (user markers as log records), when configured.
    pub logs_endpoint: Option<String>,
    pub headers: Vec<(String, String)>,
    pub interval: Duration,
    pub timeout: Duration,
    pub resource: Vec<(String, String)>,
}

fn pairs(s: &str, what: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("{what}: expected key=value, got {p:?}"))?;
            Ok((k.trim().to_string(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn millis(
    env: &dyn Fn(&str) -> Option<String>,
    key: &str,
    default: u64,
) -> Result<Duration, String> {
    match env(key) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("{key}={v:?}: expected a positive number of milliseconds")),
    }
}

impl OtlpConfig {
    /// From the environment; `None` when no endpoint is configured and
    /// `force` is false (`--otlp` forces it, default endpoint
    /// `http://localhost:4318`).
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        force: bool,
    ) -> Result<Option<OtlpConfig>, String> {
        if env("OTEL_METRICS_EXPORTER").is_some_and(|v| v.trim() == "none") {
            return Ok(None);
        }
        let base = env("OTEL_EXPORTER_OTLP_ENDPOINT")
            .or_else(|| force.then(|| "http://localhost:4318".to_string()));
        let logs_endpoint = match env("OTEL_LOGS_EXPORTER") {
            Some(v) if v.trim() == "none" => None,
            _ => env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT").or_else(|| {
                base.as_ref()
                    .map(|b| format!("{}/v1/logs", b.trim_end_matches('/')))
            }),
        };
        let endpoint = match (
            env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
            env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(e), _) => e,
            (None, Some(base)) => format!("{}/v1/metrics", base.trim_end_matches('/')),
            (None, None) if force => "http://localhost:4318/v1/metrics".into(),
            (None, None) => return Ok(None),
        };
        for e in std::iter::once(&endpoint).chain(logs_endpoint.as_ref()) {
            if !e.starts_with("http://") {
                return Err(format!(
                    "OTLP endpoint {e:?}: only http:// is supported (use a local collector for TLS)"
                ));
            }
        }
        for key in [
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(p) = env(key) {
                if p.trim() != "http/protobuf" {
                    return Err(format!("{key}={p:?}: only http/protobuf is supported"));
                }
                break;
            }
        }
        let mut headers = pairs(
            &env("OTEL_EXPORTER_OTLP_HEADERS").unwrap_or_default(),
            "OTEL_EXPORTER_OTLP_HEADERS",
        )?;
        headers.extend(pairs(
            &env("OTEL_EXPORTER_OTLP_METRICS_HEADERS").unwrap_or_default(),
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        )?);
        let mut resource = pairs(
            &env("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default(),
            "OTEL_RESOURCE_ATTRIBUTES",
        )?;
        let service = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "elstream".into());
        resource.retain(|(k, _)| k != "service.name" || env("OTEL_SERVICE_NAME").is_none());
        if !resource.iter().any(|(k, _)| k == "service.name") {
            resource.insert(0, ("service.name".into(), service));
        }
        Ok(Some(OtlpConfig {
            endpoint,
            logs_endpoint,
            headers,
            interval: millis(env, "OTEL_METRIC_EXPORT_INTERVAL", 60_000)?,
            timeout: millis(env, "OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
            resource,
        }))
    }
}

/// The exporter's own counters (exported in `/metrics` and OTLP).
#[derive(Debug, Default)]
pub struct OtlpStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub queue_full: AtomicU64,
}

impl OtlpStats {
    pub fn families(&self, start: f64) -> Vec<Family> {
        let mut b = Family::new(
            "elstream_otlp_batches",
            "OTLP export batches by result: sent, failed (receiver down, slow or refusing), queue_full (not even tried).",
            None,
            Kind::Counter,
        );
        let sent = self.sent.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let full = self.queue_full.load(Ordering::Relaxed);
        for (r, v) in [("sent", sent), ("failed", failed), ("queue_full", full)] {
            b.push(vec![("result", r.to_string())], v as f64, start);
        }
        let mut d = Family::new(
            "elstream_otlp_dropped_batches",
            "OTLP batches that did not reach the receiver (failed + queue_full); the next one carries the totals.",
            None,
            Kind::Counter,
        );
        d.push(Vec::new(), (failed + full) as f64, start);
        vec![b, d]
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        }),
        ..Default::default()
    }
}

fn attrs(l: &Labels) -> Vec<KeyValue> {
    l.iter().map(|(k, v)| kv(k, v)).collect()
}

fn nanos(s: f64) -> u64 {
    (s.max(0.0) * 1e9) as u64
}

/// One request of every family, at time `now` (unix seconds).
pub fn request(
    fams: &[Family],
    resource: &[(String, String)],
    now: f64,
) -> ExportMetricsServiceRequest {
    let t = nanos(now);
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metrics = fams
        .iter()
        .map(|f| {
            let unit = match f.unit {
                Some("seconds") => "s",
                Some("bytes") => "By",
                Some(u) => u,
                None => "",
            };
            let start = |i: usize| nanos(f.start.get(i).copied().unwrap_or(0.0)).min(t);
            let numbers = || {
                f.rows
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (l, v))| match v {
                        Value::Num(x) => Some(NumberDataPoint {
                            attributes: attrs(l),
                            start_time_unix_nano: start(i),
                            time_unix_nano: t,
                            value: Some(number_data_point::Value::AsDouble(*x)),
                            ..Default::default()
                        }),
                        Value::Hist(_) => None,
                    })
                    .collect()
            };
            let data = match f.kind {
                Kind::Counter => metric::Data::Sum(Sum {
                    data_points: numbers(),
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                }),
                Kind::Gauge => metric::Data::Gauge(Gauge {
                    data_points: numbers(),
                }),
                Kind::Histogram => metric::Data::Histogram(Histogram {
                    data_points: f
                        .rows
                        .iter()
                        .enumerate()
                        .filter_map(|(i, (l, v))| match v {
                            Value::Hist(h) => Some(HistogramDataPoint {
                                attributes: attrs(l),
                                start_time_unix_nano: start(i),
                                time_unix_nano: t,
                                count: h.count,
                                sum: Some(h.sum),
                                bucket_counts: h.buckets.iter().map(|b| b.1).collect(),
                                explicit_bounds: h.buckets[..h.buckets.len() - 1]
                                    .iter()
                                    .map(|b| b.0)
                                    .collect(),
                                ..Default::default()
                            }),
                            Value::Num(_) => None,
                        })
                        .collect(),
                    aggregation_temporality: cumulative,
                }),
            };
            Metric {
                name: f.name.to_string(),
                description: f.help.to_string(),
                unit: unit.to_string(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "elstream".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn sender(cfg: OtlpConfig, rx: Receiver<(String, Vec<u8>)>, stats: Arc<OtlpStats>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(cfg.timeout))
        .http_status_as_error(true)
        .build()
        .into();
    for (url, body) in rx {
        let mut req = agent
            .post(&url)
            .header("Content-Type", "application/x-protobuf");
        for (k, v) in &cfg.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match req.send(&body[..]) {
            Ok(_) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let n = stats.failed.fetch_add(1, Ordering::Relaxed);
                if n == 0 || n.is_power_of_two() {
                    tracing::warn!(
                        "OTLP export to {} failed ({} so far): {e}",
                        cfg.endpoint,
                        n + 1
                    );
                }
            }
        }
    }
}

/// Starts the collector and sender threads.
pub fn start(cfg: OtlpConfig, hub: Arc<Hub>, stats: Arc<OtlpStats>) {
    let (tx, rx): (SyncSender<(String, Vec<u8>)>, _) = sync_channel(QUEUE);
    let s2 = stats.clone();
    let c2 = cfg.clone();
    std::thread::Builder::new()
        .name("otlp sender".into())
        .spawn(move || sender(c2, rx, s2))
        .expect("spawn the OTLP sender");
    std::thread::Builder::new()
        .name("otlp collector".into())
        .spawn(move || {
            let mut cursors = HashMap::new();
            loop {
                std::thread::sleep(cfg.interval);
                let now = crate::source::now();
                let body = request(&hub.families(), &cfg.resource, now).encode_to_vec();
                let mut batches = vec![(cfg.endpoint.clone(), body)];
                if let Some(url) = &cfg.logs_endpoint {
                    let recs = marker_records(&hub, &mut cursors, now);
                    if !recs.is_empty() {
                        batches.push((
                            url.clone(),
                            logs_request(recs, &cfg.resource).encode_to_vec(),
                        ));
                    }
                }
                for b in batches {
                    match tx.try_send(b) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            stats.queue_full.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
            }
        })
        .expect("spawn the OTLP collector");
}

/// User markers posted since the last call, as log records (per source:
/// the session and how many of its markers went out already). A marker
/// whose log record is dropped with its batch is not sent again.
fn marker_records(
    hub: &Hub,
    cursors: &mut HashMap<String, (u64, u64)>,
    now: f64,
) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for src in hub.sources() {
        let st = src.lock();
        let Some(s) = st.session.as_ref() else {
            continue;
        };
        let a = &s.analysis;
        let c = cursors.entry(src.name.clone()).or_insert((s.number, 0));
        if c.0 != s.number {
            *c = (s.number, 0);
        }
        let new = (a.marker_count - c.1) as usize;
        c.1 = a.marker_count;
        let base = a.info.wall_clock.unwrap_or(s.started);
        let skip = a.markers.len().saturating_sub(new);
        for m in a.markers.iter().skip(skip) {
            let mut attributes = vec![kv("session", &src.name), kv("event", "marker")];
            if let Some(cap) = m.cap {
                attributes.push(kv("cap", &cap.to_string()));
            }
            out.push(LogRecord {
                time_unix_nano: nanos(base + m.time as f64 / 1e9),
                observed_time_unix_nano: nanos(now),
                severity_number: SeverityNumber::Info as i32,
                severity_text: "INFO".into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(m.text.clone())),
                }),
                attributes,
                ..Default::default()
            });
        }
    }
    out
}

fn logs_request(
    records: Vec<LogRecord>,
    resource: &[(String, String)],
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "elstream".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn config_the_standard_way() {
        assert_eq!(OtlpConfig::from_env(&env(&[]), false), Ok(None));
        let c = OtlpConfig::from_env(
            &env(&[
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://127.0.0.1:9090/api/v1/otlp/",
                ),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "Authorization=Bearer%20x, X-A = b",
                ),
                ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
                ("OTEL_RESOURCE_ATTRIBUTES", "host.name=h1"),
            ]),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:9090/api/v1/otlp/v1/metrics");
        assert_eq!(
            c.logs_endpoint.as_deref(),
            Some("http://127.0.0.1:9090/api/v1/otlp/v1/logs")
        );
        assert_eq!(
            c.headers,
            vec![
                ("Authorization".into(), "Bearer x".into()),
                ("X-A".into(), "b".into())
            ]
        );
        assert_eq!(c.interval, Duration::from_millis(500));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.resource[0], ("service.name".into(), "elstream".into()));
        let forced = OtlpConfig::from_env(&env(&[]), true).unwrap().unwrap();
        assert_eq!(forced.endpoint, "http://localhost:4318/v1/metrics");
        let e = OtlpConfig::from_env(
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:1"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ]),
            false,
        );
        assert!(e.unwrap_err().contains("only http/protobuf"));
        let e = OtlpConfig::from_env(
            &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x:1")]),
            false,
        );
        assert!(e.unwrap_err().contains("only http://"));
        let e = OtlpConfig::from_env(
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:1"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
            ]),
            false,
        );
        assert!(e.unwrap_err().contains("milliseconds"));
    }
}
