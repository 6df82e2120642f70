//! Turning a jittery per-frame answer into a steady one: a moving average of probabilities
//! over the last N frames, and a confidence threshold below which the answer is `unknown`.

use std::collections::VecDeque;

/// The label reported when no class is probable enough.
pub const UNKNOWN: &str = "unknown";

/// Moving average of probability vectors over a window of frames.
#[derive(Debug, Clone)]
pub struct Smoother {
    window: usize,
    recent: VecDeque<Vec<f32>>,
}

impl Smoother {
    /// `window` of 1 (or 0) passes every frame's probabilities through unchanged.
    pub fn new(window: usize) -> Self {
        Smoother {
            window: window.max(1),
            recent: VecDeque::new(),
        }
    }

    /// Adds a frame's probabilities and returns the average over the window. A change in the
    /// number of classes (a new head with other labels) restarts the window.
    pub fn push(&mut self, probs: &[f32]) -> Vec<f32> {
        if self.recent.front().is_some_and(|p| p.len() != probs.len()) {
            self.recent.clear();
        }
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(probs.to_vec());
        let n = self.recent.len() as f32;
        let mut mean = vec![0.0f32; probs.len()];
        for p in &self.recent {
            for (m, x) in mean.iter_mut().zip(p) {
                *m += x / n;
            }
        }
        mean
    }

    pub fn reset(&mut self) {
        self.recent.clear();
    }
}

/// The label to report: the best class, or [`UNKNOWN`] when its probability is below the
/// threshold.
pub fn decide(best_label: &str, best_prob: f32, threshold: Option<f32>) -> String {
    match threshold {
        Some(t) if best_prob < t => UNKNOWN.to_string(),
        _ => best_label.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_over_the_window_only() {
        let mut s = Smoother::new(2);
        assert_eq!(s.push(&[1.0, 0.0]), vec![1.0, 0.0]);
        assert_eq!(s.push(&[0.0, 1.0]), vec![0.5, 0.5]);
        assert_eq!(s.push(&[0.0, 1.0]), vec![0.0, 1.0]);
        // Another head with three classes: start again.
        assert_eq!(s.push(&[0.2, 0.3, 0.5]), vec![0.2, 0.3, 0.5]);
        let mut one = Smoother::new(1);
        one.push(&[0.9, 0.1]);
        assert_eq!(one.push(&[0.3, 0.7]), vec![0.3, 0.7]);
    }

    #[test]
    fn below_the_threshold_is_unknown() {
        assert_eq!(decide("cat", 0.69, Some(0.7)), UNKNOWN);
        assert_eq!(decide("cat", 0.7, Some(0.7)), "cat");
        assert_eq!(decide("cat", 0.1, None), "cat");
    }
}
