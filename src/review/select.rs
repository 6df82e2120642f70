//! Which frames are worth a human look: the no-I/O decision of the review queue, made per
//! frame on the frame's own probabilities (not the smoothed ones: the picture a person labels
//! is this frame).

use serde::{Deserialize, Serialize};

/// Why a frame was kept for review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The best label's probability is below [`SelectSettings::below`].
    Unsure,
    /// The best two labels are within [`SelectSettings::margin`] of each other.
    Close,
    /// The best label differs from the previous frame's.
    Changed,
    /// An ordinary frame, one in [`SelectSettings::every`], so the queue is not only hard cases.
    Ordinary,
}

/// When a frame is worth a look.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectSettings {
    /// Below this best probability a frame is `unsure`.
    pub below: f32,
    /// Best minus second-best probability under this is `close`.
    pub margin: f32,
    /// One frame in this many is kept anyway (0 = never).
    pub every: u64,
}

impl Default for SelectSettings {
    fn default() -> Self {
        SelectSettings {
            below: 0.6,
            margin: 0.2,
            every: 250,
        }
    }
}

/// Decides per frame, remembering the previous frame's label and the frames since the last
/// ordinary one.
#[derive(Debug, Clone)]
pub struct Selector {
    settings: SelectSettings,
    previous: Option<String>,
    since_ordinary: u64,
}

impl Selector {
    pub fn new(settings: SelectSettings) -> Selector {
        Selector {
            settings,
            previous: None,
            since_ordinary: 0,
        }
    }

    /// Whether this frame is worth a look, given its best and second-best `(label, prob)`.
    /// The most telling reason wins when several hold.
    pub fn consider(&mut self, best: (&str, f32), second: Option<f32>) -> Option<Reason> {
        let s = &self.settings;
        let changed = self.previous.as_deref().is_some_and(|p| p != best.0);
        if self.previous.as_deref() != Some(best.0) {
            self.previous = Some(best.0.to_string());
        }
        self.since_ordinary += 1;
        let reason = if best.1 < s.below {
            Some(Reason::Unsure)
        } else if second.is_some_and(|p| best.1 - p < s.margin) {
            Some(Reason::Close)
        } else if changed {
            Some(Reason::Changed)
        } else if s.every > 0 && self.since_ordinary >= s.every {
            Some(Reason::Ordinary)
        } else {
            None
        };
        if reason.is_some() {
            self.since_ordinary = 0;
        }
        reason
    }

    /// Forgets the previous label (a new head has other labels).
    pub fn reset(&mut self) {
        self.previous = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unsure_close_changed_and_now_and_then_an_ordinary_frame() {
        let mut s = Selector::new(SelectSettings {
            below: 0.6,
            margin: 0.2,
            every: 3,
        });
        assert_eq!(s.consider(("cat", 0.5), Some(0.4)), Some(Reason::Unsure));
        assert_eq!(s.consider(("cat", 0.65), Some(0.35)), None);
        assert_eq!(s.consider(("cat", 0.9), Some(0.1)), None);
        // The third frame since the last one kept.
        assert_eq!(s.consider(("cat", 0.9), Some(0.1)), Some(Reason::Ordinary));
        assert_eq!(s.consider(("dog", 0.9), Some(0.1)), Some(Reason::Changed));
        assert_eq!(s.consider(("dog", 0.61), Some(0.39)), None);
        assert_eq!(s.consider(("dog", 0.6), Some(0.41)), Some(Reason::Close));
        // Unsure wins over a change.
        assert_eq!(s.consider(("cat", 0.3), Some(0.2)), Some(Reason::Unsure));
        s.reset();
        assert_eq!(s.consider(("bird", 0.95), None), None);
    }

    #[test]
    fn every_zero_never_keeps_ordinary_frames() {
        let mut s = Selector::new(SelectSettings {
            every: 0,
            ..SelectSettings::default()
        });
        for _ in 0..1000 {
            assert_eq!(s.consider(("cat", 0.99), Some(0.01)), None);
        }
    }
}
