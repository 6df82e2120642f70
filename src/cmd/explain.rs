//! What `dream` and `attack` share: the float model in the gradient engine, the labels the
//! target is named in, and tract on the int8 model for the transfer check.

use anyhow::Context;

use super::args::ExplainArgs;
use edge_tl::explain::transfer::TractCheck;
use edge_tl::explain::{find_label, Scorer};
use edge_tl::grad::Net;
use edge_tl::head::Head;
use edge_tl::model::store::ResolvedModel;
use edge_tl::predict::{top_k, Ranked};

/// The loaded pieces.
pub struct Setup {
    pub model: ResolvedModel,
    pub net: Net,
    pub head: Option<Head>,
    pub tract: TractCheck,
}

impl Setup {
    pub fn load(args: &ExplainArgs) -> anyhow::Result<Setup> {
        let head = match &args.head {
            Some(p) => Some(super::load_head(p)?),
            None => None,
        };
        let model = super::resolve_model(args.model.model.as_deref(), head.as_ref())?;
        if let (Some(h), Some(p)) = (&head, &args.head) {
            edge_tl::head::file::check_backbone(h, &model, p)?;
        }
        let net = Net::load(&model.path)?;
        let int8 = super::resolve_spec(Some(&args.int8_model))
            .context("choosing the model for the transfer check (--int8-model)")?;
        let tract = TractCheck::new(&int8, head.clone())
            .with_context(|| format!("loading {} in tract", int8.manifest.name))?;
        Ok(Setup {
            model,
            net,
            head,
            tract,
        })
    }

    pub fn scorer(&self) -> anyhow::Result<Scorer<'_>> {
        Ok(match &self.head {
            Some(h) => Scorer::with_head(&self.net, &self.model, h)?,
            None => Scorer::backbone(&self.net, &self.model)?,
        })
    }
}

/// The label index of a --class / --target, with the label set named in the error.
pub fn target(scorer: &Scorer, wanted: &str) -> anyhow::Result<usize> {
    Ok(find_label(scorer.labels(), wanted, scorer.label_set())?)
}

/// Top five as text: `label 93.1%, label 2.0%, ...`.
pub fn top5_text(ranked: &[Ranked]) -> String {
    ranked
        .iter()
        .map(|r| format!("{} {:.1}%", r.label, 100.0 * r.prob))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The five most probable labels.
pub fn top5(probs: &[f32], labels: &[String]) -> Vec<Ranked> {
    top_k(probs, labels, 5)
}
