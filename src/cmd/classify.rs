//! `edge-tl classify`: ImageNet classes from the backbone's own classifier, no head needed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use edge_tl::pipeline::Pipeline;

pub fn run(
    files: &[PathBuf],
    top: usize,
    json: bool,
    model: Option<&str>,
    threads: usize,
) -> anyhow::Result<ExitCode> {
    let model = super::resolve_model(model, None)?;
    let mut pipeline =
        Pipeline::backbone(&model).with_context(|| format!("loading {}", model.path.display()))?;
    pipeline.set_threads(threads);
    super::print_classified(&pipeline, files, top, json)
}
