//! An "ideal" picture of a class: start from noise and climb the class's log-probability by
//! gradient ascent on the pixels, minus a total-variation penalty that keeps the picture
//! smooth (without it the optimum is high-frequency noise no one would call a picture).
//! Pixels stay within 0..255, the range the model takes.

use candle_core::{Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::{Rng, SeedableRng};

use super::Scorer;
use crate::grad::net::computing;
use crate::grad::GradError;

/// How to dream.
#[derive(Debug, Clone)]
pub struct DreamOptions {
    pub steps: usize,
    /// Weight of the total variation (sum of absolute neighbour differences, pixels scaled
    /// to 0..1) against the target log-probability.
    pub tv: f64,
    /// Adam step size, in pixel levels.
    pub lr: f64,
    /// Random shift of up to this many pixels each step (0: none); blurs away patterns that
    /// only work at one exact position.
    pub jitter: usize,
    pub seed: u64,
}

impl Default for DreamOptions {
    fn default() -> Self {
        DreamOptions {
            steps: 300,
            tv: 0.001,
            lr: 4.0,
            jitter: 4,
            seed: 0,
        }
    }
}

/// One reported step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DreamStep {
    pub step: usize,
    pub target_prob: f32,
    pub tv: f32,
}

/// Optimises a picture for label `target`; `on_step` sees every step's numbers.
/// Returns the pixels (1, H, W, 3), rounded to whole levels.
pub fn dream(
    scorer: &Scorer,
    size: (usize, usize),
    target: usize,
    options: &DreamOptions,
    mut on_step: impl FnMut(&DreamStep),
) -> Result<Tensor, GradError> {
    let (h, w) = size;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let noise: Vec<f32> = (0..h * w * 3)
        .map(|_| rng.random_range(96.0..160.0))
        .collect();
    let dev = crate::grad::device();
    let x = Var::from_vec(noise, (1, h, w, 3), &dev).map_err(computing("the noise"))?;
    let mut adam = AdamW::new(
        vec![x.clone()],
        ParamsAdamW {
            lr: options.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .map_err(computing("the optimiser"))?;
    let err = |what: &'static str| computing(what);
    for step in 1..=options.steps {
        let seen = if options.jitter > 0 {
            let dy = rng.random_range(0..=2 * options.jitter);
            let dx = rng.random_range(0..=2 * options.jitter);
            roll(x.as_tensor(), dy, dx).map_err(err("jitter"))?
        } else {
            x.as_tensor().clone()
        };
        let log_p = scorer
            .log_probs(&seen)?
            .narrow(1, target, 1)
            .and_then(|t| t.sum_all())
            .map_err(err("the target"))?;
        let tv = total_variation(x.as_tensor()).map_err(err("total variation"))?;
        let loss = ((&tv * options.tv).and_then(|t| t - &log_p)).map_err(err("the loss"))?;
        adam.backward_step(&loss).map_err(err("a step"))?;
        x.set(&x.as_tensor().clamp(0f32, 255f32).map_err(err("clamping"))?)
            .map_err(err("clamping"))?;
        on_step(&DreamStep {
            step,
            target_prob: log_p
                .exp()
                .and_then(|p| p.to_scalar::<f32>())
                .unwrap_or(0.0),
            tv: tv.to_scalar::<f32>().unwrap_or(0.0),
        });
    }
    x.as_tensor().round().map_err(err("rounding"))
}

/// Sum of absolute differences between neighbouring pixels, on a 0..1 scale.
pub fn total_variation(x: &Tensor) -> candle_core::Result<Tensor> {
    let (_, h, w, _) = x.dims4()?;
    let dy = (x.narrow(1, 1, h - 1)? - x.narrow(1, 0, h - 1)?)?
        .abs()?
        .sum_all()?;
    let dx = (x.narrow(2, 1, w - 1)? - x.narrow(2, 0, w - 1)?)?
        .abs()?
        .sum_all()?;
    (dy + dx)? / 255.0
}

/// Shifts a (N, H, W, C) picture by (dy, dx) with wrap-around.
fn roll(x: &Tensor, dy: usize, dx: usize) -> candle_core::Result<Tensor> {
    let (_, h, w, _) = x.dims4()?;
    let (dy, dx) = (dy % h, dx % w);
    let x = if dy > 0 {
        Tensor::cat(&[x.narrow(1, h - dy, dy)?, x.narrow(1, 0, h - dy)?], 1)?
    } else {
        x.clone()
    };
    if dx > 0 {
        Tensor::cat(&[x.narrow(2, w - dx, dx)?, x.narrow(2, 0, w - dx)?], 2)
    } else {
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_variation_counts_neighbour_steps() {
        // A 2x2 grey picture with one white pixel: two neighbours differ by 255 in 3 channels.
        let mut v = vec![0f32; 12];
        v[..3].copy_from_slice(&[255.0; 3]);
        let x = Tensor::from_vec(v, (1, 2, 2, 3), &crate::grad::device()).unwrap();
        let tv = total_variation(&x).unwrap().to_scalar::<f32>().unwrap();
        assert!((tv - 6.0).abs() < 1e-6, "{tv}");
        let rolled = roll(&x, 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(&rolled[9..], &[255.0; 3]);
    }
}
