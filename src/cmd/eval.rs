//! `edge-tl eval`: accuracy of a head on a labelled test folder.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::args::{EmbedArgs, ModelArg};
use edge_tl::dataset::{embed_dataset, Dataset, EmbedOptions};
use edge_tl::head::file as head_file;
use edge_tl::metrics::evaluate;
use edge_tl::model::{Extractor, Outputs};

#[derive(Debug, Args)]
pub struct Flags {
    /// Head file written by `edge-tl train`
    head: PathBuf,
    /// Test folder with the same label names as the training data
    testset: PathBuf,
    /// Print one JSON object (accuracy, top5_accuracy, n, per_class, confusion)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    embed: EmbedArgs,
}

pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    let (head_path, testset, json) = (&flags.head, &flags.testset, flags.json);
    let model = flags.model.model.as_deref();
    let head = super::load_head(head_path)?;
    let model = super::resolve_model(model, Some(&head))?;
    head_file::check_backbone(&head, &model, head_path)?;
    let dataset = Dataset::open(testset)
        .with_context(|| format!("reading test set {}", testset.display()))?;
    // Test labels are matched to the head's by name.
    let to_head = dataset.label_indexes_in(&head.labels)?;
    let extractor = Extractor::load(&model, Outputs::Embedding)
        .with_context(|| format!("loading {}", model.path.display()))?;
    let bar = super::progress("embedding");
    // The test pictures are seen as the head sees frames: its region of each.
    let options = EmbedOptions {
        region: head.region,
        ..flags.embed.options(false)
    };
    let set = embed_dataset(&dataset, &extractor, &options, &bar)?;
    super::print_skipped(set.skipped.iter().map(|(_, e)| e.as_ref()));
    let results: Vec<(usize, Vec<f32>)> = set
        .samples
        .iter()
        .map(|s| (to_head[s.label], head.predict(&s.embedding)))
        .collect();
    let report = evaluate(&head.labels, &results);
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["skipped"] = set
            .skipped
            .iter()
            .map(|(_, e)| serde_json::json!({"path": e.path(), "reason": e.reason()}))
            .collect();
        println!("{value}");
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
