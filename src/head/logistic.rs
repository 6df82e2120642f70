//! Multinomial logistic regression on standardised embeddings, trained with linfa-logistic
//! (L-BFGS with L2 regularisation: loss = sum of -log p(label) + alpha/2 * |W|^2, the same
//! objective as scikit-learn's `LogisticRegression(C = 1/alpha)`).
//!
//! linfa-logistic is reported to fail on wide inputs (rust-ml/linfa#334): on 1280-d MobileNet
//! features its line search can give up or return non-finite weights. edge-tl guards against
//! that three ways: features are standardised first; a fit that errors, returns non-finite
//! weights or fits the training data worse than a constant guess is retried with ten times
//! stronger regularisation; and if linfa still fails, a plain full-batch gradient descent on
//! the same objective (always finite, monotone with its step size) trains the head instead.
//! The result says which path produced it.

use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::HeadError;

/// Settings of the logistic head.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticParams {
    /// L2 strength (scikit-learn's 1/C); > 0.
    pub alpha: f64,
    /// L-BFGS iterations at most.
    pub max_iterations: u64,
    /// Stop when the gradient norm is below this.
    pub gradient_tolerance: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            alpha: 1.0,
            max_iterations: 200,
            gradient_tolerance: 1e-4,
        }
    }
}

/// Checked [`LogisticParams`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidLogisticParams(LogisticParams);

impl LogisticParams {
    /// Checks the settings, naming the one that is wrong.
    pub fn check(self) -> Result<ValidLogisticParams, HeadError> {
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(HeadError::InvalidParams {
                what: "alpha",
                problem: format!("{} must be a positive number", self.alpha),
            });
        }
        if self.max_iterations == 0 {
            return Err(HeadError::InvalidParams {
                what: "max_iterations",
                problem: "must be at least 1".to_string(),
            });
        }
        if !(self.gradient_tolerance.is_finite() && self.gradient_tolerance > 0.0) {
            return Err(HeadError::InvalidParams {
                what: "gradient_tolerance",
                problem: format!("{} must be a positive number", self.gradient_tolerance),
            });
        }
        Ok(ValidLogisticParams(self))
    }
}

/// How a logistic head was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// linfa-logistic's L-BFGS, at the asked alpha.
    Linfa,
    /// linfa-logistic after raising alpha (see `alpha` in the head).
    LinfaStrongerAlpha,
    /// The built-in gradient descent fallback.
    GradientDescent,
}

/// A fitted linear classifier: `logits = W x + b` on standardised features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// One row of `dim` weights per class.
    pub weights: Vec<Vec<f32>>,
    /// One bias per class.
    pub bias: Vec<f32>,
    /// The regularisation actually used.
    pub alpha: f64,
    pub solver: Solver,
}

impl LinearModel {
    /// Class scores (logits) for one standardised embedding.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        self.weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + b)
            .collect()
    }
}

impl ValidLogisticParams {
    /// Fits on standardised rows `x` with labels `y` in `0..n_classes` (every class present).
    pub fn fit(
        &self,
        x: &[Vec<f32>],
        y: &[usize],
        n_classes: usize,
    ) -> Result<LinearModel, HeadError> {
        let p = &self.0;
        let records = to_array(x);
        let baseline = constant_guess_loss(y, n_classes);
        let mut alpha = p.alpha;
        for (attempt, solver) in [Solver::Linfa, Solver::LinfaStrongerAlpha]
            .into_iter()
            .enumerate()
        {
            if attempt > 0 {
                alpha *= 10.0;
            }
            match fit_linfa(&records, y, n_classes, alpha, p) {
                Ok(model) if is_sound(&model, &records, y, alpha, baseline) => {
                    return Ok(LinearModel { solver, ..model })
                }
                Ok(_) => {
                    log::warn!("linfa-logistic (alpha {alpha}) returned an unusable fit; retrying")
                }
                Err(e) => log::warn!("linfa-logistic (alpha {alpha}) failed: {e}; retrying"),
            }
        }
        log::warn!("linfa-logistic failed twice; training the head by gradient descent instead");
        Ok(gradient_descent(&records, y, n_classes, p.alpha, 500))
    }
}

fn to_array(x: &[Vec<f32>]) -> Array2<f64> {
    let dim = x.first().map_or(0, Vec::len);
    Array2::from_shape_fn((x.len(), dim), |(i, j)| f64::from(x[i][j]))
}

fn fit_linfa(
    records: &Array2<f64>,
    y: &[usize],
    n_classes: usize,
    alpha: f64,
    p: &LogisticParams,
) -> Result<LinearModel, String> {
    let targets = Array1::from_iter(y.iter().copied());
    let dataset = Dataset::new(records.clone(), targets);
    let fitted = MultiLogisticRegression::default()
        .alpha(alpha)
        .max_iterations(p.max_iterations)
        .gradient_tolerance(p.gradient_tolerance)
        .fit(&dataset)
        .map_err(|e| e.to_string())?;
    // linfa orders classes by value; ours are 0..n_classes and all present.
    let classes = fitted.classes();
    if classes.len() != n_classes || classes.iter().enumerate().any(|(i, &c)| c != i) {
        return Err(format!("unexpected class order {classes:?}"));
    }
    let params = fitted.params(); // (dim, classes)
    let intercept = fitted.intercept();
    Ok(LinearModel {
        weights: (0..n_classes)
            .map(|c| params.column(c).iter().map(|&v| v as f32).collect())
            .collect(),
        bias: intercept.iter().map(|&v| v as f32).collect(),
        alpha,
        solver: Solver::Linfa,
    })
}

/// Mean negative log-likelihood of predicting the class frequencies for everything.
fn constant_guess_loss(y: &[usize], n_classes: usize) -> f64 {
    let mut counts = vec![0f64; n_classes];
    y.iter().for_each(|&c| counts[c] += 1.0);
    let n = y.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0.0)
        .map(|&c| -(c / n) * (c / n).ln())
        .sum()
}

/// Mean negative log-likelihood of the model on (x, y).
fn mean_nll(model: &LinearModel, records: &Array2<f64>, y: &[usize]) -> f64 {
    let mut total = 0.0;
    for (row, &label) in records.rows().into_iter().zip(y) {
        let x: Vec<f32> = row.iter().map(|&v| v as f32).collect();
        let probs = crate::predict::softmax(&model.logits(&x));
        total -= f64::from(probs[label].max(1e-30)).ln();
    }
    total / y.len() as f64
}

/// A fit is sound when every weight is finite and it explains the training data better than
/// guessing the class frequencies (a diverged or stalled solver does not).
fn is_sound(
    model: &LinearModel,
    records: &Array2<f64>,
    y: &[usize],
    _alpha: f64,
    baseline: f64,
) -> bool {
    let finite = model
        .weights
        .iter()
        .flatten()
        .chain(&model.bias)
        .all(|v| v.is_finite());
    finite && mean_nll(model, records, y) < baseline
}

/// Full-batch gradient descent on the same objective (mean NLL + alpha/(2n) |W|^2), with a step
/// size that halves whenever the loss would rise: slow but unconditionally stable.
fn gradient_descent(
    records: &Array2<f64>,
    y: &[usize],
    n_classes: usize,
    alpha: f64,
    iterations: usize,
) -> LinearModel {
    let (n, dim) = records.dim();
    let mut onehot = Array2::<f64>::zeros((n, n_classes));
    y.iter()
        .enumerate()
        .for_each(|(i, &c)| onehot[(i, c)] = 1.0);
    let mut w = Array2::<f64>::zeros((dim, n_classes));
    let mut b = Array1::<f64>::zeros(n_classes);
    let reg = alpha / n as f64;
    let loss = |w: &Array2<f64>, b: &Array1<f64>| -> (f64, Array2<f64>) {
        let mut z = records.dot(w) + b;
        let mut nll = 0.0;
        for (mut row, t) in z.rows_mut().into_iter().zip(onehot.rows()) {
            let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let sum = row.sum();
            row /= sum;
            nll -= row
                .iter()
                .zip(t)
                .map(|(p, t)| t * p.max(1e-300).ln())
                .sum::<f64>();
        }
        (
            nll / n as f64 + 0.5 * reg * w.iter().map(|v| v * v).sum::<f64>(),
            z,
        )
    };
    let mut step = 1.0;
    let (mut current, mut probs) = loss(&w, &b);
    for _ in 0..iterations {
        let diff = (&probs - &onehot) / n as f64;
        let gw = records.t().dot(&diff) + &w * reg;
        let gb = diff.sum_axis(ndarray::Axis(0));
        loop {
            let w2 = &w - &(&gw * step);
            let b2 = &b - &(&gb * step);
            let (l2, p2) = loss(&w2, &b2);
            if l2 <= current || step < 1e-8 {
                w = w2;
                b = b2;
                current = l2;
                probs = p2;
                step *= 1.5;
                break;
            }
            step *= 0.5;
        }
    }
    LinearModel {
        weights: (0..n_classes)
            .map(|c| w.column(c).iter().map(|&v| v as f32).collect())
            .collect(),
        bias: b.iter().map(|&v| v as f32).collect(),
        alpha,
        solver: Solver::GradientDescent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Wide, few-sample, standardised Gaussian blobs: the shape of the real problem.
    fn blobs(n_per: usize, dim: usize, classes: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..classes)
            .map(|_| (0..dim).map(|_| rng.random_range(-0.3..0.3)).collect())
            .collect();
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            for _ in 0..n_per {
                x.push(
                    centre
                        .iter()
                        .map(|m| m + rng.random_range(-1.0..1.0))
                        .collect(),
                );
                y.push(c);
            }
        }
        (x, y)
    }

    fn accuracy(m: &LinearModel, x: &[Vec<f32>], y: &[usize]) -> f64 {
        let hits = x
            .iter()
            .zip(y)
            .filter(|(r, &l)| crate::predict::argmax(&m.logits(r)) == l)
            .count();
        hits as f64 / y.len() as f64
    }

    #[test]
    fn params_are_checked() {
        let err = LogisticParams {
            alpha: 0.0,
            ..Default::default()
        }
        .check()
        .unwrap_err();
        assert!(err.to_string().starts_with("alpha:"), "{err}");
        assert!(LogisticParams {
            max_iterations: 0,
            ..Default::default()
        }
        .check()
        .is_err());
    }

    #[test]
    fn wide_inputs_train_with_linfa() {
        // 1280-d, the width linfa#334 reports trouble with.
        let (x, y) = blobs(40, 1280, 3, 1);
        let m = LogisticParams::default()
            .check()
            .unwrap()
            .fit(&x, &y, 3)
            .unwrap();
        assert!(m.weights.iter().flatten().all(|v| v.is_finite()));
        assert_ne!(
            m.solver,
            Solver::GradientDescent,
            "linfa should handle standardised input"
        );
        assert!(accuracy(&m, &x, &y) > 0.99);
    }

    #[test]
    fn fallback_trains_a_usable_head() {
        let (x, y) = blobs(30, 256, 4, 2);
        let m = gradient_descent(&to_array(&x), &y, 4, 1.0, 300);
        assert_eq!(m.solver, Solver::GradientDescent);
        assert!(accuracy(&m, &x, &y) > 0.95);
    }
}
