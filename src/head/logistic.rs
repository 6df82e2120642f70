//! Multinomial logistic regression on standardised embeddings, trained with linfa-logistic
//! (L-BFGS with L2 regularisation: loss = sum of -log p(label) + alpha/2 * |W|^2, the same
//! objective as scikit-learn's `LogisticRegression(C = 1/alpha)`).
//!
//! linfa-logistic is reported to fail on wide inputs (rust-ml/linfa#334). On our 1280-d
//! MobileNet embeddings it does not panic or diverge, but its More-Thuente line search stalls
//! far from the optimum and reports success (gradient norm ~240 on pets37, ~95-97% training
//! accuracy, the same at 100 or 1000 iterations; restarting it from that point makes no
//! progress). edge-tl therefore standardises the features, measures the gradient of the
//! objective at linfa's answer, and when it is not converged continues from there with
//! argmin's L-BFGS under a Hager-Zhang line search (the same argmin linfa uses). A fit that
//! is still not finite is an error, never a silently broken head. The head records which
//! path produced it.

use argmin::core::{CostFunction, Executor, Gradient};
use argmin::solver::linesearch::HagerZhangLineSearch;
use argmin::solver::quasinewton::LBFGS;
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
    /// linfa-logistic converged on its own.
    Linfa,
    /// linfa-logistic stalled; argmin's L-BFGS (Hager-Zhang) finished from its answer.
    LinfaThenLbfgs,
    /// linfa-logistic failed; argmin's L-BFGS (Hager-Zhang) trained from zero.
    Lbfgs,
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
    /// The model of weights stacked (dim + 1, classes), the intercept in the last row.
    fn from_stacked(w: &Array2<f64>, alpha: f64, solver: Solver) -> LinearModel {
        let dim = w.nrows() - 1;
        LinearModel {
            weights: (0..w.ncols())
                .map(|c| w.column(c).iter().take(dim).map(|&v| v as f32).collect())
                .collect(),
            bias: w.row(dim).iter().map(|&v| v as f32).collect(),
            alpha,
            solver,
        }
    }

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
        let onehot = one_hot(y, n_classes);
        let problem = Objective {
            x: &records,
            onehot: &onehot,
            alpha: p.alpha,
        };
        let (start, mut solver) = match fit_linfa(&records, y, n_classes, p) {
            Ok(w) => (w, Solver::Linfa),
            Err(e) => {
                log::warn!("linfa-logistic failed ({e}); training with L-BFGS from zero");
                (
                    Array2::zeros((records.ncols() + 1, n_classes)),
                    Solver::Lbfgs,
                )
            }
        };
        let mut w = start;
        let (loss, grad) = problem.eval(&w);
        let converged = |g: &Array2<f64>| norm(g) <= p.gradient_tolerance * y.len() as f64;
        if !loss.is_finite() || !converged(&grad) {
            if solver == Solver::Linfa {
                log::info!(
                    "linfa-logistic stopped at gradient norm {:.3}; continuing with L-BFGS",
                    norm(&grad)
                );
                solver = Solver::LinfaThenLbfgs;
            }
            if !loss.is_finite() {
                w = Array2::zeros(w.raw_dim());
            }
            w = lbfgs(&problem, w, p)?;
        }
        if w.iter().any(|v| !v.is_finite()) {
            return Err(HeadError::Training(
                "the weights are not finite; raise --alpha".to_string(),
            ));
        }
        Ok(LinearModel::from_stacked(&w, p.alpha, solver))
    }

    /// Fits like [`ValidLogisticParams::fit`], starting from `near` (a model of the same rows
    /// at another alpha) with L-BFGS alone: along a path of alphas each answer is close to
    /// the next, which makes cross-validating a grid of alphas a few times the cost of one
    /// fit instead of one fit per alpha.
    pub fn fit_from(
        &self,
        x: &[Vec<f32>],
        y: &[usize],
        n_classes: usize,
        near: &LinearModel,
    ) -> Result<LinearModel, HeadError> {
        let p = &self.0;
        let records = to_array(x);
        let dim = records.ncols();
        if near.weights.len() != n_classes || near.weights.iter().any(|w| w.len() != dim) {
            return self.fit(x, y, n_classes);
        }
        let onehot = one_hot(y, n_classes);
        let problem = Objective {
            x: &records,
            onehot: &onehot,
            alpha: p.alpha,
        };
        let start = Array2::from_shape_fn((dim + 1, n_classes), |(j, c)| {
            f64::from(if j < dim {
                near.weights[c][j]
            } else {
                near.bias[c]
            })
        });
        let w = lbfgs(&problem, start, p)?;
        if w.iter().any(|v| !v.is_finite()) {
            return self.fit(x, y, n_classes);
        }
        Ok(LinearModel::from_stacked(&w, p.alpha, Solver::Lbfgs))
    }
}

fn to_array(x: &[Vec<f32>]) -> Array2<f64> {
    let dim = x.first().map_or(0, Vec::len);
    Array2::from_shape_fn((x.len(), dim), |(i, j)| f64::from(x[i][j]))
}

fn one_hot(y: &[usize], n_classes: usize) -> Array2<f64> {
    let mut onehot = Array2::<f64>::zeros((y.len(), n_classes));
    y.iter()
        .enumerate()
        .for_each(|(i, &c)| onehot[(i, c)] = 1.0);
    onehot
}

fn norm(a: &Array2<f64>) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// linfa's fit, as weights stacked (dim + 1, classes) with the intercept in the last row.
fn fit_linfa(
    records: &Array2<f64>,
    y: &[usize],
    n_classes: usize,
    p: &LogisticParams,
) -> Result<Array2<f64>, String> {
    let dataset = Dataset::new(records.clone(), Array1::from_iter(y.iter().copied()));
    let fitted = MultiLogisticRegression::default()
        .alpha(p.alpha)
        .max_iterations(p.max_iterations)
        .gradient_tolerance(p.gradient_tolerance)
        .fit(&dataset)
        .map_err(|e| e.to_string())?;
    // linfa orders classes by value; ours are 0..n_classes and all present.
    let classes = fitted.classes();
    if classes.len() != n_classes || classes.iter().enumerate().any(|(i, &c)| c != i) {
        return Err(format!("unexpected class order {classes:?}"));
    }
    let dim = records.ncols();
    let mut w = Array2::<f64>::zeros((dim + 1, n_classes));
    w.slice_mut(ndarray::s![..dim, ..]).assign(fitted.params());
    w.row_mut(dim).assign(fitted.intercept());
    Ok(w)
}

/// linfa's objective: sum of -log p(label) + alpha/2 |W|^2 (intercept not penalised), over
/// weights stacked (dim + 1, classes).
#[derive(Clone, Copy)]
struct Objective<'a> {
    x: &'a Array2<f64>,
    onehot: &'a Array2<f64>,
    alpha: f64,
}

impl Objective<'_> {
    /// The loss and the class probabilities (the forward pass alone: the cost half of what
    /// L-BFGS asks for, half the work of [`Objective::eval`]).
    fn forward(&self, w: &Array2<f64>) -> (f64, Array2<f64>) {
        let dim = self.x.ncols();
        let weights = w.slice(ndarray::s![..dim, ..]);
        let mut z = self.x.dot(&weights) + w.row(dim);
        let mut nll = 0.0;
        for (mut row, t) in z.rows_mut().into_iter().zip(self.onehot.rows()) {
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
        let loss = nll + 0.5 * self.alpha * weights.iter().map(|v| v * v).sum::<f64>();
        (loss, z)
    }

    /// The loss and its gradient.
    fn eval(&self, w: &Array2<f64>) -> (f64, Array2<f64>) {
        let dim = self.x.ncols();
        let (loss, probs) = self.forward(w);
        let diff = probs - self.onehot;
        let mut grad = Array2::<f64>::zeros(w.raw_dim());
        grad.slice_mut(ndarray::s![..dim, ..])
            .assign(&(self.x.t().dot(&diff) + &w.slice(ndarray::s![..dim, ..]) * self.alpha));
        grad.row_mut(dim).assign(&diff.sum_axis(ndarray::Axis(0)));
        (loss, grad)
    }

    fn unflatten(&self, p: &Array1<f64>) -> Array2<f64> {
        let classes = self.onehot.ncols();
        Array2::from_shape_vec((p.len() / classes, classes), p.to_vec()).expect("sizes agree")
    }
}

impl CostFunction for Objective<'_> {
    type Param = Array1<f64>;
    type Output = f64;
    fn cost(&self, p: &Self::Param) -> Result<f64, argmin::core::Error> {
        Ok(self.forward(&self.unflatten(p)).0)
    }
}

impl Gradient for Objective<'_> {
    type Param = Array1<f64>;
    type Gradient = Array1<f64>;
    fn gradient(&self, p: &Self::Param) -> Result<Array1<f64>, argmin::core::Error> {
        Ok(Array1::from_iter(self.eval(&self.unflatten(p)).1))
    }
}

/// argmin's L-BFGS with a Hager-Zhang line search, from `start`.
fn lbfgs(
    problem: &Objective<'_>,
    start: Array2<f64>,
    p: &LogisticParams,
) -> Result<Array2<f64>, HeadError> {
    let tol = p.gradient_tolerance * problem.onehot.nrows() as f64;
    let err = |e: argmin::core::Error| HeadError::Training(e.to_string());
    let solver = LBFGS::new(HagerZhangLineSearch::new(), 10)
        .with_tolerance_grad(tol)
        .map_err(err)?
        .with_tolerance_cost(1e-12)
        .map_err(err)?;
    let init = Array1::from_iter(start.iter().copied());
    let result = Executor::new(*problem, solver)
        .configure(|s| s.param(init).max_iters(LBFGS_MAX_ITERS))
        .run()
        .map_err(err)?;
    let best = result
        .state
        .best_param
        .ok_or_else(|| HeadError::Training("L-BFGS returned no parameters".to_string()))?;
    Ok(problem.unflatten(&best))
}

/// L-BFGS iterations at most after linfa (each costs one or two passes over the data).
const LBFGS_MAX_ITERS: u64 = 500;

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
        assert!(accuracy(&m, &x, &y) > 0.99);
    }

    #[test]
    fn lbfgs_from_zero_reaches_the_optimum() {
        let (x, y) = blobs(30, 256, 4, 2);
        let records = to_array(&x);
        let onehot = one_hot(&y, 4);
        let problem = Objective {
            x: &records,
            onehot: &onehot,
            alpha: 1.0,
        };
        let p = LogisticParams::default();
        let w = lbfgs(&problem, Array2::zeros((257, 4)), &p).unwrap();
        let (_, grad) = problem.eval(&w);
        assert!(
            norm(&grad) <= p.gradient_tolerance * 120.0,
            "gradient norm {}",
            norm(&grad)
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (x, y) = blobs(5, 3, 2, 3);
        let records = to_array(&x);
        let onehot = one_hot(&y, 2);
        let problem = Objective {
            x: &records,
            onehot: &onehot,
            alpha: 0.5,
        };
        let w = Array2::from_shape_fn((4, 2), |(i, j)| 0.1 * (i as f64) - 0.2 * (j as f64));
        let (l0, g) = problem.eval(&w);
        for i in 0..4 {
            for j in 0..2 {
                let mut w2 = w.clone();
                w2[(i, j)] += 1e-6;
                let numeric = (problem.eval(&w2).0 - l0) / 1e-6;
                assert!(
                    (numeric - g[(i, j)]).abs() < 1e-4,
                    "({i},{j}): {numeric} vs {}",
                    g[(i, j)]
                );
            }
        }
    }
}
