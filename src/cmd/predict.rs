//! `edge-tl predict`: a trained head's labels for pictures, or a fine-tuned model's own.

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
    // `predict --model pets-ft.onnx PHOTO...`: a fine-tuned model answers with its own
    // classifier and labels, so a first argument that is a picture is not a head.
    if model.is_some() && edge_tl::preprocess::decode_file(head_path).is_ok() {
        let mut pictures = vec![head_path.to_path_buf()];
        pictures.extend_from_slice(files);
        return super::classify::run(&pictures, top, json, model, threads);
    }
    if files.is_empty() {
        anyhow::bail!(
            "name at least one picture after the head {}",
            head_path.display()
        );
    }
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
