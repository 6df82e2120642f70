//! Fine-tuning on a workstation: the last blocks of the backbone and a new classifier for the
//! dataset's labels trained together, in the gradient engine, then exported as an ONNX file
//! tract runs like the shipped ones ([`export`]).
//!
//! Cost is kept down the way the lesson does it: the frozen prefix's activations are computed
//! once per picture and augmented variant ([`augment`]) and cached, so an epoch runs only the
//! trained blocks ([`blocks`]), at 7x7 or 14x14 resolution. A stratified part of the training
//! folder is held out to choose how many epochs to keep (early stopping); by default training
//! then starts over on the whole folder for that many epochs, so the exported network has
//! seen every picture the on-device head would see. Everything random (split, crops, flips,
//! order) comes from `--seed`, so a run repeats exactly.
//!
//! The steps in order: `pictures.rs` splits and caches, `probe.rs` fits the starting
//! classifier, `epochs.rs` runs the epochs (of the selection run and of the refit), and
//! [`finetune`] below wires them together and mixes the result with the starting weights.

pub mod augment;
pub mod blocks;
mod epochs;
pub mod export;
mod optimizer;
mod pictures;
mod probe;

use std::collections::HashMap;

use candle_core::Tensor;
use rand::SeedableRng;

use crate::dataset::Dataset;
use crate::error::DecodeError;
use crate::grad::net::computing;
use crate::grad::{GradError, Net};
use crate::model::Manifest;
use epochs::{run_epochs, snapshot, Keep, Pass};
use pictures::{validation_split, Prefix};
use probe::linear_probe;

pub use blocks::Cut;
pub use optimizer::OptimizerKind;

/// Training settings (`edge-tl finetune` flags).
#[derive(Debug, Clone)]
pub struct FinetuneOptions {
    /// Inverted-residual blocks trained besides the final 1x1 convolution.
    pub unfreeze: usize,
    pub epochs: usize,
    pub lr: f64,
    pub optimizer: OptimizerKind,
    /// Cosine decay of the learning rate to 0 over the epochs (else constant).
    pub cosine: bool,
    pub batch: usize,
    /// Augmented variants per training picture, besides the picture itself.
    pub augment: usize,
    /// Smallest share of a picture's area a random crop keeps.
    pub crop_area: f64,
    /// Share of each label held out for validation (0: none, no early stopping).
    pub val_fraction: f64,
    /// Epochs without a better validation result before stopping.
    pub patience: usize,
    pub weight_decay: f64,
    /// Share of each target spread over all labels: keeps gradients alive once the
    /// classifier is confident on the training pictures.
    pub label_smoothing: f64,
    /// Share of the fine-tuned weights in the result, the rest being the starting weights
    /// (pretrained blocks, linear-probe classifier): 1 keeps the fine-tuned network as trained.
    /// Averaging the two in weight space ("WiSE-FT", Wortsman et al., CVPR 2022) keeps what
    /// the pretrained features knew that a few hundred pictures cannot teach again; 0.5 is
    /// the paper's default.
    pub mix: f64,
    /// After the validation split has chosen the epoch to keep, train again from the start on
    /// every training picture (validation ones included) for that many epochs: the exported
    /// network then learns from the same pictures as the on-device head it is compared with.
    pub refit: bool,
    pub seed: u64,
}

impl Default for FinetuneOptions {
    fn default() -> Self {
        FinetuneOptions {
            unfreeze: 2,
            epochs: 10,
            lr: 1e-4,
            optimizer: OptimizerKind::Adam,
            cosine: true,
            batch: 16,
            augment: 2,
            crop_area: 0.35,
            val_fraction: 0.2,
            patience: 3,
            weight_decay: 1e-4,
            label_smoothing: 0.1,
            mix: 0.5,
            refit: true,
            seed: 0,
        }
    }
}

/// One epoch's numbers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Epoch {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
}

/// What training reports while it runs.
pub enum Progress<'a> {
    /// Frozen-prefix activations computed for `done` of `total` pictures.
    Caching {
        done: usize,
        total: usize,
    },
    Epoch(&'a Epoch),
    /// An epoch of the refit on every picture ([`FinetuneOptions::refit`]), `of` in all.
    Refit {
        epoch: &'a Epoch,
        of: usize,
    },
}

/// Why fine-tuning cannot run.
#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    #[error(transparent)]
    Grad(#[from] GradError),
    #[error("{root}: label {label:?} has no readable picture; add some or remove the folder")]
    EmptyLabel {
        root: std::path::PathBuf,
        label: String,
    },
    #[error("{root}: fine-tuning needs at least two labels, found {found}")]
    OneLabel {
        root: std::path::PathBuf,
        found: usize,
    },
    #[error("fine-tuning option {name}: {problem}")]
    Option { name: &'static str, problem: String },
}

/// A fine-tuned network: the engine's net with trained weights, and the new classifier.
pub struct Finetuned {
    pub net: Net,
    pub cut: Cut,
    /// (labels, embedding dim).
    pub head_weight: Tensor,
    /// (labels).
    pub head_bias: Tensor,
    pub labels: Vec<String>,
    pub history: Vec<Epoch>,
    /// The epoch whose weights were kept (1-based).
    pub best_epoch: usize,
    /// Epochs of the refit on every picture (0: no refit, the kept epoch is exported).
    pub refit_epochs: usize,
    /// Share of the fine-tuned weights mixed with the starting ones ([`FinetuneOptions::mix`]).
    pub mix: f64,
    pub train_pictures: usize,
    pub val_pictures: usize,
    /// Pictures that could not be read, with the reason.
    pub skipped: Vec<DecodeError>,
    embedding: String,
}

impl Finetuned {
    /// Class probabilities for pictures (N, H, W, 3) in 0..255, in the engine.
    pub fn probs(&self, pixels: &Tensor) -> Result<Vec<Vec<f32>>, GradError> {
        let emb = self.net.forward(pixels, &[&self.embedding])?.remove(0);
        let logits = classify(&emb, &self.head_weight, &self.head_bias)
            .map_err(computing("the classifier"))?;
        candle_nn::ops::softmax_last_dim(&logits)
            .and_then(|p| p.to_vec2::<f32>())
            .map_err(computing("probabilities"))
    }
}

/// `emb W^T + b`.
fn classify(emb: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    emb.matmul(&w.t()?)?.broadcast_add(b)
}

impl FinetuneOptions {
    /// Refuses options no run can use (the command line checks the same ranges first).
    pub fn check(&self) -> Result<(), FinetuneError> {
        let bad = |name, problem: &str| {
            Err(FinetuneError::Option {
                name,
                problem: problem.to_string(),
            })
        };
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.batch == 0 {
            return bad("batch", "must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", "must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.mix) {
            return bad("mix", "must be between 0 and 1");
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad("val_fraction", "must be at least 0 and below 1");
        }
        Ok(())
    }
}

/// Fine-tunes `net` on `dataset`; `progress` sees the caching and every epoch.
pub fn finetune(
    mut net: Net,
    manifest: &Manifest,
    dataset: &Dataset,
    options: &FinetuneOptions,
    mut progress: impl FnMut(Progress),
) -> Result<Finetuned, FinetuneError> {
    options.check()?;
    let labels = dataset.labels.clone();
    if labels.len() < 2 {
        return Err(FinetuneError::OneLabel {
            root: dataset.root.clone(),
            found: labels.len(),
        });
    }
    let cut = blocks::cut(&net, options.unfreeze)?;
    let embedding = manifest.embedding.output.clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);

    // Decode, then split: a stratified share of each label for validation.
    let (decoded, skipped) = dataset.decode_all();
    for (i, label) in labels.iter().enumerate() {
        if !decoded.iter().any(|(l, _)| *l == i) {
            return Err(FinetuneError::EmptyLabel {
                root: dataset.root.clone(),
                label: label.clone(),
            });
        }
    }
    let is_val = validation_split(&decoded, labels.len(), options.val_fraction, options.seed);
    // A refit needs the validation pictures' augmented variants too.
    let refit = options.refit && is_val.iter().any(|&v| v);

    // The frozen prefix, once per picture and variant.
    let prefix = Prefix {
        net: &net,
        cut: &cut.tensor,
        manifest,
    };
    let pictures = prefix.cache(
        &decoded,
        |i| !is_val[i] || refit,
        options,
        &mut rng,
        |done, total| progress(Progress::Caching { done, total }),
    )?;
    let mut train = Vec::new();
    let mut val = Vec::new();
    for (picture, &held_out) in pictures.into_iter().zip(&is_val) {
        if held_out {
            val.push(picture);
        } else {
            train.push(picture);
        }
    }
    drop(decoded);

    // What is trained: the cut's weights and a new classifier, which starts as the logistic
    // regression `edge-tl train` would fit on the frozen features ("linear probe, then
    // fine-tune"): training starts where the head ends, and the first steps do not tear the
    // pretrained features apart to fit a random classifier.
    let (w0, b0) = linear_probe(&net, &cut.tensor, &embedding, &train, labels.len())?;
    let vars = net.train_weights(&cut.weights)?;
    let head_w = candle_core::Var::from_tensor(&w0).map_err(computing("the classifier"))?;
    let head_b = candle_core::Var::from_tensor(&b0).map_err(computing("the classifier"))?;
    let mut all_vars = vars.clone();
    all_vars.push(head_w.clone());
    all_vars.push(head_b.clone());
    let start = snapshot(&all_vars)?;
    let new_optimizer = || {
        optimizer::Optimizer::new(
            options.optimizer,
            all_vars.clone(),
            options.lr,
            options.weight_decay,
        )
        .map_err(computing("the optimiser"))
    };

    let run = |net: &Net, xs: &[&Tensor]| -> Result<Tensor, GradError> {
        let x = Tensor::cat(xs, 0).map_err(computing("a batch"))?;
        let emb = net
            .eval(HashMap::from([(cut.tensor.clone(), x)]), &[&embedding])?
            .remove(0);
        classify(&emb, head_w.as_tensor(), head_b.as_tensor()).map_err(computing("the classifier"))
    };

    let selection = Pass {
        train: &train,
        epochs: options.epochs,
        keep: Keep::Best {
            val: &val,
            vars: &all_vars,
            patience: options.patience,
        },
    };
    let (history, best_epoch) = run_epochs(
        selection,
        new_optimizer()?,
        &mut rng,
        options,
        |xs| run(&net, xs),
        |epoch| progress(Progress::Epoch(epoch)),
    )?;
    // The refit: the same schedule for the kept number of epochs, from the same start, on
    // every picture; its own linear probe, and the mix below starts from that.
    let mut start = start;
    let mut refit_epochs = 0;
    let (mut train, val_pictures) = (train, val.len());
    if refit && best_epoch > 0 {
        train.extend(val);
        for (v, t) in vars.iter().zip(&start) {
            v.set(t)
                .map_err(computing("restarting from the pretrained weights"))?;
        }
        let (w0, b0) = linear_probe(&net, &cut.tensor, &embedding, &train, labels.len())?;
        head_w.set(&w0).map_err(computing("the classifier"))?;
        head_b.set(&b0).map_err(computing("the classifier"))?;
        start = snapshot(&all_vars)?;
        let everything = Pass {
            train: &train,
            epochs: best_epoch,
            keep: Keep::Last,
        };
        refit_epochs = run_epochs(
            everything,
            new_optimizer()?,
            &mut rng,
            options,
            |xs| run(&net, xs),
            |epoch| {
                progress(Progress::Refit {
                    epoch,
                    of: best_epoch,
                })
            },
        )?
        .1;
    }
    let mix = options.mix.clamp(0.0, 1.0);
    if mix < 1.0 {
        for (v, t0) in all_vars.iter().zip(&start) {
            let mixed = (v.as_tensor() * mix)
                .and_then(|ft| ft + (t0 * (1.0 - mix))?)
                .map_err(computing("mixing the weights"))?;
            v.set(&mixed).map_err(computing("mixing the weights"))?;
        }
    }
    Ok(Finetuned {
        net,
        cut,
        head_weight: head_w.as_tensor().clone(),
        head_bias: head_b.as_tensor().clone(),
        labels,
        history,
        best_epoch,
        refit_epochs,
        mix,
        train_pictures: train.len() - if refit_epochs > 0 { val_pictures } else { 0 },
        val_pictures,
        skipped,
        embedding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_no_run_can_use_are_refused_before_training() {
        assert!(FinetuneOptions::default().check().is_ok());
        for (options, name) in [
            (
                FinetuneOptions {
                    epochs: 0,
                    ..FinetuneOptions::default()
                },
                "epochs",
            ),
            (
                FinetuneOptions {
                    batch: 0,
                    ..FinetuneOptions::default()
                },
                "batch",
            ),
            (
                FinetuneOptions {
                    lr: f64::NAN,
                    ..FinetuneOptions::default()
                },
                "lr",
            ),
            (
                FinetuneOptions {
                    mix: 1.5,
                    ..FinetuneOptions::default()
                },
                "mix",
            ),
            (
                FinetuneOptions {
                    val_fraction: 1.0,
                    ..FinetuneOptions::default()
                },
                "val_fraction",
            ),
        ] {
            let e = options.check().unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("fine-tuning option {name}: ")),
                "{e}"
            );
        }
    }
}
