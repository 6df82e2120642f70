//! Training a head from embedded samples: check the dataset can train a head at all, fit the
//! chosen classifier, and estimate its accuracy by stratified k-fold cross-validation.

use std::path::Path;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Backbone, CentroidModel, Classifier, Head, LogisticParams, Scaler, TrainingInfo};
use crate::dataset::{embed_dataset, Dataset, EmbedOptions, EmbeddedSet};
use crate::error::{DatasetError, TrainError};
use crate::metrics::{per_class, ClassReport};
use crate::model::Extractor;
use crate::predict::argmax;
use crate::progress::Progress;

/// Which classifier to train.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadKind {
    Logistic(LogisticParams),
    Centroid,
}

/// Settings of [`train`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    pub kind: HeadKind,
    /// Cross-validation folds; 0 or 1 = no cross-validation.
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// For a logistic head: pick its `alpha` from [`ALPHA_GRID`] by cross-validated accuracy
    /// on the training pictures (the given alpha is used where cross-validation cannot run).
    pub choose_alpha: bool,
}

impl Default for TrainParams {
    fn default() -> Self {
        TrainParams {
            kind: HeadKind::Logistic(LogisticParams::default()),
            folds: 5,
            seed: 0,
            choose_alpha: true,
        }
    }
}

/// The L2 strengths `--alpha auto` tries, strongest first (a tie goes to the stronger one, as
/// in scikit-learn's `LogisticRegressionCV`). The loss sums over pictures, so on standardised
/// 1280-d embeddings alpha = 1 is weak regularisation for a few hundred pictures; the grid
/// spans both sides of it (docs/models.md has what each set picked).
pub const ALPHA_GRID: [f64; 6] = [100.0, 30.0, 10.0, 3.0, 1.0, 0.3];

/// One alpha tried by cross-validation and the accuracy it reached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlphaScore {
    pub alpha: f64,
    pub cv_accuracy: f64,
}

/// A head trained from a dataset folder, with the embedded pictures and what each step took.
#[derive(Debug)]
pub struct FolderTraining {
    pub head: Head,
    /// What cross-validation said of each label and picture, when it ran.
    pub cv: Option<CvReport>,
    /// The warning of [`imbalance`] on the pictures used, if any.
    pub imbalance: Option<String>,
    /// The pictures as embedded (counts, what the cache held, what was skipped and why).
    pub set: EmbeddedSet,
    pub embed_s: f64,
    pub train_s: f64,
}

/// Trains a head on an opened dataset folder (`<root>/<label>/<picture>`): embeds every
/// picture with `extractor` (through the embedding cache unless `embed` says not) and fits
/// `params`. The one path `edge-tl train`, the live page's Train button and `compare` take;
/// where the head is written is the caller's business.
pub fn train_folder(
    dataset: &Dataset,
    extractor: &Extractor,
    embed: &EmbedOptions,
    params: &TrainParams,
    progress: &dyn Progress,
) -> Result<FolderTraining, TrainError> {
    let t = Instant::now();
    let set = embed_dataset(dataset, extractor, embed, progress)?;
    let embed_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (mut head, cv) =
        train_with_report(&set, &dataset.root, Backbone::of(extractor.model()), params)?;
    // The pixels it learnt from: the loop cuts the same region out of every frame.
    head.region = embed.region;
    Ok(FolderTraining {
        imbalance: imbalance(&head.labels, &set.counts()),
        head,
        cv,
        set,
        embed_s,
        train_s: t.elapsed().as_secs_f64(),
    })
}

/// Most pictures one label may have against another before [`imbalance`] warns: a head
/// leans towards the bigger label (Frigate's guide for its classifier advises the same 3x).
pub const MAX_IMBALANCE: f64 = 3.0;

/// A warning when the biggest label has more than [`MAX_IMBALANCE`] times the pictures of the
/// smallest, naming both.
pub fn imbalance(labels: &[String], counts: &[usize]) -> Option<String> {
    let (big, &most) = counts.iter().enumerate().max_by_key(|(_, &n)| n)?;
    let (small, &least) = counts.iter().enumerate().min_by_key(|(_, &n)| n)?;
    if least == 0 || (most as f64) <= MAX_IMBALANCE * least as f64 {
        return None;
    }
    Some(format!(
        "{} has {most} pictures and {} only {least} ({:.1}x): the head will lean towards {}; \
         capture more of {} (at most {MAX_IMBALANCE}x is advised)",
        labels[big],
        labels[small],
        most as f64 / least as f64,
        labels[big],
        labels[small],
    ))
}

/// Refuses datasets that cannot train a head: fewer than two labels, or a label with no usable
/// picture (saying which pictures were skipped and why).
pub fn check_trainable(set: &EmbeddedSet, root: &Path) -> Result<(), DatasetError> {
    if set.labels.len() < 2 {
        return Err(DatasetError::OneLabel {
            path: root.to_path_buf(),
            label: set.labels.first().cloned().unwrap_or_default(),
        });
    }
    for (label, &count) in set.counts().iter().enumerate() {
        if count == 0 {
            let reasons: Vec<String> = set
                .skipped
                .iter()
                .filter(|(l, _)| *l == label)
                .map(|(_, e)| e.to_string())
                .collect();
            let why = if reasons.is_empty() {
                " (the folder is empty)".to_string()
            } else {
                format!(" (skipped: {})", reasons.join("; "))
            };
            return Err(DatasetError::EmptyLabel {
                path: root.to_path_buf(),
                label: set.labels[label].clone(),
                why,
            });
        }
    }
    Ok(())
}

/// Rows and labels for fitting: each sample, plus its mirrored copy when present.
fn rows_of(set: &EmbeddedSet, which: &[usize]) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for &i in which {
        let s = &set.samples[i];
        x.push(s.embedding.clone());
        y.push(s.label);
        if let Some(f) = &s.flipped {
            x.push(f.clone());
            y.push(s.label);
        }
    }
    (x, y)
}

/// Fits the classifier on rows `x` (raw embeddings) with labels `y`.
pub fn fit_classifier(
    kind: &HeadKind,
    x: &[Vec<f32>],
    y: &[usize],
    n_classes: usize,
) -> Result<Classifier, TrainError> {
    fit_after(kind, x, y, n_classes, None)
}

/// [`fit_classifier`], warm-started from `previous` when both are logistic heads fitted on
/// the same rows: the scaler is then the same, so the weights are comparable and `previous`
/// (another alpha's answer) is a close start.
fn fit_after(
    kind: &HeadKind,
    x: &[Vec<f32>],
    y: &[usize],
    n_classes: usize,
    previous: Option<&Classifier>,
) -> Result<Classifier, TrainError> {
    Ok(match kind {
        HeadKind::Centroid => Classifier::Centroid {
            model: CentroidModel::fit(x, y, n_classes),
        },
        HeadKind::Logistic(params) => {
            let (scaler, near) = match previous {
                Some(Classifier::Logistic { scaler, model }) => (scaler.clone(), Some(model)),
                _ => {
                    let refs: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
                    (Scaler::fit(&refs), None)
                }
            };
            let scaled: Vec<Vec<f32>> = x.iter().map(|r| scaler.apply(r)).collect();
            let params = params.clone().check()?;
            let model = match near {
                Some(near) => params.fit_from(&scaled, y, n_classes, near)?,
                None => params.fit(&scaled, y, n_classes)?,
            };
            Classifier::Logistic { scaler, model }
        }
    })
}

/// Stratified fold of each sample: within each label, a seeded shuffle dealt round-robin.
pub fn fold_assignment(labels: &[usize], n_classes: usize, folds: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut fold = vec![0; labels.len()];
    for class in 0..n_classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        for (pos, i) in members.into_iter().enumerate() {
            fold[i] = pos % folds;
        }
    }
    fold
}

/// k-fold cross-validated accuracy of `params.kind`; `None` when a label has fewer than
/// `folds` pictures.
pub fn cross_validate(set: &EmbeddedSet, params: &TrainParams) -> Result<Option<f64>, TrainError> {
    Ok(cross_validate_kind(set, params)?.map(|p| accuracy(set, &p)))
}

/// Each picture's label as predicted by `params.kind` fitted on the other folds.
fn cross_validate_kind(
    set: &EmbeddedSet,
    params: &TrainParams,
) -> Result<Option<Vec<usize>>, TrainError> {
    Ok(
        cross_validate_kinds(set, params, std::slice::from_ref(&params.kind))?
            .map(|mut p| p.swap_remove(0)),
    )
}

/// The share of `set`'s pictures whose predicted label (by index) is theirs.
fn accuracy(set: &EmbeddedSet, predicted: &[usize]) -> f64 {
    let right = set
        .samples
        .iter()
        .zip(predicted)
        .filter(|(s, &p)| s.label == p)
        .count();
    right as f64 / set.samples.len() as f64
}

/// Each picture's label as predicted by the fit on the other folds, for each of `kinds` on the
/// same folds (one split, every kind fitted on each training part); `None` when a label has
/// fewer than `params.folds` pictures.
fn cross_validate_kinds(
    set: &EmbeddedSet,
    params: &TrainParams,
    kinds: &[HeadKind],
) -> Result<Option<Vec<Vec<usize>>>, TrainError> {
    let k = params.folds;
    if k < 2 || set.counts().iter().any(|&c| c < k) {
        return Ok(None);
    }
    let labels: Vec<usize> = set.samples.iter().map(|s| s.label).collect();
    let fold = fold_assignment(&labels, set.labels.len(), k, params.seed);
    // Folds are independent: one per core. Within a fold each kind starts from the previous
    // one's answer (see `fit_after`).
    let per_fold: Vec<Vec<Vec<(usize, usize)>>> = (0..k)
        .into_par_iter()
        .map(|f| {
            let train: Vec<usize> = (0..labels.len()).filter(|&i| fold[i] != f).collect();
            let (x, y) = rows_of(set, &train);
            let mut previous: Option<Classifier> = None;
            let mut predicted = Vec::with_capacity(kinds.len());
            for kind in kinds {
                let classifier = fit_after(kind, &x, &y, set.labels.len(), previous.as_ref())?;
                predicted.push(
                    (0..labels.len())
                        .filter(|&i| fold[i] == f)
                        .map(|i| (i, argmax(&classifier.logits(&set.samples[i].embedding))))
                        .collect(),
                );
                previous = Some(classifier);
            }
            Ok(predicted)
        })
        .collect::<Result<_, TrainError>>()?;
    let mut all = vec![vec![0; labels.len()]; kinds.len()];
    for fold in per_fold {
        for (j, predictions) in fold.into_iter().enumerate() {
            for (i, p) in predictions {
                all[j][i] = p;
            }
        }
    }
    Ok(Some(all))
}

/// What the cross-validation of the head that was fitted says about each label and picture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CvReport {
    /// Precision and recall of each label, from every picture predicted by the other folds.
    pub per_class: Vec<ClassReport>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// The pictures cross-validation got wrong, with what they were taken for: the first
    /// place to look for a picture filed under the wrong label, or a label that needs more.
    pub mistakes: Vec<Mistake>,
}

/// A training picture that cross-validation got wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mistake {
    pub path: std::path::PathBuf,
    pub label: String,
    pub taken_for: String,
}

impl CvReport {
    fn new(set: &EmbeddedSet, predicted: &[usize]) -> CvReport {
        let c = set.labels.len();
        let mut confusion = vec![vec![0usize; c]; c];
        let mut mistakes = Vec::new();
        for (s, &p) in set.samples.iter().zip(predicted) {
            confusion[s.label][p] += 1;
            if s.label != p {
                mistakes.push(Mistake {
                    path: s.path.clone(),
                    label: set.labels[s.label].clone(),
                    taken_for: set.labels[p].clone(),
                });
            }
        }
        CvReport {
            per_class: per_class(&set.labels, &confusion),
            confusion,
            mistakes,
        }
    }
}

/// What [`choose_kind`] settles: the kind, the cross-validation's prediction of each picture,
/// and, when alpha was chosen, every alpha tried.
type Chosen = (HeadKind, Option<Vec<usize>>, Option<Vec<AlphaScore>>);

/// The head kind to fit on all pictures, how cross-validation predicted each picture with it
/// and, when alpha was chosen, every alpha tried. The accuracy of a chosen alpha is the best of
/// the grid on the same folds, so it is slightly optimistic (as `LogisticRegressionCV`'s is).
fn choose_kind(set: &EmbeddedSet, params: &TrainParams) -> Result<Chosen, TrainError> {
    let given = match &params.kind {
        HeadKind::Logistic(given) if params.choose_alpha => given,
        _ => return Ok((params.kind.clone(), cross_validate_kind(set, params)?, None)),
    };
    let kinds: Vec<HeadKind> = ALPHA_GRID
        .iter()
        .map(|&alpha| {
            HeadKind::Logistic(LogisticParams {
                alpha,
                ..given.clone()
            })
        })
        .collect();
    let Some(mut predictions) = cross_validate_kinds(set, params, &kinds)? else {
        return Ok((params.kind.clone(), None, None));
    };
    let scores: Vec<AlphaScore> = ALPHA_GRID
        .iter()
        .zip(&predictions)
        .map(|(&alpha, p)| AlphaScore {
            alpha,
            cv_accuracy: accuracy(set, p),
        })
        .collect();
    // The first best: the grid runs from the strongest regularisation down.
    let best = (0..scores.len()).fold(0, |b, s| {
        if scores[s].cv_accuracy > scores[b].cv_accuracy {
            s
        } else {
            b
        }
    });
    let kind = HeadKind::Logistic(LogisticParams {
        alpha: scores[best].alpha,
        ..given.clone()
    });
    Ok((kind, Some(predictions.swap_remove(best)), Some(scores)))
}

/// Trains a head on every usable sample of `set` and cross-validates it.
pub fn train(
    set: &EmbeddedSet,
    root: &Path,
    backbone: Backbone,
    params: &TrainParams,
) -> Result<Head, TrainError> {
    Ok(train_with_report(set, root, backbone, params)?.0)
}

/// [`train`], with what the cross-validation said of each label and picture (`None` without
/// cross-validation).
pub fn train_with_report(
    set: &EmbeddedSet,
    root: &Path,
    backbone: Backbone,
    params: &TrainParams,
) -> Result<(Head, Option<CvReport>), TrainError> {
    check_trainable(set, root)?;
    let (kind, cv_predicted, alpha_search) = choose_kind(set, params)?;
    let cv_accuracy = cv_predicted.as_ref().map(|p| accuracy(set, p));
    let report = cv_predicted.as_ref().map(|p| CvReport::new(set, p));
    let all: Vec<usize> = (0..set.samples.len()).collect();
    let (x, y) = rows_of(set, &all);
    let classifier = fit_classifier(&kind, &x, &y, set.labels.len())?;
    let chosen = TrainParams {
        kind: kind.clone(),
        ..params.clone()
    };
    let learning_curve =
        super::curve::learning_curve(set, params.folds, params.seed, cv_accuracy, |subset| {
            cross_validate(subset, &chosen)
        })?;
    let head = Head {
        labels: set.labels.clone(),
        backbone,
        classifier,
        training: TrainingInfo {
            samples: set.counts(),
            flip: set.samples.iter().any(|s| s.flipped.is_some()),
            cv_accuracy,
            cv_folds: cv_accuracy.map(|_| params.folds),
            alpha_search,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            learning_curve,
        },
        region: None,
    };
    Ok((head, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Sample;
    use crate::error::DecodeError;

    fn backbone() -> Backbone {
        let m = crate::model::manifest::Manifest::builtin().remove(0);
        Backbone {
            name: m.name,
            sha256: m.sha256,
            embedding_dim: 4,
            input: m.input,
            preprocess: m.preprocess,
        }
    }

    fn set(per_label: &[usize]) -> EmbeddedSet {
        let mut samples = Vec::new();
        for (label, &n) in per_label.iter().enumerate() {
            for i in 0..n {
                let mut e = vec![0.1 * i as f32; 4];
                e[label] += 5.0;
                samples.push(Sample {
                    path: format!("{label}/{i}.jpg").into(),
                    label,
                    embedding: e,
                    flipped: None,
                });
            }
        }
        EmbeddedSet {
            labels: (0..per_label.len()).map(|l| format!("l{l}")).collect(),
            samples,
            skipped: vec![(
                per_label.len() - 1,
                std::sync::Arc::new(DecodeError::Empty {
                    path: "last/zero.jpg".into(),
                }),
            )],
            cached: 0,
            computed: 0,
        }
    }

    #[test]
    fn one_label_and_empty_label_are_refused_with_reasons() {
        let err = check_trainable(&set(&[3]), Path::new("d"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only one label"), "{err}");
        let err = check_trainable(&set(&[3, 0]), Path::new("d"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("label \"l1\" has no usable image"), "{err}");
        assert!(err.contains("last/zero.jpg: the file is empty"), "{err}");
    }

    #[test]
    fn folds_are_stratified_and_seeded() {
        let labels = [0, 0, 0, 0, 1, 1, 1, 1, 1];
        let f = fold_assignment(&labels, 2, 2, 7);
        assert_eq!(f, fold_assignment(&labels, 2, 2, 7));
        for class in 0..2 {
            let in0 = (0..9).filter(|&i| labels[i] == class && f[i] == 0).count();
            let total = labels.iter().filter(|&&l| l == class).count();
            assert!(in0 == total / 2 || in0 == total.div_ceil(2));
        }
    }

    #[test]
    fn trains_both_kinds_and_cross_validates() {
        let s = set(&[6, 6, 6]);
        for kind in [
            HeadKind::Centroid,
            HeadKind::Logistic(LogisticParams::default()),
        ] {
            let params = TrainParams {
                kind,
                folds: 3,
                seed: 1,
                choose_alpha: false,
            };
            let head = train(&s, Path::new("d"), backbone(), &params).unwrap();
            assert_eq!(head.training.cv_accuracy, Some(1.0));
            assert_eq!(argmax(&head.predict(&[0.0, 0.0, 5.0, 0.0])), 2);
        }
        let params = TrainParams {
            folds: 7,
            ..Default::default()
        };
        assert_eq!(cross_validate(&s, &params).unwrap(), None);
    }

    #[test]
    fn an_imbalance_over_three_times_is_named() {
        let labels = ["cat".to_string(), "dog".into(), "nothing".into()];
        assert_eq!(imbalance(&labels, &[10, 30, 12]), None);
        assert_eq!(
            imbalance(&labels, &[10, 31, 12]).unwrap(),
            "dog has 31 pictures and cat only 10 (3.1x): the head will lean towards dog; \
             capture more of cat (at most 3x is advised)"
        );
    }

    #[test]
    fn the_report_names_a_misfiled_picture_and_what_it_was_taken_for() {
        let mut s = set(&[6, 6]);
        // A picture of label 1 filed under label 0.
        s.samples[0].embedding = vec![0.0, 5.0, 0.0, 0.0];
        let params = TrainParams {
            kind: HeadKind::Centroid,
            folds: 3,
            seed: 1,
            choose_alpha: false,
        };
        let (head, report) = train_with_report(&s, Path::new("d"), backbone(), &params).unwrap();
        let report = report.unwrap();
        assert_eq!(
            report.mistakes,
            [Mistake {
                path: "0/0.jpg".into(),
                label: "l0".into(),
                taken_for: "l1".into()
            }]
        );
        assert_eq!(report.confusion, [[5, 1], [0, 6]]);
        assert_eq!(report.per_class[0].recall, 5.0 / 6.0);
        assert_eq!(report.per_class[1].precision, 6.0 / 7.0);
        assert_eq!(head.training.cv_accuracy, Some(11.0 / 12.0));
        // Without cross-validation, no report.
        let none = TrainParams { folds: 0, ..params };
        assert!(train_with_report(&s, Path::new("d"), backbone(), &none)
            .unwrap()
            .1
            .is_none());
    }

    fn alpha_of(head: &Head) -> f64 {
        match &head.classifier {
            Classifier::Logistic { model, .. } => model.alpha,
            Classifier::Centroid { .. } => panic!("not logistic"),
        }
    }

    #[test]
    fn alpha_is_chosen_by_cross_validation_and_ties_go_to_the_strongest() {
        // Label 1 sits between the other two along one axis, with noise across: strong
        // regularisation shrinks the weights until the middle label is never predicted.
        let mut samples = Vec::new();
        for (label, centre) in [(0usize, -1.0f32), (1, 0.0), (2, 1.0)] {
            for i in 0..8 {
                let wobble = (i as f32 - 3.5) * 0.05;
                samples.push(Sample {
                    path: format!("{label}/{i}.jpg").into(),
                    label,
                    embedding: vec![centre + wobble, (i % 3) as f32, (i % 2) as f32, 1.0],
                    flipped: None,
                });
            }
        }
        let hard = EmbeddedSet {
            labels: vec!["a".into(), "b".into(), "c".into()],
            samples,
            skipped: vec![],
            cached: 0,
            computed: 0,
        };
        for s in [set(&[6, 6, 6]), hard] {
            let params = TrainParams {
                folds: 3,
                ..Default::default()
            };
            let head = train(&s, Path::new("d"), backbone(), &params).unwrap();
            let search = head
                .training
                .alpha_search
                .clone()
                .expect("alpha was searched");
            assert_eq!(
                search.iter().map(|a| a.alpha).collect::<Vec<_>>(),
                ALPHA_GRID
            );
            let best = search.iter().map(|a| a.cv_accuracy).fold(0.0, f64::max);
            let first_best = search.iter().find(|a| a.cv_accuracy == best).unwrap();
            assert_eq!(alpha_of(&head), first_best.alpha);
            assert_eq!(head.training.cv_accuracy, Some(best));
            // Each score is that alpha's own cross-validation on the same folds.
            let fixed = TrainParams {
                kind: HeadKind::Logistic(LogisticParams {
                    alpha: search[1].alpha,
                    ..Default::default()
                }),
                choose_alpha: false,
                ..params.clone()
            };
            assert_eq!(
                cross_validate(&s, &fixed).unwrap(),
                Some(search[1].cv_accuracy)
            );
        }
        // A label too small to cross-validate: the given alpha, no search recorded.
        let params = TrainParams {
            folds: 7,
            ..Default::default()
        };
        let head = train(&set(&[6, 6, 6]), Path::new("d"), backbone(), &params).unwrap();
        assert_eq!(head.training.alpha_search, None);
        assert_eq!(alpha_of(&head), LogisticParams::default().alpha);
    }
}
