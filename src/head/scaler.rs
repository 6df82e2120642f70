//! Feature standardisation: each embedding dimension to zero mean and unit variance, fitted on
//! the training embeddings. Logistic regression on raw MobileNet features (ReLU6 outputs, many
//! near zero) converges badly; standardised, it behaves.

use serde::{Deserialize, Serialize};

/// Per-dimension mean and standard deviation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Dimensions whose spread is below this are treated as constant (scaled to 0).
pub const MIN_STD: f32 = 1e-6;

impl Scaler {
    /// Fits on rows of equal width; `rows` must not be empty.
    pub fn fit(rows: &[&[f32]]) -> Scaler {
        let dim = rows[0].len();
        let n = rows.len() as f64;
        let mut mean = vec![0f64; dim];
        for r in rows {
            for (m, &v) in mean.iter_mut().zip(r.iter()) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0f64; dim];
        for r in rows {
            for ((s, &v), m) in var.iter_mut().zip(r.iter()).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        Scaler {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: var.iter().map(|&s| (s / n).sqrt() as f32).collect(),
        }
    }

    /// Standardises one embedding.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        x.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(&v, (&m, &s))| if s < MIN_STD { 0.0 } else { (v - m) / s })
            .collect()
    }

    /// Width of the embeddings it was fitted on.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardises_and_zeroes_constant_dims() {
        let rows: Vec<Vec<f32>> = vec![vec![1.0, 5.0], vec![3.0, 5.0]];
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let s = Scaler::fit(&refs);
        assert_eq!(s.mean, [2.0, 5.0]);
        assert_eq!(s.apply(&[1.0, 5.0]), [-1.0, 0.0]);
        assert_eq!(s.apply(&[3.0, 9.0]), [1.0, 0.0]);
    }
}
