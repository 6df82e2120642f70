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
use edge_tl::predict::argmax;
use edge_tl::report::{ReportInput, Wrong};

#[derive(Debug, Args)]
pub struct Flags {
    /// Head file written by `edge-tl train`
    head: PathBuf,
    /// Test folder with the same label names as the training data
    testset: PathBuf,
    /// Print one JSON object (accuracy, top5_accuracy, n, per_class, confusion)
    #[arg(long)]
    json: bool,
    /// Also write the results as one self-contained HTML file: per-label numbers, the
    /// confusion matrix, thumbnails of the pictures taken for another label, the training's
    /// learning curve
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
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
    if let Some(out) = &flags.report {
        let wrong: Vec<Wrong> = set
            .samples
            .iter()
            .zip(&results)
            .filter_map(|(s, (truth, probs))| {
                let said = argmax(probs);
                (said != *truth).then(|| Wrong {
                    path: s.path.clone(),
                    label: head.labels[*truth].clone(),
                    taken_for: head.labels[said].clone(),
                    prob: probs[said],
                })
            })
            .collect();
        let skipped: Vec<String> = set
            .skipped
            .iter()
            .map(|(_, e)| format!("{}: {}", e.path().display(), e.reason()))
            .collect();
        let html = edge_tl::report::html(&ReportInput {
            head_path,
            head: &head,
            testset,
            report: &report,
            wrong: &wrong,
            skipped: &skipped,
        });
        edge_tl::atomic_file::write(out, html.as_bytes())
            .with_context(|| format!("writing the report {}", out.display()))?;
        eprintln!("wrote the report {}", out.display());
    }
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
