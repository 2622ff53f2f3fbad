//! `--metrics` / `--otlp`: the exporter inside the proxy. The loop hands each
//! session's header and whole blocks to one metrics thread through a bounded
//! queue (`elstream_metrics::feed`: a push never waits, a full queue drops
//! the block and counts it); that thread runs each session through the
//! analysis model, and `/metrics` (and OTLP) read the models as
//! `elstream metrics` does, with the same families and labels.

use std::sync::Arc;

use elstream_format::Endpoint;
use elstream_metrics::feed::{self, Msg, Queue};
use elstream_metrics::{otlp, Hub};

use super::Config;
use crate::error::{Error, Result};
use crate::store::Chunk;

pub(super) struct Exporter {
    queue: Arc<Queue>,
    /// `/metrics`' bound address (port 0 resolved).
    pub bound: Option<String>,
}

impl Exporter {
    /// Binds `/metrics` and starts the threads; `None` when neither
    /// `--metrics` nor `--otlp` is given.
    pub fn start(cfg: &Config) -> Result<Option<Exporter>> {
        if cfg.metrics.is_none() && !cfg.otlp {
            return Ok(None);
        }
        // OTLP only when asked for (a proxy does not start exporting because
        // OTEL_* happens to be set); the OTEL_* variables configure it.
        let otlp_cfg = match cfg.otlp {
            true => otlp::OtlpConfig::from_env(&|k| std::env::var(k).ok(), true)
                .map_err(|e| Error::Usage(format!("--otlp: {e}")))?,
            false => None,
        };
        let server = match &cfg.metrics {
            Some(l) => Some(
                elstream_metrics::try_bind(l).map_err(|source| Error::Listen {
                    endpoint: format!("http://{l} (--metrics)"),
                    source,
                })?,
            ),
            None => None,
        };
        let hub = Hub::new(
            elstream_metrics::source::ReadOpts {
                analysis: elstream_metrics::analysis_config(cfg.top_spans),
                reconnect_max: cfg.reconnect_max,
                on_data: None,
            },
            Vec::new(),
        );
        let queue = Queue::new(cfg.queue_bytes);
        let _ = hub.feed.set(queue.clone());
        feed::spawn(
            hub.clone(),
            queue.clone(),
            elstream_metrics::analysis_config(cfg.top_spans),
        );
        if let Some(c) = otlp_cfg {
            let stats = Arc::new(otlp::OtlpStats::default());
            let _ = hub.otlp.set(stats.clone());
            tracing::info!("exporting OTLP to {} every {:?}", c.endpoint, c.interval);
            otlp::start(c, hub.clone(), stats);
        }
        let bound = server.map(|s| {
            let bound = s.server_addr().to_ip().map_or_else(
                || cfg.metrics.clone().unwrap_or_default(),
                |a| a.to_string(),
            );
            let hub = hub.clone();
            std::thread::Builder::new()
                .name("metrics http".into())
                .spawn(move || elstream_metrics::serve_http(s, hub))
                .expect("spawn the /metrics thread");
            format!("http://{bound}")
        });
        Ok(Some(Exporter { queue, bound }))
    }

    pub fn start_session(&self, slot: usize, name: &str, endpoint: &Endpoint, header: &Chunk) {
        self.queue.push(Msg::Start {
            slot,
            name: name.to_string(),
            endpoint: endpoint.clone(),
            header: header.bytes.clone(),
        });
    }

    pub fn block(&self, slot: usize, block: &Chunk) {
        self.queue.push(Msg::Block {
            slot,
            bytes: block.bytes.clone(),
        });
    }

    pub fn end_session(&self, slot: usize, data_end: bool) {
        self.queue.push(Msg::End { slot, data_end });
    }
}
