//! The classifier an explanation aims at: the backbone's own ImageNet classes, or the
//! embedding followed by the user's head, as log-probabilities the engine differentiates.

use candle_core::{Tensor, D};

use crate::grad::net::computing;
use crate::grad::{GradError, HeadLayer, Net};
use crate::head::Head;
use crate::model::ResolvedModel;

/// Picture -> log-probabilities over `labels`.
pub struct Scorer<'a> {
    net: &'a Net,
    output: String,
    head: Option<HeadLayer>,
    labels: Vec<String>,
}

impl<'a> Scorer<'a> {
    /// The model's own classes (its logits output and labels file).
    pub fn backbone(net: &'a Net, model: &ResolvedModel) -> Result<Scorer<'a>, GradError> {
        let (Some(logits), Some(labels)) = (&model.manifest.logits, &model.labels) else {
            return Err(GradError::Input(format!(
                "{} has no classifier output (no [logits] in its manifest); give --head",
                model.manifest.name
            )));
        };
        Ok(Scorer {
            net,
            output: logits.output.clone(),
            head: None,
            labels: labels.clone(),
        })
    }

    /// The model's embedding followed by a trained head.
    pub fn with_head(
        net: &'a Net,
        model: &ResolvedModel,
        head: &Head,
    ) -> Result<Scorer<'a>, GradError> {
        Ok(Scorer {
            net,
            output: model.manifest.embedding.output.clone(),
            head: Some(HeadLayer::new(head).map_err(computing("the head layer"))?),
            labels: head.labels.clone(),
        })
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// "head" or "ImageNet", for messages.
    pub fn label_set(&self) -> &'static str {
        if self.head.is_some() {
            "head"
        } else {
            "ImageNet"
        }
    }

    /// Log-probabilities (N, labels) of pixels (N, H, W, 3) in 0..255.
    pub fn log_probs(&self, pixels: &Tensor) -> Result<Tensor, GradError> {
        let out = self.net.forward(pixels, &[&self.output])?.remove(0);
        let logits = match &self.head {
            Some(h) => h.logits(&out).map_err(computing("the head"))?,
            None => out,
        };
        candle_nn::ops::log_softmax(&logits, D::Minus1).map_err(computing("log-softmax"))
    }

    /// Probabilities of the first picture, as a vector.
    pub fn probs(&self, pixels: &Tensor) -> Result<Vec<f32>, GradError> {
        self.log_probs(pixels)?
            .get(0)
            .and_then(|t| t.exp())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(computing("probabilities"))
    }
}
