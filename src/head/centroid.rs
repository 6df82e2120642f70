//! Nearest-class-mean head: each label is the mean direction of its (L2-normalised) embeddings,
//! and a picture goes to the most similar one (cosine). It trains from a single picture per
//! label, which is how a maker starts; the logistic head overtakes it with more samples.

use serde::{Deserialize, Serialize};

/// Softmax sharpness applied to cosine similarities (cosines span a narrow range).
pub const DEFAULT_TEMPERATURE: f32 = 20.0;

/// One unit-length mean direction per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentroidModel {
    pub centroids: Vec<Vec<f32>>,
    /// Scores are `temperature * cosine`.
    pub temperature: f32,
}

fn normalised(x: &[f32]) -> Vec<f32> {
    let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        x.iter().map(|v| v / norm).collect()
    } else {
        x.to_vec()
    }
}

impl CentroidModel {
    /// Fits on rows with labels in `0..n_classes`; every class must have a row.
    pub fn fit(x: &[Vec<f32>], y: &[usize], n_classes: usize) -> CentroidModel {
        let dim = x.first().map_or(0, Vec::len);
        let mut sums = vec![vec![0f32; dim]; n_classes];
        for (row, &label) in x.iter().zip(y) {
            for (s, v) in sums[label].iter_mut().zip(normalised(row)) {
                *s += v;
            }
        }
        CentroidModel {
            centroids: sums.iter().map(|s| normalised(s)).collect(),
            temperature: DEFAULT_TEMPERATURE,
        }
    }

    /// Class scores (temperature * cosine similarity) for one embedding.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        let x = normalised(x);
        self.centroids
            .iter()
            .map(|c| self.temperature * c.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_direction_wins_from_one_sample_each() {
        let m = CentroidModel::fit(&[vec![1.0, 0.0], vec![0.0, 2.0]], &[0, 1], 2);
        let l = m.logits(&[0.9, 0.2]);
        assert!(l[0] > l[1]);
        assert!((l[0] / m.temperature - 0.9 / 0.9219544).abs() < 1e-5);
    }
}
