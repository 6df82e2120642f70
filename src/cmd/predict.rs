//! `edge-tl predict`: a trained head's labels for pictures, or a fine-tuned model's own.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::args::{ModelArg, ThreadsArg};
use edge_tl::pipeline::Pipeline;
use edge_tl::settings::bounds::{self, flag};

#[derive(Debug, Args)]
pub struct Flags {
    /// Head file written by `edge-tl train`; with a fine-tuned `--model FILE.onnx`, which
    /// carries its own classifier and labels, no head: every argument is a picture
    #[arg(value_name = "HEAD|PICTURE")]
    head: PathBuf,
    /// Pictures
    files: Vec<PathBuf>,
    /// How many labels to show per picture
    #[arg(long, default_value_t = 3, value_parser = flag::<usize>(bounds::TOP))]
    top: usize,
    /// One JSON object per picture instead of text
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    threads: ThreadsArg,
}

pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    let (head_path, files, top, json) = (&flags.head, &flags.files, flags.top, flags.json);
    let model = flags.model.model.as_deref();
    let threads = flags.threads.resolve();
    // `predict --model pets-ft.onnx PHOTO...`: a fine-tuned model answers with its own
    // classifier and labels, so a first argument that is a picture is not a head.
    if model.is_some() && edge_tl::preprocess::decode_file(head_path).is_ok() {
        let mut pictures = vec![head_path.to_path_buf()];
        pictures.extend_from_slice(files);
        return super::classify::classify(&pictures, top, json, model, threads);
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
