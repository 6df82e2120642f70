//! The epoch loop, written once for both runs of [`super::finetune`]: the selection run, which
//! judges every epoch on the held-out pictures, stops once they stop improving and keeps the
//! best epoch, and the refit, which trains on every picture for as many epochs as the
//! selection kept. [`Pass`] says which.
//!
//! Both draw from the one seeded generator in the same order (a shuffle per epoch, then a
//! variant per picture and step), so a seed repeats a run exactly.

use candle_core::{Tensor, Var};
use rand::seq::SliceRandom;
use rand::Rng;

use super::optimizer::Optimizer;
use super::pictures::Picture;
use super::{Epoch, FinetuneOptions};
use crate::grad::net::computing;
use crate::grad::GradError;

/// What differs between the selection run and the refit.
pub(super) struct Pass<'a> {
    /// The pictures trained on.
    pub(super) train: &'a [Picture],
    /// Epochs at most (early stopping may end the selection run sooner).
    pub(super) epochs: usize,
    pub(super) keep: Keep<'a>,
}

/// Which epoch's weights a [`Pass`] ends with.
#[derive(Clone, Copy)]
pub(super) enum Keep<'a> {
    /// The best on `val`: highest accuracy, ties to the lower loss (with no `val` pictures,
    /// the last). Stops after `patience` epochs without a better one and sets `vars` back
    /// to the best epoch's values.
    Best {
        val: &'a [Picture],
        vars: &'a [Var],
        patience: usize,
    },
    /// The last one (the refit, which has no pictures left to judge by).
    Last,
}

/// Trains `pass.train` with `opt` on the learning-rate schedule of `options`, `run` mapping
/// a batch of cached activations to logits; `report` sees every epoch as it ends. Returns
/// every epoch's numbers and the kept epoch (1-based; 0 if none ran).
pub(super) fn run_epochs(
    pass: Pass,
    mut opt: Optimizer,
    rng: &mut rand::rngs::StdRng,
    options: &FinetuneOptions,
    run: impl Fn(&[&Tensor]) -> Result<Tensor, GradError>,
    mut report: impl FnMut(&Epoch),
) -> Result<(Vec<Epoch>, usize), GradError> {
    let mut history = Vec::new();
    let mut best: Option<(f64, f64, usize, Vec<Tensor>)> = None;
    let mut since_best = 0;
    let mut order: Vec<usize> = (0..pass.train.len()).collect();
    for epoch in 1..=pass.epochs {
        let lr = learning_rate(options, epoch);
        opt.set_lr(lr);
        let (train_loss, train_accuracy) =
            train_epoch(pass.train, &mut order, &mut opt, rng, options, &run)?;
        let (val_loss, val_accuracy) = match pass.keep {
            Keep::Best { val, .. } if !val.is_empty() => {
                let (l, a) = evaluate(val, &run)?;
                (Some(l), Some(a))
            }
            _ => (None, None),
        };
        let numbers = Epoch {
            epoch,
            lr,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
        };
        report(&numbers);
        history.push(numbers);
        if let Keep::Best {
            val,
            vars,
            patience,
        } = pass.keep
        {
            // Best = highest validation accuracy, ties to the lower validation loss.
            let score = (val_accuracy.unwrap_or(0.0), -val_loss.unwrap_or(0.0));
            let better = match &best {
                None => true,
                Some((acc, neg_loss, _, _)) => val.is_empty() || score > (*acc, *neg_loss),
            };
            if better {
                best = Some((score.0, score.1, epoch, snapshot(vars)?));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= patience.max(1) {
                    break;
                }
            }
        }
    }
    let kept = match (pass.keep, best) {
        (Keep::Best { vars, .. }, Some((_, _, epoch, snapshot))) => {
            for (v, t) in vars.iter().zip(&snapshot) {
                v.set(t).map_err(computing("restoring the best epoch"))?;
            }
            epoch
        }
        (Keep::Best { .. }, None) => 0,
        (Keep::Last, _) => history.len(),
    };
    Ok((history, kept))
}

/// Copies of the trained variables' current values.
pub(super) fn snapshot(vars: &[Var]) -> Result<Vec<Tensor>, GradError> {
    vars.iter()
        .map(|v| v.as_tensor().copy())
        .collect::<Result<Vec<_>, _>>()
        .map_err(computing("a snapshot"))
}

/// The learning rate of `epoch` (1-based): cosine decay to 0 over `options.epochs`, or constant.
fn learning_rate(options: &FinetuneOptions, epoch: usize) -> f64 {
    if options.cosine {
        let t = (epoch - 1) as f64 / options.epochs as f64;
        options.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    } else {
        options.lr
    }
}

/// One pass over `pictures` in a fresh random order, each step on a random variant of each
/// picture; returns the mean training loss and accuracy.
fn train_epoch(
    pictures: &[Picture],
    order: &mut [usize],
    opt: &mut Optimizer,
    rng: &mut rand::rngs::StdRng,
    options: &FinetuneOptions,
    run: impl Fn(&[&Tensor]) -> Result<Tensor, GradError>,
) -> Result<(f64, f64), GradError> {
    order.shuffle(rng);
    let (mut loss_sum, mut correct) = (0.0, 0usize);
    for batch in order.chunks(options.batch.max(1)) {
        let xs: Vec<&Tensor> = batch
            .iter()
            .map(|&i| {
                let v = &pictures[i].variants;
                &v[rng.random_range(0..v.len())]
            })
            .collect();
        let y: Vec<u32> = batch.iter().map(|&i| pictures[i].label as u32).collect();
        let logits = run(&xs)?;
        let (loss, hits) = loss_and_hits(&logits, &y, options.label_smoothing)?;
        opt.step(&loss).map_err(computing("a training step"))?;
        loss_sum +=
            f64::from(loss.to_scalar::<f32>().map_err(computing("the loss"))?) * batch.len() as f64;
        correct += hits;
    }
    let n = pictures.len().max(1) as f64;
    Ok((loss_sum / n, correct as f64 / n))
}

/// Mean cross-entropy (with label smoothing `smoothing`: that share of the target spread over
/// all labels) and the number of correct answers.
fn loss_and_hits(logits: &Tensor, y: &[u32], smoothing: f64) -> Result<(Tensor, usize), GradError> {
    let target =
        Tensor::from_vec(y.to_vec(), y.len(), logits.device()).map_err(computing("the labels"))?;
    let loss = if smoothing > 0.0 {
        candle_nn::ops::log_softmax(logits, 1)
            .and_then(|log_p| {
                let nll = candle_nn::loss::nll(&log_p, &target)?;
                let uniform = log_p.mean_all()?.neg()?;
                (nll * (1.0 - smoothing))? + (uniform * smoothing)?
            })
            .map_err(computing("the loss"))?
    } else {
        candle_nn::loss::cross_entropy(logits, &target).map_err(computing("the loss"))?
    };
    let predicted = logits
        .argmax(1)
        .and_then(|t| t.to_vec1::<u32>())
        .map_err(computing("the answers"))?;
    let hits = predicted.iter().zip(y).filter(|(p, t)| p == t).count();
    Ok((loss, hits))
}

/// Validation loss and accuracy on the pictures' first (unaugmented) variant.
fn evaluate(
    pictures: &[Picture],
    run: impl Fn(&[&Tensor]) -> Result<Tensor, GradError>,
) -> Result<(f64, f64), GradError> {
    let (mut loss_sum, mut correct) = (0.0, 0);
    for chunk in pictures.chunks(32) {
        let xs: Vec<&Tensor> = chunk.iter().map(|p| &p.variants[0]).collect();
        let y: Vec<u32> = chunk.iter().map(|p| p.label as u32).collect();
        let logits = run(&xs)?.detach();
        let (loss, hits) = loss_and_hits(&logits, &y, 0.0)?;
        loss_sum +=
            f64::from(loss.to_scalar::<f32>().map_err(computing("the loss"))?) * chunk.len() as f64;
        correct += hits;
    }
    let n = pictures.len().max(1) as f64;
    Ok((loss_sum / n, correct as f64 / n))
}
