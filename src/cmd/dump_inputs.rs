//! `edge-tl dump-inputs`: the exact input tensors edge-tl feeds the network (and, optionally,
//! what tract computes from them), so another runtime can be run on the very same numbers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::args::ModelArg;
use edge_tl::model::{Extractor, Outputs};
use edge_tl::preprocess::{decode_file, to_input, TensorData};

#[derive(Debug, Args)]
pub struct Flags {
    /// Output folder: 0000.bin, 0001.bin, ... (raw tensor bytes, one per picture, in order) and
    /// index.json describing them
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Pictures
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also put the embeddings and logits tract computes into index.json
    #[arg(long)]
    with_outputs: bool,
    #[command(flatten)]
    model: ModelArg,
}

pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    let (out, files, with_outputs) = (flags.out.as_path(), &flags.files, flags.with_outputs);
    let model = flags.model.model.as_deref();
    let model = super::resolve_model(model, None)?;
    let extractor = if with_outputs {
        let outputs = if model.manifest.logits.is_some() {
            Outputs::EmbeddingAndLogits
        } else {
            Outputs::Embedding
        };
        Some(
            Extractor::load(&model, outputs)
                .with_context(|| format!("loading {}", model.path.display()))?,
        )
    } else {
        None
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut index = Vec::new();
    let mut failed = 0;
    for (i, path) in files.iter().enumerate() {
        let frame = match decode_file(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {:#}", anyhow::Error::from(e));
                failed += 1;
                continue;
            }
        };
        let input = to_input(&frame, &model.manifest);
        let name = format!("{i:04}.bin");
        std::fs::write(out.join(&name), input.to_le_bytes())
            .with_context(|| format!("writing {}", out.join(&name).display()))?;
        let mut entry = json!({
            "source": path,
            "tensor": name,
            "shape": input.shape,
            "dtype": match input.data { TensorData::U8(_) => "uint8", TensorData::F32(_) => "float32" },
        });
        if let Some(ex) = &extractor {
            let f = ex.run(&input)?;
            entry["embedding"] = json!(f.embedding);
            entry["logits"] = json!(f.logits);
        }
        index.push(entry);
    }
    let doc = json!({
        "model": model.manifest.name,
        "model_path": model.path,
        "input_name": model.manifest.input.name,
        "embedding_output": model.manifest.embedding.output,
        "logits_output": model.manifest.logits.as_ref().map(|l| l.output.clone()),
        "items": index,
    });
    std::fs::write(out.join("index.json"), serde_json::to_vec_pretty(&doc)?)?;
    println!(
        "wrote {} tensors to {}",
        files.len() - failed,
        out.display()
    );
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
