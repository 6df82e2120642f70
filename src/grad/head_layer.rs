//! An on-device head as a differentiable layer on the embedding, so an attack can aim at the
//! user's own labels (`attack --head`). Same arithmetic as [`crate::head::Classifier::logits`].

use candle_core::{Result, Tensor};

use crate::head::scaler::MIN_STD;
use crate::head::{Classifier, Head};

/// The head's logits as candle operations.
pub enum HeadLayer {
    /// Standardisation folded into the linear map: `logits = x A^T + c`.
    Affine { a: Tensor, c: Tensor },
    /// `temperature * cosine(x, centroid)`.
    Cosine { centroids: Tensor, temperature: f64 },
}

impl HeadLayer {
    pub fn new(head: &Head) -> Result<HeadLayer> {
        HeadLayer::of(&head.classifier)
    }

    /// The layer of a classifier.
    pub fn of(classifier: &Classifier) -> Result<HeadLayer> {
        let dev = super::device();
        match classifier {
            Classifier::Logistic { scaler, model } => {
                let k = model.weights.len();
                let d = scaler.dim();
                // (x - m) / s, with dimensions of no spread scaled to 0, then W . + b.
                let inv: Vec<f32> = scaler
                    .std
                    .iter()
                    .map(|&s| if s < MIN_STD { 0.0 } else { 1.0 / s })
                    .collect();
                let mut a = Vec::with_capacity(k * d);
                let mut c = Vec::with_capacity(k);
                for (w, b) in model.weights.iter().zip(&model.bias) {
                    let mut shift = 0f32;
                    for j in 0..d {
                        a.push(w[j] * inv[j]);
                        shift += w[j] * inv[j] * scaler.mean[j];
                    }
                    c.push(b - shift);
                }
                Ok(HeadLayer::Affine {
                    a: Tensor::from_vec(a, (k, d), &dev)?,
                    c: Tensor::from_vec(c, k, &dev)?,
                })
            }
            Classifier::Centroid { model } => {
                let k = model.centroids.len();
                let d = model.centroids.first().map_or(0, Vec::len);
                let flat: Vec<f32> = model.centroids.iter().flatten().copied().collect();
                Ok(HeadLayer::Cosine {
                    centroids: Tensor::from_vec(flat, (k, d), &dev)?,
                    temperature: f64::from(model.temperature),
                })
            }
        }
    }

    /// Logits (N, labels) for embeddings (N, dim).
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            HeadLayer::Affine { a, c } => x.matmul(&a.t()?)?.broadcast_add(c),
            HeadLayer::Cosine {
                centroids,
                temperature,
            } => {
                let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
                let unit = x.broadcast_div(&norm)?;
                unit.matmul(&centroids.t()?)?.affine(*temperature, 0.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{CentroidModel, LinearModel, Scaler};

    fn head(classifier: Classifier) -> Head {
        crate::head::test_head(["a", "b"], classifier)
    }

    /// The candle layer gives the head's own logits, for both kinds of head.
    #[test]
    fn logits_equal_the_heads_own() {
        let x = [0.5f32, 2.0, 1.0];
        let logistic = head(Classifier::Logistic {
            scaler: Scaler {
                mean: vec![0.1, 1.0, 1.0],
                std: vec![0.5, 2.0, 0.0],
            },
            model: LinearModel {
                weights: vec![vec![1.0, -2.0, 3.0], vec![0.5, 0.25, -1.0]],
                bias: vec![0.1, -0.2],
                alpha: 1.0,
                solver: crate::head::logistic::Solver::Lbfgs,
            },
        });
        let centroid = head(Classifier::Centroid {
            model: CentroidModel::fit(&[vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 1.0]], &[0, 1], 2),
        });
        for h in [logistic, centroid] {
            let layer = HeadLayer::new(&h).unwrap();
            let t = Tensor::from_vec(x.to_vec(), (1, 3), &super::super::device()).unwrap();
            let got = layer
                .logits(&t)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let want = h.logits(&x);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
            }
        }
    }
}
