//! The real-time loop behind `edge-tl run`: frames from each camera's [`Feed`] (newest wins),
//! through the camera's [`Pipeline`] (one backbone shared by all cameras), smoothed and
//! thresholded, out to a [`Sink`] as one result per frame. Each head file is watched and
//! swapped in when `edge-tl train` replaces it.

pub mod confirm;
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
use crate::review::ReviewTap;
use crate::sink::{Flow, Sink};
use crate::source::{Feed, FeedStats, Next, RawFrame, SourceError, Wake};
use confirm::Confirm;
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
    /// Decisions in a row needed to change the published label (1 = every decision).
    pub confirm: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            top: 3,
            smooth: 1,
            threshold: None,
            confirm: 1,
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

/// One camera of the loop: its frames, its head and how its answers are shaped. Several
/// cameras share one backbone ([`Pipeline::share`]).
pub struct LiveCamera {
    /// In every result and message when the loop has several cameras.
    pub name: Option<String>,
    pub pipeline: Pipeline,
    pub feed: Feed,
    /// Reloads this camera's head when its file changes.
    pub watcher: Option<HeadWatcher>,
    pub options: LiveOptions,
    /// Offers the frames worth a human look to the review queue of the camera's dataset.
    pub review: Option<ReviewTap>,
}

/// What the loop keeps per camera between its frames.
struct CameraState {
    smoother: Smoother,
    confirm: Confirm,
    recent: VecDeque<Instant>,
    ended: bool,
}

/// Runs until `stop` is set, every source ends (or one fails, with a single camera), a sink
/// stops, or `max_frames` results are made (all cameras together). Cameras take turns: each
/// turn takes the newest frame of the next camera that has one, so a busy camera cannot
/// starve the others, and a camera that has nothing (a dropped stream being retried) holds
/// nobody up. `tick` is called on every turn, with or without a frame: liveness signals
/// (systemd's watchdog) come from the loop itself, so a hung loop stops them.
pub fn run_loop(
    cameras: &mut [LiveCamera],
    wake: &Wake,
    max_frames: Option<u64>,
    stop: &AtomicBool,
    sink: &mut dyn Sink,
    tick: &mut dyn FnMut(),
) -> Result<LoopSummary, LiveError> {
    let mut summary = LoopSummary::default();
    let mut states: Vec<CameraState> = cameras
        .iter()
        .map(|c| CameraState {
            smoother: Smoother::new(c.options.smooth),
            confirm: Confirm::new(c.options.confirm),
            recent: VecDeque::new(),
            ended: false,
        })
        .collect();
    let single = cameras.len() == 1;
    let mut turn = 0;
    'frames: while !stop.load(Ordering::SeqCst) {
        tick();
        for (camera, state) in cameras.iter_mut().zip(&mut states) {
            reload_head(camera, state, &mut summary);
        }
        if states.iter().all(|s| s.ended) {
            summary.source_ended = true;
            break;
        }
        let seen = wake.seen();
        let mut taken = None;
        for k in 0..cameras.len() {
            let i = (turn + k) % cameras.len();
            if states[i].ended {
                continue;
            }
            match cameras[i].feed.next(Duration::ZERO) {
                Next::Frame(raw) => {
                    taken = Some((i, Arc::new(raw)));
                    break;
                }
                Next::Timeout => {}
                Next::Ended => states[i].ended = true,
                Next::Failed(e) if single => return Err(e.into()),
                Next::Failed(e) => {
                    log::error!(
                        "camera {}: {}; the other cameras go on",
                        cameras[i].name.as_deref().unwrap_or("?"),
                        crate::error::chain(&e)
                    );
                    states[i].ended = true;
                }
            }
        }
        let Some((i, raw)) = taken else {
            wake.wait(seen, Duration::from_millis(200));
            continue;
        };
        turn = i + 1;
        let Some(result) = classify(&mut cameras[i], &mut states[i], &raw, &mut summary)? else {
            continue 'frames;
        };
        if sink.push(&result, &raw) == Flow::Stop {
            break;
        }
        if max_frames.is_some_and(|m| summary.classified >= m) {
            break;
        }
    }
    for camera in cameras.iter() {
        let f = camera.feed.stats();
        summary.feed.captured += f.captured;
        summary.feed.dropped += f.dropped;
        summary.feed.reconnects += f.reconnects;
    }
    Ok(summary)
}

/// Swaps in a camera's new head file, if its watcher saw one.
fn reload_head(camera: &mut LiveCamera, state: &mut CameraState, summary: &mut LoopSummary) {
    let Some(w) = camera.watcher.as_mut() else {
        return;
    };
    let Some(loaded) = w.poll() else {
        return;
    };
    let path = w.path().to_path_buf();
    match loaded.and_then(|head| camera.pipeline.replace_head(head, &path)) {
        Ok(()) => {
            log::warn!(
                "{}: new head loaded ({} labels)",
                path.display(),
                camera.pipeline.labels().len()
            );
            summary.head_reloads += 1;
            state.smoother.reset();
            state.confirm.reset();
            if let Some(tap) = camera.review.as_mut() {
                tap.reset();
            }
        }
        Err(e) => log::error!("{}; keeping the head in use", crate::error::chain(&e)),
    }
}

/// One frame through the camera's pipeline to a result; `None` for a frame that does not
/// decode (skipped with a warning).
fn classify(
    camera: &mut LiveCamera,
    state: &mut CameraState,
    raw: &Arc<RawFrame>,
    summary: &mut LoopSummary,
) -> Result<Option<LiveResult>, LiveError> {
    let options = &camera.options;
    let start = Instant::now();
    let frame = match raw.decode() {
        Ok(f) => f,
        Err(e) => {
            match &camera.name {
                Some(name) => {
                    log::warn!("camera {name}: {}; frame skipped", crate::error::chain(&e))
                }
                None => log::warn!("{}; frame skipped", crate::error::chain(&e)),
            }
            summary.bad_frames += 1;
            return Ok(None);
        }
    };
    let decode = start.elapsed().as_secs_f64() * 1000.0;
    let pipeline = &camera.pipeline;
    let classified = pipeline.classify_frame(&frame)?;
    if let Some(tap) = camera.review.as_mut() {
        tap.see(
            raw,
            &classified.probs,
            pipeline.labels(),
            &classified.embedding,
        );
    }
    let probs = state.smoother.push(&classified.probs);
    let top = top_k(&probs, pipeline.labels(), options.top);
    let decided = decide(&top[0].label, top[0].prob, options.threshold);
    let confirmed = state.confirm.push(&decided);
    // The probability of what is published: while a change waits for confirmation, that of
    // the state it would replace.
    let prob = match pipeline.labels().iter().position(|l| *l == confirmed.label) {
        Some(i) if confirmed.pending.is_some() => probs[i],
        _ => top[0].prob,
    };
    let now = Instant::now();
    let recent = &mut state.recent;
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
    let stats = camera.feed.stats();
    Ok(Some(LiveResult {
        camera: camera.name.clone(),
        ts: humantime::format_rfc3339_millis(raw.captured).to_string(),
        frame: raw.index,
        name: raw.name.clone(),
        prob,
        label: confirmed.label,
        pending: confirmed.pending,
        top,
        latency_ms: latency,
        fps: round3(fps),
        dropped: stats.dropped,
        reconnects: stats.reconnects,
    }))
}

/// Microsecond resolution is plenty in a JSON line.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
