//! `edge-tl classify`: ImageNet classes from the backbone's own classifier, no head needed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::args::{ModelArg, ThreadsArg};
use edge_tl::pipeline::Pipeline;
use edge_tl::settings::bounds::{self, flag};

#[derive(Debug, Args)]
pub struct Flags {
    /// Pictures (JPEG, PNG, GIF, BMP, WebP)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// How many classes to show per picture
    #[arg(long, default_value_t = 5, value_parser = flag::<usize>(bounds::TOP))]
    pub top: usize,
    /// One JSON object per picture instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArg,
    #[command(flatten)]
    pub threads: ThreadsArg,
}

pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    classify(
        &flags.files,
        flags.top,
        flags.json,
        flags.model.model.as_deref(),
        flags.threads.resolve(),
    )
}

/// The backbone's classes for each file (also `predict --model FINETUNED.onnx`).
pub fn classify(
    files: &[PathBuf],
    top: usize,
    json: bool,
    model: Option<&str>,
    threads: edge_tl::model::Threads,
) -> anyhow::Result<ExitCode> {
    let model = super::resolve_model(model, None)?;
    let mut pipeline =
        Pipeline::backbone(&model).with_context(|| format!("loading {}", model.path.display()))?;
    pipeline.set_threads(threads);
    super::print_classified(&pipeline, files, top, json)
}
