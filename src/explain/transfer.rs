//! Does a picture made against the float model in the engine also fool the device? The same
//! whole-level pixels go through tract on another model file (the int8 one), with the head
//! when the attack aimed at a head.

use crate::error::ModelError;
use crate::frame::Frame;
use crate::head::Head;
use crate::model::{Extractor, Outputs, ResolvedModel};
use crate::predict::softmax;
use crate::preprocess;

/// tract on one model, ready to score pictures of the model's input size.
pub struct TractCheck {
    extractor: Extractor,
    head: Option<Head>,
}

impl TractCheck {
    /// The model's own classes, or its embedding through `head`. The head may come from
    /// another file of the same network (float vs int8): the point is to measure how far
    /// the attack carries, not to serve predictions.
    pub fn new(model: &ResolvedModel, head: Option<Head>) -> Result<TractCheck, ModelError> {
        let outputs = if head.is_some() {
            Outputs::Embedding
        } else {
            Outputs::EmbeddingAndLogits
        };
        Ok(TractCheck {
            extractor: Extractor::load(model, outputs)?,
            head,
        })
    }

    /// The model's name.
    pub fn model_name(&self) -> &str {
        &self.extractor.manifest().name
    }

    /// Class probabilities for a picture (resized to the model's input if it differs).
    pub fn probs(&self, image: &image::RgbImage) -> Result<Vec<f32>, ModelError> {
        let input = preprocess::to_input(&Frame::new(image.clone()), self.extractor.manifest());
        let f = self.extractor.run(&input)?;
        Ok(match (&self.head, &f.logits) {
            (Some(h), _) => h.predict(&f.embedding),
            (None, Some(l)) => softmax(l),
            (None, None) => Vec::new(),
        })
    }
}
