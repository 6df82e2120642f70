//! `/metrics` in the Prometheus text format: frame rate, per-stage latency histograms,
//! predictions per label, dropped frames and camera reconnects; each labelled `camera` when
//! the run has several (the one camera of `--source` has no label, so its series keep their
//! names).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

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
    classified: Family<Labels, Counter>,
    dropped: Family<Labels, Counter>,
    reconnects: Family<Labels, Counter>,
    fps: Family<Labels, Gauge<f64, AtomicU64>>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    predictions: Family<Labels, Counter>,
    /// The loop reports each camera's running totals (dropped, reconnects); counters take the
    /// increase.
    seen: Mutex<HashMap<Option<String>, (u64, u64)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("edge_tl");
        let m = Metrics {
            registry: Registry::default(),
            classified: Family::default(),
            dropped: Family::default(),
            reconnects: Family::default(),
            fps: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            predictions: Family::default(),
            seen: Mutex::default(),
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
        let camera: Labels = r
            .camera
            .iter()
            .map(|c| ("camera".to_string(), c.clone()))
            .collect();
        let with = |key: &str, value: &str| {
            let mut labels = camera.clone();
            labels.push((key.into(), value.into()));
            labels
        };
        self.classified.get_or_create(&camera).inc();
        let (dropped, reconnects) = {
            let mut seen = self.seen.lock().unwrap();
            let last = seen.entry(r.camera.clone()).or_default();
            let increase = (
                r.dropped.saturating_sub(last.0),
                r.reconnects.saturating_sub(last.1),
            );
            *last = (r.dropped, r.reconnects);
            increase
        };
        self.dropped.get_or_create(&camera).inc_by(dropped);
        self.reconnects.get_or_create(&camera).inc_by(reconnects);
        self.fps.get_or_create(&camera).set(r.fps);
        let l = &r.latency_ms;
        for (stage, ms) in [
            ("decode", l.stages.decode),
            ("resize", l.stages.resize),
            ("extract", l.stages.extract),
            ("head", l.stages.head),
            ("total", l.total),
        ] {
            self.latency
                .get_or_create(&with("stage", stage))
                .observe(ms / 1000.0);
        }
        self.predictions
            .get_or_create(&with("label", &r.label))
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
            pending: None,
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

    #[test]
    fn several_cameras_are_counted_apart_under_a_camera_label() {
        let m = Metrics::default();
        let at = |camera: &str, label: &str, dropped| LiveResult {
            camera: Some(camera.into()),
            ..result(label, dropped)
        };
        m.record(&at("door", "cat", 3));
        m.record(&at("hall", "dog", 7));
        m.record(&at("door", "cat", 4));
        let text = m.render();
        for line in [
            "edge_tl_frames_classified_total{camera=\"door\"} 2",
            "edge_tl_frames_classified_total{camera=\"hall\"} 1",
            // Each camera's running total: door 4, hall 7 (not 7 - 3 or 4 - 7).
            "edge_tl_frames_dropped_total{camera=\"door\"} 4",
            "edge_tl_frames_dropped_total{camera=\"hall\"} 7",
            "edge_tl_predictions_total{camera=\"door\",label=\"cat\"} 2",
            "edge_tl_predictions_total{camera=\"hall\",label=\"dog\"} 1",
            "edge_tl_stage_latency_seconds_count{camera=\"hall\",stage=\"extract\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // One description per metric, however many cameras.
        assert_eq!(
            text.matches("# TYPE edge_tl_frames_classified counter")
                .count(),
            1
        );
    }
}
