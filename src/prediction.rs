//! What the live loop makes of one frame and every sink receives: the label after smoothing
//! and threshold, the best classes, and how long each stage took. Below both [`crate::live`],
//! which makes it, and [`crate::sink`], which publishes it.

use serde::Serialize;

use crate::pipeline::StageTimes;
use crate::predict::Ranked;

/// Milliseconds per stage for one frame, plus `total`, from capture to result, which includes
/// the time the frame waited for the inference thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    #[serde(flatten)]
    pub stages: StageTimes,
    pub total: f64,
}

/// One result: what one JSON line of `edge-tl run` holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveResult {
    /// The camera's name, when `run` has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    /// Capture time, RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// The frame's position in the source.
    pub frame: u64,
    /// The picture's file, for folder replays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The best label after smoothing, or `unknown` below the threshold; with `--confirm N`,
    /// the last label that N decisions in a row agreed on (`unknown` before the first).
    pub label: String,
    /// The label this frame decided, while it waits for `--confirm` (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// Smoothed probability of `label` (of the best class when `label` is `unknown`).
    pub prob: f32,
    /// Best classes after smoothing.
    pub top: Vec<Ranked>,
    pub latency_ms: Latency,
    /// Results per second over the last two seconds.
    pub fps: f64,
    /// Frames dropped so far because a newer one arrived first.
    pub dropped: u64,
    /// Times the source was re-opened so far (camera unplugged, stream dropped).
    pub reconnects: u64,
}
