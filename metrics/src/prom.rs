//! `/metrics`: the model's families as Prometheus / OpenMetrics text,
//! through prometheus-client's collector interface (values computed at
//! scrape time from the analysis model, so nothing is counted twice).

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::model::{Family, Kind, Value};
use crate::Hub;

#[derive(Debug)]
struct HubCollector(Arc<Hub>);

impl prometheus_client::collector::Collector for HubCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        for f in self.0.families() {
            encode(&mut enc, &f)?;
        }
        Ok(())
    }
}

/// The registry `/metrics` encodes.
pub fn registry(hub: Arc<Hub>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(HubCollector(hub)));
    r
}

pub fn render(reg: &Registry) -> String {
    let mut out = String::with_capacity(64 << 10);
    prometheus_client::encoding::text::encode(&mut out, reg).expect("encoding into a String");
    out
}

fn encode(enc: &mut DescriptorEncoder, f: &Family) -> fmt::Result {
    let unit = match f.unit {
        Some("seconds") => Some(Unit::Seconds),
        Some("bytes") => Some(Unit::Bytes),
        Some(u) => Some(Unit::Other(u.to_string())),
        None => None,
    };
    let ty = match f.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    };
    let mut m = enc.encode_descriptor(f.name, f.help, unit.as_ref(), ty)?;
    for (l, v) in &f.rows {
        let mut fe = m.encode_family(l)?;
        match (f.kind, v) {
            (Kind::Counter, Value::Num(x)) => ConstCounter::new(*x).encode(fe)?,
            (_, Value::Num(x)) => ConstGauge::new(*x).encode(fe)?,
            (_, Value::Hist(h)) => {
                fe.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?
            }
        }
    }
    Ok(())
}
