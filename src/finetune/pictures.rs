//! The training pictures, made ready once before any epoch: which are held out for
//! validation, and the frozen prefix's activations of each picture and augmented variant.
//!
//! Caching the prefix is what keeps fine-tuning affordable: an epoch then runs only the
//! trained blocks. The random draws made here (the split's shuffle, then the crops and flips
//! picture by picture) come in a fixed order from the seed, so a run repeats exactly.

use std::collections::HashMap;

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{augment, FinetuneOptions};
use crate::frame::Frame;
use crate::grad::net::computing;
use crate::grad::{pixels, GradError, Net};
use crate::model::Manifest;
use crate::preprocess;

/// A decoded training picture.
pub(super) struct Picture {
    pub(super) label: usize,
    /// Frozen-prefix activations of the picture and of each augmented variant, (1, C, h, w).
    pub(super) variants: Vec<Tensor>,
}

/// Which pictures are held out: per label, a seeded shuffle and the first share; a label with
/// fewer than two pictures keeps all of them for training.
pub(super) fn validation_split(
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

/// The frozen part of the network: everything before `cut`, where the trained blocks start.
pub(super) struct Prefix<'a> {
    pub(super) net: &'a Net,
    pub(super) cut: &'a str,
    pub(super) manifest: &'a Manifest,
}

impl Prefix<'_> {
    /// One [`Picture`] per decoded picture, in their order: the activations of the picture
    /// and, where `augmented(i)`, of `options.augment` random crops and flips of it, drawn
    /// from `rng`. Runs 8 pictures at a time and calls `cached(done, total)` after each 8.
    pub(super) fn cache(
        &self,
        decoded: &[(usize, Frame)],
        augmented: impl Fn(usize) -> bool,
        options: &FinetuneOptions,
        rng: &mut rand::rngs::StdRng,
        mut cached: impl FnMut(usize, usize),
    ) -> Result<Vec<Picture>, GradError> {
        let total = decoded.len();
        let mut pictures = Vec::with_capacity(total);
        let mut done = 0;
        for chunk in (0..total).collect::<Vec<_>>().chunks(8) {
            let mut images = Vec::new();
            let mut owners = Vec::new();
            for &i in chunk {
                let (_, frame) = &decoded[i];
                images.push(frame.image.clone());
                owners.push(i);
                if augmented(i) {
                    for _ in 0..options.augment {
                        images.push(augment::random_crop_flip(
                            &frame.image,
                            options.crop_area,
                            rng,
                        ));
                        owners.push(i);
                    }
                }
            }
            let activations = self.activations(&images)?;
            let mut by_owner: HashMap<usize, Vec<Tensor>> = HashMap::new();
            for (owner, t) in owners.into_iter().zip(activations) {
                by_owner.entry(owner).or_default().push(t);
            }
            for &i in chunk {
                pictures.push(Picture {
                    label: decoded[i].0,
                    variants: by_owner.remove(&i).unwrap_or_default(),
                });
            }
            done += chunk.len();
            cached(done, total);
        }
        Ok(pictures)
    }

    /// Frozen-prefix activations of pictures, one (1, C, h, w) tensor each.
    fn activations(&self, images: &[image::RgbImage]) -> Result<Vec<Tensor>, GradError> {
        let px = images
            .iter()
            .map(|img| {
                pixels(&preprocess::to_input(
                    &Frame::new(img.clone()),
                    self.manifest,
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = Tensor::cat(&px, 0).map_err(computing("a batch"))?;
        let out = self.net.forward(&batch, &[self.cut])?.remove(0).detach();
        (0..images.len())
            .map(|i| out.narrow(0, i, 1).and_then(|t| t.contiguous()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(computing("the cache"))
    }
}
