//! `/metrics` in the Prometheus text format: frame rate, per-stage latency histograms,
//! predictions per label, dropped frames and camera reconnects.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::prediction::LiveResult;

type Labels = Vec<(String, String)>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~4 s: resize on a desktop to a slow backbone on a Pi Zero.
    Histogram::new(exponential_buckets(0.001, 2.0, 13))
}

/// The service's counters; updated from the inference loop, read by `/metrics`.
pub struct Metrics {
    registry: Registry,
    classified: Counter,
    dropped: Counter,
    reconnects: Counter,
    fps: Gauge<f64, AtomicU64>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    predictions: Family<Labels, Counter>,
    /// The loop reports running totals; counters take the increase.
    seen_dropped: AtomicU64,
    seen_reconnects: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("edge_tl");
        let m = Metrics {
            registry: Registry::default(),
            classified: Counter::default(),
            dropped: Counter::default(),
            reconnects: Counter::default(),
            fps: Gauge::default(),
            latency: Family::new_with_constructor(latency_histogram),
            predictions: Family::default(),
            seen_dropped: AtomicU64::new(0),
            seen_reconnects: AtomicU64::new(0),
        };
        registry.register(
            "frames_classified",
            "Frames run through the network",
            m.classified.clone(),
        );
        registry.register(
            "frames_dropped",
            "Frames dropped because a newer one arrived before inference was free",
            m.dropped.clone(),
        );
        registry.register(
            "source_reconnects",
            "Times the camera or stream was re-opened",
            m.reconnects.clone(),
        );
        registry.register(
            "fps",
            "Results per second over the last two seconds",
            m.fps.clone(),
        );
        registry.register(
            "stage_latency_seconds",
            "Time per frame in each stage (total = capture to result)",
            m.latency.clone(),
        );
        registry.register(
            "predictions",
            "Results per label (after smoothing and threshold)",
            m.predictions.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Counts one result.
    pub fn record(&self, r: &LiveResult) {
        self.classified.inc();
        let d = r
            .dropped
            .saturating_sub(self.seen_dropped.swap(r.dropped, Ordering::Relaxed));
        self.dropped.inc_by(d);
        let c = r
            .reconnects
            .saturating_sub(self.seen_reconnects.swap(r.reconnects, Ordering::Relaxed));
        self.reconnects.inc_by(c);
        self.fps.set(r.fps);
        let l = &r.latency_ms;
        for (stage, ms) in [
            ("decode", l.stages.decode),
            ("resize", l.stages.resize),
            ("extract", l.stages.extract),
            ("head", l.stages.head),
            ("total", l.total),
        ] {
            self.latency
                .get_or_create(&vec![("stage".into(), stage.into())])
                .observe(ms / 1000.0);
        }
        self.predictions
            .get_or_create(&vec![("label".into(), r.label.clone())])
            .inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::StageTimes;
    use crate::prediction::Latency;

    fn result(label: &str, dropped: u64) -> LiveResult {
        LiveResult {
            camera: None,
            ts: String::new(),
            frame: 0,
            name: None,
            label: label.into(),
            prob: 0.9,
            top: vec![],
            latency_ms: Latency {
                stages: StageTimes {
                    extract: 30.0,
                    ..StageTimes::default()
                },
                total: 45.0,
            },
            fps: 12.5,
            dropped,
            reconnects: 1,
        }
    }

    #[test]
    fn counts_results_labels_drops_and_latencies() {
        let m = Metrics::default();
        m.record(&result("cat", 3));
        m.record(&result("cat", 5));
        m.record(&result("dog", 5));
        let text = m.render();
        for line in [
            "edge_tl_frames_classified_total 3",
            "edge_tl_frames_dropped_total 5",
            "edge_tl_source_reconnects_total 1",
            "edge_tl_fps 12.5",
            "edge_tl_predictions_total{label=\"cat\"} 2",
            "edge_tl_predictions_total{label=\"dog\"} 1",
            "edge_tl_stage_latency_seconds_count{stage=\"extract\"} 3",
            "edge_tl_stage_latency_seconds_bucket{le=\"0.032\",stage=\"extract\"} 3",
            "edge_tl_stage_latency_seconds_bucket{le=\"0.016\",stage=\"extract\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
