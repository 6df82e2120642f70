//! Adversarial pictures: a targeted iterative gradient attack (projected gradient descent
//! under an L-infinity budget). Each step moves every pixel by a whole number of levels in the
//! direction that raises the target's log-probability, then clips to the budget around the
//! original and to 0..255. Pixels therefore stay whole levels throughout: the PNG written is
//! exactly the picture that was optimised, and the budget holds exactly.

use candle_core::{Tensor, Var};

use super::Scorer;
use crate::grad::net::computing;
use crate::grad::GradError;

/// The attack's budget and stopping rule.
#[derive(Debug, Clone)]
pub struct AttackOptions {
    /// Largest change of any pixel, in levels (8/255 -> 8).
    pub eps: u8,
    /// Change per step, in levels.
    pub step: u8,
    pub max_steps: usize,
    /// Stop once the target has this probability.
    pub until: f32,
}

/// Where an attack ended.
#[derive(Debug, Clone)]
pub struct Attacked {
    /// The adversarial pixels (1, H, W, 3), whole levels.
    pub pixels: Tensor,
    pub steps: usize,
    /// The target's probability after the last step.
    pub target_prob: f32,
    /// Largest absolute pixel change, in levels.
    pub linf: u8,
}

/// Attacks `original` (1, H, W, 3 whole levels) towards label `target`.
pub fn attack(
    scorer: &Scorer,
    original: &Tensor,
    target: usize,
    options: &AttackOptions,
) -> Result<Attacked, GradError> {
    let err = |what: &'static str| computing(what);
    let eps = f64::from(options.eps);
    let low = original
        .affine(1.0, -eps)
        .and_then(|t| t.clamp(0f32, 255f32))
        .map_err(err("the budget"))?;
    let high = original
        .affine(1.0, eps)
        .and_then(|t| t.clamp(0f32, 255f32))
        .map_err(err("the budget"))?;
    let mut x = original.clone();
    let mut steps = 0;
    let target_prob = loop {
        let var = Var::from_tensor(&x).map_err(err("the picture"))?;
        let log_p = scorer
            .log_probs(var.as_tensor())?
            .narrow(1, target, 1)
            .and_then(|t| t.sum_all())
            .map_err(err("the target"))?;
        let p = log_p
            .exp()
            .and_then(|p| p.to_scalar::<f32>())
            .map_err(err("the target"))?;
        if p >= options.until || steps == options.max_steps {
            break p;
        }
        let grads = log_p.backward().map_err(err("the gradient"))?;
        let g = grads
            .get(var.as_tensor())
            .ok_or_else(|| GradError::Input("no gradient reached the picture".into()))?;
        x = (g.sign().and_then(|s| s * f64::from(options.step)))
            .and_then(|d| &x + d)
            .and_then(|t| t.maximum(&low))
            .and_then(|t| t.minimum(&high))
            .map_err(err("a step"))?;
        steps += 1;
    };
    let linf = (&x - original)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .map_err(err("the change"))?;
    Ok(Attacked {
        pixels: x,
        steps,
        target_prob,
        linf: linf.round() as u8,
    })
}

/// Parses a budget given as a fraction of the pixel range ("8/255", "0.03") into whole
/// levels, rounding down so the promise holds.
pub fn parse_eps(text: &str) -> Result<u8, String> {
    let value = match text.split_once('/') {
        Some((a, b)) => {
            let a: f64 = a.trim().parse().map_err(|_| bad_eps(text))?;
            let b: f64 = b.trim().parse().map_err(|_| bad_eps(text))?;
            if b == 0.0 {
                return Err(bad_eps(text));
            }
            a / b
        }
        None => text.trim().parse().map_err(|_| bad_eps(text))?,
    };
    let levels = (value * 255.0 + 1e-6).floor();
    if !(1.0..=255.0).contains(&levels) || value > 1.0 {
        return Err(format!(
            "--eps {text} is {levels} pixel levels; give a fraction of the range from 1/255 to 1, \
             e.g. 8/255"
        ));
    }
    Ok(levels as u8)
}

fn bad_eps(text: &str) -> String {
    format!("--eps {text:?} is not a number or fraction; give e.g. 8/255 or 0.03")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_become_whole_levels() {
        assert_eq!(parse_eps("8/255"), Ok(8));
        assert_eq!(parse_eps("4 / 255"), Ok(4));
        assert_eq!(parse_eps("0.03"), Ok(7));
        assert_eq!(parse_eps("1"), Ok(255));
        assert!(parse_eps("0.001").unwrap_err().contains("0 pixel levels"));
        assert!(parse_eps("8/0").unwrap_err().contains("not a number"));
        assert!(parse_eps("cat").unwrap_err().contains("e.g. 8/255"));
    }
}
