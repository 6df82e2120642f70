//! From scores to answers: softmax, top-k, and (for the camera loop) smoothing and thresholds.
//! Pure functions and small state machines, tested without a model.

use serde::Serialize;

/// Probabilities from logits; they sum to 1.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Index of the largest value (the first one on ties); 0 for an empty slice.
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// One ranked answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub label: String,
    /// Index of the class.
    #[serde(skip)]
    pub index: usize,
    /// Probability in 0..1.
    pub prob: f32,
}

/// The `k` most probable classes, most probable first (ties keep class order).
pub fn top_k(probs: &[f32], labels: &[String], k: usize) -> Vec<Ranked> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|i| Ranked {
            label: labels.get(i).cloned().unwrap_or_else(|| format!("#{i}")),
            index: i,
            prob: probs[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_is_stable() {
        let p = softmax(&[1000.0, 1000.0, -1000.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 0.5).abs() < 1e-6 && p[2] == 0.0);
    }

    #[test]
    fn top_k_orders_and_names() {
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let top = top_k(&[0.2, 0.5, 0.3], &labels, 2);
        assert_eq!(
            top.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert_eq!(top_k(&[0.5, 0.5], &labels, 5).len(), 2);
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), 1);
    }
}
