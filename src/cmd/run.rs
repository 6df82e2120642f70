//! `edge-tl run`: classify a camera (or a replay) in real time, one JSON line per result.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::SourceArgs;
use edge_tl::live::{run_loop, HeadWatcher, LiveOptions};
use edge_tl::pipeline::Pipeline;
use edge_tl::sink::JsonLines;
use edge_tl::source::Feed;

pub struct RunArgs {
    pub head: Option<PathBuf>,
    pub live: LiveOptions,
    pub watch: bool,
    pub source: SourceArgs,
    pub model: Option<String>,
    pub threads: usize,
}

/// How often the head file is checked for a new version.
const HEAD_CHECK: Duration = Duration::from_millis(500);

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let stop = super::stop_flag()?;
    let mut pipeline = match &args.head {
        Some(path) => {
            let head = super::load_head(path)?;
            let model = super::resolve_model(args.model.as_deref(), Some(&head))?;
            Pipeline::with_head(&model, head, path).with_context(|| {
                format!(
                    "loading {} with head {}",
                    model.path.display(),
                    path.display()
                )
            })?
        }
        None => {
            let model = super::resolve_model(args.model.as_deref(), None)?;
            Pipeline::backbone(&model)
                .with_context(|| format!("loading {}", model.path.display()))?
        }
    };
    pipeline.set_threads(args.threads);
    let source = super::open_source(&args.source)?;
    eprintln!(
        "classifying {} into {} labels on {} thread{}; Ctrl-C stops",
        source.describe(),
        pipeline.labels().len(),
        args.threads,
        if args.threads == 1 { "" } else { "s" }
    );
    let feed = Feed::spawn(source, stop.clone());
    let mut watcher = match (&args.head, args.watch) {
        (Some(path), true) => Some(HeadWatcher::new(path, HEAD_CHECK)),
        _ => None,
    };
    let mut sink = JsonLines::new(std::io::stdout().lock());
    let summary = run_loop(
        &mut pipeline,
        &feed,
        watcher.as_mut(),
        &args.live,
        &stop,
        &mut sink,
    )
    .context("camera loop")?;
    let f = summary.feed;
    eprintln!(
        "{} frames classified, {} dropped, {} undecodable, {} reconnects, {} head reloads{}",
        summary.classified,
        f.dropped,
        summary.bad_frames,
        f.reconnects,
        summary.head_reloads,
        if summary.source_ended {
            "; the source ended"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}
