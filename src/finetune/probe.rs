//! The classifier fine-tuning starts from: the logistic regression `edge-tl train` would fit
//! on the frozen features ("linear probe, then fine-tune"), so that training starts where the
//! on-device head ends and the first steps do not tear the pretrained features apart to fit
//! a random classifier.

use std::collections::HashMap;

use candle_core::Tensor;

use super::pictures::Picture;
use crate::grad::net::computing;
use crate::grad::{GradError, HeadLayer, Net};
use crate::head::train::{fit_classifier, HeadKind};
use crate::head::LogisticParams;

/// The logistic head on the frozen features of every training variant, as (weights, bias).
pub(super) fn linear_probe(
    net: &Net,
    cut: &str,
    embedding: &str,
    train: &[Picture],
    n_labels: usize,
) -> Result<(Tensor, Tensor), GradError> {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for p in train {
        for v in &p.variants {
            let emb = net
                .eval(HashMap::from([(cut.to_string(), v.clone())]), &[embedding])?
                .remove(0);
            x.push(
                emb.flatten_all()
                    .and_then(|e| e.to_vec1::<f32>())
                    .map_err(computing("the frozen features"))?,
            );
            y.push(p.label);
        }
    }
    let kind = HeadKind::Logistic(LogisticParams::default());
    let classifier = fit_classifier(&kind, &x, &y, n_labels)
        .map_err(|e| GradError::Input(format!("fitting the starting classifier: {e}")))?;
    match HeadLayer::of(&classifier).map_err(computing("the starting classifier"))? {
        HeadLayer::Affine { a, c } => Ok((a, c)),
        HeadLayer::Cosine { .. } => unreachable!("a logistic head folds into an affine map"),
    }
}
