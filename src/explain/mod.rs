//! What the network sees and how easily it is fooled, on the backbone the device runs:
//! an "ideal" picture of a class optimised from noise ([`dream`]) and pictures nudged into
//! another class within a small pixel budget ([`attack`]). Both differentiate the float model
//! in the gradient engine ([`crate::grad`]); [`transfer`] checks the result in tract on the
//! int8 model. (Feature maps need no gradients: [`crate::feature_grid`].)

pub mod attack;
pub mod dream;
pub mod scorer;
pub mod target;
pub mod transfer;

pub use scorer::Scorer;
pub use target::find_label;

/// A label and its probability, best first in lists.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ranked {
    pub label: String,
    pub prob: f32,
}

/// The `k` most probable labels.
pub fn top_k(probs: &[f32], labels: &[String], k: usize) -> Vec<Ranked> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    order
        .into_iter()
        .take(k)
        .map(|i| Ranked {
            label: labels.get(i).cloned().unwrap_or_else(|| format!("#{i}")),
            prob: probs[i],
        })
        .collect()
}
