//! The camera-loop part of `edge-tl bench`: a recorded 640x480 MJPEG stream replayed through
//! the real `run` loop (file source, feed, decode, resize, extract, head), as fast as it goes.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use edge_tl::live::{run_loop, LiveCamera, LiveOptions};
use edge_tl::model::ResolvedModel;
use edge_tl::pipeline::Pipeline;
use edge_tl::sink::Collect;
use edge_tl::source::jpeg_stream::write_part;
use edge_tl::source::recording::camera_frame;
use edge_tl::source::{Feed, Size, SourceOptions, SourceSpec, Wake};

/// End-to-end loop numbers.
#[derive(Debug, Serialize)]
pub struct LoopReport {
    pub stream: String,
    pub frames: u64,
    pub fps: f64,
    /// Threads per picture at the end (with `auto`, the count it had chosen).
    pub threads: usize,
    pub decode_ms_p50: f64,
    pub resize_ms_p50: f64,
    pub extract_ms_p50: f64,
    pub head_ms_p50: f64,
}

/// The size of the recording made from the photos.
const STREAM_SIZE: Size = Size {
    width: 640,
    height: 480,
};

/// Writes the photos as a 640x480 camera recording into `dir`.
fn record(photos: &[PathBuf], dir: &Path) -> anyhow::Result<PathBuf> {
    let mut stream = Vec::new();
    for p in photos {
        if let Ok(jpeg) = camera_frame(p, STREAM_SIZE) {
            write_part(&mut stream, &jpeg)?;
        }
    }
    let path = dir.join("bench-640x480.mjpg");
    std::fs::write(&path, stream).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Replays `stream` (or a recording made from `photos`) in a loop for `frames` frames.
pub fn measure(
    model: &ResolvedModel,
    stream: Option<&Path>,
    photos: &[PathBuf],
    frames: u64,
    threads: edge_tl::model::Threads,
) -> anyhow::Result<LoopReport> {
    let tmp = tempfile::tempdir()?;
    let (path, label) = match stream {
        Some(s) => (s.to_path_buf(), s.display().to_string()),
        None => (
            record(photos, tmp.path())?,
            format!("{} photos as {STREAM_SIZE} MJPEG", photos.len()),
        ),
    };
    let mut pipeline = Pipeline::backbone(model)?;
    pipeline.set_threads(threads);
    let options = SourceOptions {
        looping: true,
        ..SourceOptions::default()
    };
    let source = edge_tl::source::open(&SourceSpec::Recording(path), &options)?;
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Wake::default());
    let mut cameras = [LiveCamera {
        name: None,
        pipeline,
        feed: Feed::spawn_waking(source, stop.clone(), wake.clone()),
        watcher: None,
        options: LiveOptions::default(),
        review: None,
    }];
    let start = Instant::now();
    let summary = run_loop(
        &mut cameras,
        &wake,
        Some(frames.max(1)),
        &stop,
        &mut Collect::default(),
        &mut || {},
    )?;
    let elapsed = start.elapsed().as_secs_f64();
    let stage = |f: fn(&edge_tl::prediction::Latency) -> f64| {
        let mut v: Vec<f64> = summary.latencies.iter().map(f).collect();
        edge_tl::metrics::percentile(&mut v, 0.5)
    };
    Ok(LoopReport {
        stream: label,
        frames: summary.classified,
        fps: summary.classified as f64 / elapsed,
        threads: cameras[0].pipeline.extractor().threads(),
        decode_ms_p50: stage(|l| l.stages.decode),
        resize_ms_p50: stage(|l| l.stages.resize),
        extract_ms_p50: stage(|l| l.stages.extract),
        head_ms_p50: stage(|l| l.stages.head),
    })
}
