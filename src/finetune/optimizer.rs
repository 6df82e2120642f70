//! The two optimisers `--optimizer` offers: Adam (candle-nn's AdamW, decoupled weight decay)
//! and SGD with momentum 0.9 (candle-nn's SGD has no momentum, so it is written here).

use candle_core::{Result, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer as _, ParamsAdamW};

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Sgd,
}

const MOMENTUM: f64 = 0.9;

/// A configured optimiser over the trained variables.
pub enum Optimizer {
    Adam(AdamW),
    Sgd {
        vars: Vec<Var>,
        velocity: Vec<Tensor>,
        lr: f64,
        weight_decay: f64,
    },
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<Self> {
        Ok(match kind {
            OptimizerKind::Adam => Optimizer::Adam(AdamW::new(
                vars,
                ParamsAdamW {
                    lr,
                    weight_decay,
                    ..Default::default()
                },
            )?),
            OptimizerKind::Sgd => Optimizer::Sgd {
                velocity: vars
                    .iter()
                    .map(|v| v.as_tensor().zeros_like())
                    .collect::<Result<_>>()?,
                vars,
                lr,
                weight_decay,
            },
        })
    }

    pub fn set_lr(&mut self, new: f64) {
        match self {
            Optimizer::Adam(a) => a.set_learning_rate(new),
            Optimizer::Sgd { lr, .. } => *lr = new,
        }
    }

    /// Backpropagates `loss` and updates every variable.
    pub fn step(&mut self, loss: &Tensor) -> Result<()> {
        match self {
            Optimizer::Adam(a) => a.backward_step(loss),
            Optimizer::Sgd {
                vars,
                velocity,
                lr,
                weight_decay,
            } => {
                let grads = loss.backward()?;
                for (var, v) in vars.iter().zip(velocity.iter_mut()) {
                    let Some(g) = grads.get(var.as_tensor()) else {
                        continue;
                    };
                    let g = (g + (var.as_tensor() * *weight_decay)?)?;
                    *v = ((&*v * MOMENTUM)? + g)?;
                    var.set(&(var.as_tensor() - (&*v * *lr)?)?)?;
                }
                Ok(())
            }
        }
    }
}
