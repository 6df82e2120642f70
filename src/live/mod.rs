//! The real-time loop behind `edge-tl run`: frames from a [`Feed`] (newest wins), through the
//! one [`Pipeline`], smoothed and thresholded, out to a [`Sink`] as one result per frame.
//! The head file is watched and swapped in when `edge-tl train` replaces it.

pub mod head_watch;
pub mod smooth;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::error::ModelError;
use crate::pipeline::Pipeline;
use crate::pipeline::StageTimes;
use crate::predict::top_k;
use crate::prediction::{Latency, LiveResult};
use crate::sink::{Flow, Sink};
use crate::source::{Feed, FeedStats, Next, SourceError};
pub use head_watch::HeadWatcher;
use smooth::{decide, Smoother};

/// Settings of the loop (the `run` flags).
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Labels listed per result.
    pub top: usize,
    /// Frames averaged (1 = none).
    pub smooth: usize,
    /// Below this smoothed probability the label is `unknown`.
    pub threshold: Option<f32>,
    /// Stop after this many classified frames.
    pub max_frames: Option<u64>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            top: 3,
            smooth: 1,
            threshold: None,
            max_frames: None,
        }
    }
}

/// Why the loop stopped early.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// How a loop went.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoopSummary {
    /// Frames classified.
    pub classified: u64,
    /// Frames that could not be decoded (skipped, with a warning).
    pub bad_frames: u64,
    /// Head files swapped in while running.
    pub head_reloads: u64,
    /// Capture-side counters.
    pub feed: FeedStats,
    /// The source ended (a finished replay), as opposed to a stop request.
    pub source_ended: bool,
    /// Per-stage latencies of every classified frame, for summaries and benchmarks.
    #[serde(skip)]
    pub latencies: Vec<Latency>,
}

/// Runs until `stop` is set, the source ends or fails, a sink stops, or `max_frames` results
/// are made. `tick` is called on every turn of the loop, with or without a frame: liveness
/// signals (systemd's watchdog) come from the loop itself, so a hung loop stops them.
pub fn run_loop(
    pipeline: &mut Pipeline,
    feed: &Feed,
    mut watcher: Option<&mut HeadWatcher>,
    options: &LiveOptions,
    stop: &AtomicBool,
    sink: &mut dyn Sink,
    tick: &mut dyn FnMut(),
) -> Result<LoopSummary, LiveError> {
    let mut summary = LoopSummary::default();
    let mut smoother = Smoother::new(options.smooth);
    let mut recent: VecDeque<Instant> = VecDeque::new();
    while !stop.load(Ordering::SeqCst) {
        tick();
        if let Some(w) = watcher.as_deref_mut() {
            if let Some(loaded) = w.poll() {
                let path = w.path().to_path_buf();
                match loaded.and_then(|head| pipeline.replace_head(head, &path)) {
                    Ok(()) => {
                        log::warn!(
                            "{}: new head loaded ({} labels)",
                            path.display(),
                            pipeline.labels().len()
                        );
                        summary.head_reloads += 1;
                        smoother.reset();
                    }
                    Err(e) => log::error!("{}; keeping the head in use", crate::error::chain(&e)),
                }
            }
        }
        let raw = match feed.next(Duration::from_millis(200)) {
            Next::Frame(raw) => Arc::new(raw),
            Next::Timeout => continue,
            Next::Ended => {
                summary.source_ended = true;
                break;
            }
            Next::Failed(e) => return Err(e.into()),
        };
        let start = Instant::now();
        let frame = match raw.decode() {
            Ok(f) => f,
            Err(e) => {
                log::warn!("{}; frame skipped", crate::error::chain(&e));
                summary.bad_frames += 1;
                continue;
            }
        };
        let decode = start.elapsed().as_secs_f64() * 1000.0;
        let classified = pipeline.classify_frame(&frame)?;
        let probs = smoother.push(&classified.probs);
        let top = top_k(&probs, pipeline.labels(), options.top);
        let label = decide(&top[0].label, top[0].prob, options.threshold);
        let now = Instant::now();
        recent.push_back(now);
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(2))
        {
            recent.pop_front();
        }
        let fps = match (recent.front(), recent.len()) {
            (Some(first), n) if n > 1 => (n - 1) as f64 / now.duration_since(*first).as_secs_f64(),
            _ => 0.0,
        };
        let t = classified.times;
        let total = SystemTime::now()
            .duration_since(raw.captured)
            .unwrap_or_default();
        let latency = Latency {
            stages: StageTimes {
                decode: round3(decode),
                resize: round3(t.resize),
                extract: round3(t.extract),
                head: round3(t.head),
            },
            total: round3(total.as_secs_f64() * 1000.0),
        };
        summary.classified += 1;
        summary.latencies.push(latency);
        let stats = feed.stats();
        let result = LiveResult {
            ts: humantime::format_rfc3339_millis(raw.captured).to_string(),
            frame: raw.index,
            name: raw.name.clone(),
            prob: top[0].prob,
            label,
            top,
            latency_ms: latency,
            fps: round3(fps),
            dropped: stats.dropped,
            reconnects: stats.reconnects,
        };
        if sink.push(&result, &raw) == Flow::Stop {
            break;
        }
        if options.max_frames.is_some_and(|m| summary.classified >= m) {
            break;
        }
    }
    summary.feed = feed.stats();
    Ok(summary)
}

/// Microsecond resolution is plenty in a JSON line.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
