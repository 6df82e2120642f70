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

pub mod augment;
pub mod blocks;
pub mod export;
mod optimizer;

use std::collections::HashMap;

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::dataset::Dataset;
use crate::error::DecodeError;
use crate::frame::Frame;
use crate::grad::net::computing;
use crate::grad::{pixels, GradError, HeadLayer, Net};
use crate::head::train::{fit_classifier, HeadKind};
use crate::head::LogisticParams;
use crate::model::Manifest;
use crate::preprocess;

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

/// A decoded training picture.
struct Picture {
    label: usize,
    /// Frozen-prefix activations of the picture and of each augmented variant, (1, C, h, w).
    variants: Vec<Tensor>,
}

/// Fine-tunes `net` on `dataset`; `progress` sees the caching and every epoch.
pub fn finetune(
    mut net: Net,
    manifest: &Manifest,
    dataset: &Dataset,
    options: &FinetuneOptions,
    mut progress: impl FnMut(Progress),
) -> Result<Finetuned, FinetuneError> {
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
    let total = decoded.len();
    let mut train = Vec::new();
    let mut val = Vec::new();
    let mut done = 0;
    for chunk in (0..total).collect::<Vec<_>>().chunks(8) {
        let mut images = Vec::new();
        let mut owners = Vec::new();
        for &i in chunk {
            let (_, frame) = &decoded[i];
            images.push(frame.image.clone());
            owners.push(i);
            if !is_val[i] || refit {
                for _ in 0..options.augment {
                    images.push(augment::random_crop_flip(
                        &frame.image,
                        options.crop_area,
                        &mut rng,
                    ));
                    owners.push(i);
                }
            }
        }
        let cached = prefix(&net, &cut.tensor, manifest, &images)?;
        let mut by_owner: HashMap<usize, Vec<Tensor>> = HashMap::new();
        for (owner, t) in owners.into_iter().zip(cached) {
            by_owner.entry(owner).or_default().push(t);
        }
        for &i in chunk {
            let picture = Picture {
                label: decoded[i].0,
                variants: by_owner.remove(&i).unwrap_or_default(),
            };
            if is_val[i] {
                val.push(picture);
            } else {
                train.push(picture);
            }
        }
        done += chunk.len();
        progress(Progress::Caching { done, total });
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
    let mut opt = new_optimizer()?;

    let run = |net: &Net, xs: &[&Tensor]| -> Result<Tensor, GradError> {
        let x = Tensor::cat(xs, 0).map_err(computing("a batch"))?;
        let emb = net
            .eval(HashMap::from([(cut.tensor.clone(), x)]), &[&embedding])?
            .remove(0);
        classify(&emb, head_w.as_tensor(), head_b.as_tensor()).map_err(computing("the classifier"))
    };

    let mut history = Vec::new();
    let mut best: Option<(f64, f64, usize, Vec<Tensor>)> = None;
    let mut since_best = 0;
    let mut order: Vec<usize> = (0..train.len()).collect();
    for epoch in 1..=options.epochs {
        let lr = learning_rate(options, epoch);
        opt.set_lr(lr);
        let (train_loss, train_accuracy) =
            train_epoch(&train, &mut order, &mut opt, &mut rng, options, |xs| {
                run(&net, xs)
            })?;
        let (val_loss, val_accuracy) = if val.is_empty() {
            (None, None)
        } else {
            let (l, a) = evaluate(&val, |xs| run(&net, xs))?;
            (Some(l), Some(a))
        };
        let report = Epoch {
            epoch,
            lr,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
        };
        progress(Progress::Epoch(&report));
        history.push(report);
        // Best = highest validation accuracy, ties to the lower validation loss.
        let score = (val_accuracy.unwrap_or(0.0), -val_loss.unwrap_or(0.0));
        let better = match &best {
            None => true,
            Some((acc, neg_loss, _, _)) => val.is_empty() || score > (*acc, *neg_loss),
        };
        if better {
            best = Some((score.0, score.1, epoch, snapshot(&all_vars)?));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= options.patience.max(1) {
                break;
            }
        }
    }
    let best_epoch = match best {
        Some((_, _, epoch, snapshot)) => {
            for (v, t) in all_vars.iter().zip(&snapshot) {
                v.set(t).map_err(computing("restoring the best epoch"))?;
            }
            epoch
        }
        None => 0,
    };
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
        let mut opt = new_optimizer()?;
        let mut order: Vec<usize> = (0..train.len()).collect();
        for epoch in 1..=best_epoch {
            let lr = learning_rate(options, epoch);
            opt.set_lr(lr);
            let (train_loss, train_accuracy) =
                train_epoch(&train, &mut order, &mut opt, &mut rng, options, |xs| {
                    run(&net, xs)
                })?;
            let report = Epoch {
                epoch,
                lr,
                train_loss,
                train_accuracy,
                val_loss: None,
                val_accuracy: None,
            };
            progress(Progress::Refit {
                epoch: &report,
                of: best_epoch,
            });
            refit_epochs = epoch;
        }
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
    opt: &mut optimizer::Optimizer,
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

/// Copies of the trained variables' current values.
fn snapshot(vars: &[candle_core::Var]) -> Result<Vec<Tensor>, GradError> {
    vars.iter()
        .map(|v| v.as_tensor().copy())
        .collect::<Result<Vec<_>, _>>()
        .map_err(computing("a snapshot"))
}

/// The logistic head on the frozen features of every training variant, as (weights, bias).
fn linear_probe(
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

/// Which pictures are held out: per label, a seeded shuffle and the first share; a label with
/// fewer than two pictures keeps all of them for training.
fn validation_split(
    decoded: &[(usize, Frame)],
    n_labels: usize,
    fraction: f64,
    seed: u64,
) -> Vec<bool> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut is_val = vec![false; decoded.len()];
    for label in 0..n_labels {
        let mut members: Vec<usize> = (0..decoded.len())
            .filter(|&i| decoded[i].0 == label)
            .collect();
        if members.len() < 2 {
            continue;
        }
        members.shuffle(&mut rng);
        let take = ((members.len() as f64 * fraction).round() as usize).min(members.len() - 1);
        for &i in &members[..take] {
            is_val[i] = true;
        }
    }
    is_val
}

/// Frozen-prefix activations of pictures, one (1, C, h, w) tensor each.
fn prefix(
    net: &Net,
    cut: &str,
    manifest: &Manifest,
    images: &[image::RgbImage],
) -> Result<Vec<Tensor>, GradError> {
    let px = images
        .iter()
        .map(|img| pixels(&preprocess::to_input(&Frame::new(img.clone()), manifest)))
        .collect::<Result<Vec<_>, _>>()?;
    let batch = Tensor::cat(&px, 0).map_err(computing("a batch"))?;
    let out = net.forward(&batch, &[cut])?.remove(0).detach();
    (0..images.len())
        .map(|i| out.narrow(0, i, 1).and_then(|t| t.contiguous()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(computing("the cache"))
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
