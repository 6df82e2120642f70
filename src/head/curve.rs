//! "Have I captured enough?": cross-validated accuracy against pictures per label, from the
//! same training pictures taken in growing subsets (the same number of each label, chosen by a
//! seeded shuffle), and what its last step says. A curve still rising means more pictures of
//! the kind already there should help; a flat one means they will not, and different pictures
//! (the mistakes, the review queue's frames) are what is missing.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::dataset::EmbeddedSet;
use crate::error::TrainError;

/// One point of the curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Pictures of each label the point was cross-validated on.
    pub per_label: usize,
    /// Its k-fold cross-validated accuracy (0 to 1).
    pub accuracy: f64,
}

/// Above this gain in accuracy over the curve's last step the curve counts as still rising.
pub const STILL_RISING: f64 = 0.02;

/// The pictures per label the curve is measured at: `folds`, then doubling, below the
/// smallest label's count, then that count (the whole set). Empty when the smallest label has
/// fewer than `folds` pictures (no cross-validation).
pub fn sizes(smallest: usize, folds: usize) -> Vec<usize> {
    if folds < 2 || smallest < folds {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut n = folds;
    while n < smallest {
        out.push(n);
        n *= 2;
    }
    out.push(smallest);
    out
}

/// The curve of `set`, each point cross-validated by `cross_validate` (training's own, for the
/// head kind it chose; `None` when a subset cannot be) on the same number of pictures of each
/// label; when every label has as many pictures, the last point is the whole set, whose
/// accuracy `full` training already knows. `None` without cross-validation. `folds` and
/// `seed` are the cross-validation's.
pub fn learning_curve(
    set: &EmbeddedSet,
    folds: usize,
    seed: u64,
    full: Option<f64>,
    cross_validate: impl Fn(&EmbeddedSet) -> Result<Option<f64>, TrainError>,
) -> Result<Option<Vec<CurvePoint>>, TrainError> {
    let counts = set.counts();
    let Some(&smallest) = counts.iter().min() else {
        return Ok(None);
    };
    let Some(full) = full else {
        return Ok(None);
    };
    let sizes = sizes(smallest, folds);
    let Some((&last, fewer)) = sizes.split_last() else {
        return Ok(None);
    };
    // Each label's pictures in one seeded order; a point takes the first n of each.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut order: Vec<Vec<usize>> = (0..set.labels.len())
        .map(|l| {
            (0..set.samples.len())
                .filter(|&i| set.samples[i].label == l)
                .collect()
        })
        .collect();
    for o in &mut order {
        o.shuffle(&mut rng);
    }
    let balanced = counts.iter().all(|&c| c == last);
    let mut points = Vec::new();
    let subsets = if balanced { fewer } else { &sizes[..] };
    for &n in subsets {
        let subset = EmbeddedSet {
            samples: order
                .iter()
                .flat_map(|o| o[..n].iter().map(|&i| set.samples[i].clone()))
                .collect(),
            skipped: Vec::new(),
            ..set.clone()
        };
        if let Some(accuracy) = cross_validate(&subset)? {
            points.push(CurvePoint {
                per_label: n,
                accuracy,
            });
        }
    }
    if balanced {
        points.push(CurvePoint {
            per_label: last,
            accuracy: full,
        });
    }
    Ok(Some(points))
}

/// What the curve's last step says, in a sentence; `None` for a curve of one point.
pub fn verdict(points: &[CurvePoint]) -> Option<String> {
    let [.., before, last] = points else {
        return None;
    };
    let gain = last.accuracy - before.accuracy;
    let step = format!(
        "{:.1}% at {} per label, {:.1}% at {}",
        100.0 * before.accuracy,
        before.per_label,
        100.0 * last.accuracy,
        last.per_label
    );
    Some(if gain > STILL_RISING {
        format!("still rising ({step}): more pictures per label should help")
    } else {
        format!(
            "levelling off ({step}): more pictures like these are unlikely to help much; \
             different ones (the mistakes, the review queue's frames) may"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Sample;
    use crate::head::train::{cross_validate, HeadKind, TrainParams};

    #[test]
    fn sizes_double_from_the_folds_to_the_smallest_label() {
        assert_eq!(sizes(40, 5), [5, 10, 20, 40]);
        assert_eq!(sizes(12, 5), [5, 10, 12]);
        assert_eq!(sizes(5, 5), [5]);
        assert!(sizes(4, 5).is_empty());
        assert!(sizes(40, 0).is_empty());
    }

    /// Two labels around two centres, noisy enough that a few pictures are not enough.
    fn noisy(per_label: usize) -> EmbeddedSet {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let samples = (0..2 * per_label)
            .map(|i| {
                let label = i % 2;
                let embedding = (0..16)
                    .map(|d| {
                        let centre = if d < 2 && label == 1 { 1.0 } else { 0.0 };
                        centre + rand::Rng::random_range(&mut rng, -1.0f32..1.0)
                    })
                    .collect();
                Sample {
                    path: format!("{label}/{i}.jpg").into(),
                    label,
                    embedding,
                    flipped: None,
                }
            })
            .collect();
        EmbeddedSet {
            labels: vec!["a".into(), "b".into()],
            samples,
            skipped: Vec::new(),
            cached: 0,
            computed: 0,
        }
    }

    #[test]
    fn the_curve_ends_at_the_whole_set_and_says_what_its_last_step_means() {
        let set = noisy(40);
        let params = TrainParams {
            kind: HeadKind::Centroid,
            folds: 5,
            seed: 0,
            choose_alpha: false,
        };
        let full = cross_validate(&set, &params).unwrap();
        let cv = |s: &EmbeddedSet| cross_validate(s, &params);
        let curve = learning_curve(&set, 5, 0, full, cv).unwrap().unwrap();
        let sizes: Vec<usize> = curve.iter().map(|p| p.per_label).collect();
        assert_eq!(sizes, [5, 10, 20, 40]);
        assert_eq!(curve[3].accuracy, full.unwrap());
        assert!(curve.iter().all(|p| (0.0..=1.0).contains(&p.accuracy)));
        // A point is the cross-validation of its own subset: 5 per label is 10 pictures, so
        // its accuracy is a multiple of 1/10.
        assert!((curve[0].accuracy * 10.0 - (curve[0].accuracy * 10.0).round()).abs() < 1e-9);

        let rising = [
            CurvePoint {
                per_label: 5,
                accuracy: 0.7,
            },
            CurvePoint {
                per_label: 10,
                accuracy: 0.8,
            },
        ];
        assert_eq!(
            verdict(&rising).unwrap(),
            "still rising (70.0% at 5 per label, 80.0% at 10): more pictures per label should help"
        );
        let flat = [
            CurvePoint {
                per_label: 10,
                accuracy: 0.9,
            },
            CurvePoint {
                per_label: 20,
                accuracy: 0.91,
            },
        ];
        assert!(verdict(&flat)
            .unwrap()
            .starts_with("levelling off (90.0% at 10 per label, 91.0% at 20)"));
        assert_eq!(verdict(&flat[..1]), None);
        // Without cross-validation, no curve.
        assert_eq!(learning_curve(&set, 5, 0, None, cv).unwrap(), None);
        let few = noisy(4);
        assert_eq!(learning_curve(&few, 5, 0, Some(0.5), cv).unwrap(), None);
        // Labels of different sizes: every point, the last too, is a balanced subset (not the
        // whole set, whose bigger label would lift its accuracy).
        let mut lopsided = noisy(40);
        let mut dropped = 0;
        lopsided.samples.retain(|s| {
            s.label == 0 || {
                dropped += 1;
                dropped > 28
            }
        });
        assert_eq!(lopsided.counts(), [40, 12]);
        let cv = |s: &EmbeddedSet| cross_validate(s, &params);
        let curve = learning_curve(&lopsided, 5, 0, Some(0.99), cv)
            .unwrap()
            .unwrap();
        let sizes: Vec<usize> = curve.iter().map(|p| p.per_label).collect();
        assert_eq!(sizes, [5, 10, 12]);
        assert_ne!(curve[2].accuracy, 0.99, "not the whole set's");
        // 12 of each is 24 pictures: a multiple of 1/24.
        assert!((curve[2].accuracy * 24.0 - (curve[2].accuracy * 24.0).round()).abs() < 1e-9);
    }
}
