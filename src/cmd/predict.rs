//! `edge-tl predict`: a trained head's labels for pictures.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use edge_tl::pipeline::Pipeline;

pub fn run(
    head_path: &Path,
    files: &[PathBuf],
    top: usize,
    json: bool,
    model: Option<&str>,
    threads: usize,
) -> anyhow::Result<ExitCode> {
    let head = super::load_head(head_path)?;
    let model = super::resolve_model(model, Some(&head))?;
    let mut pipeline = Pipeline::with_head(&model, head, head_path).with_context(|| {
        format!(
            "loading {} with head {}",
            model.path.display(),
            head_path.display()
        )
    })?;
    pipeline.set_threads(threads);
    super::print_classified(&pipeline, files, top, json)
}
