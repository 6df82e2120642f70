//! Consensus before publishing: the label a camera reports changes only after N decisions in
//! a row agree on the new one, so a frame or two taken for something else (a shadow, a
//! motion blur) never reaches the sinks as a change of state. It follows smoothing and the
//! threshold: it counts their decisions, it does not average.

use super::smooth::UNKNOWN;

/// The published label of one camera.
#[derive(Debug, Clone)]
pub struct Confirm {
    needed: usize,
    /// The label published; `None` until a first one is confirmed.
    state: Option<String>,
    /// A different label being decided, and for how many frames in a row.
    candidate: Option<(String, usize)>,
}

/// What one decision makes of the published label.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmed {
    /// The label to publish: the state, or [`UNKNOWN`] before the first is confirmed.
    pub label: String,
    /// The label this frame decided, when it is not (yet) the published one.
    pub pending: Option<String>,
}

impl Confirm {
    /// `needed` of 1 (or 0) publishes every decision as it comes.
    pub fn new(needed: usize) -> Confirm {
        Confirm {
            needed: needed.max(1),
            state: None,
            candidate: None,
        }
    }

    /// Counts one frame's decision and returns the label to publish.
    pub fn push(&mut self, decided: &str) -> Confirmed {
        if self.state.as_deref() == Some(decided) {
            self.candidate = None;
        } else {
            let run = match self.candidate.take() {
                Some((label, n)) if label == decided => n + 1,
                _ => 1,
            };
            if run >= self.needed {
                self.state = Some(decided.to_string());
            } else {
                self.candidate = Some((decided.to_string(), run));
            }
        }
        let label = self.state.clone().unwrap_or_else(|| UNKNOWN.to_string());
        Confirmed {
            pending: (label != decided).then(|| decided.to_string()),
            label,
        }
    }

    /// Forgets the state (a new head: its labels may differ).
    pub fn reset(&mut self) {
        self.state = None;
        self.candidate = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(c: &mut Confirm, decided: &[&str]) -> Vec<String> {
        decided.iter().map(|d| c.push(d).label).collect()
    }

    #[test]
    fn one_publishes_every_decision() {
        let mut c = Confirm::new(1);
        assert_eq!(
            labels(&mut c, &["cat", "dog", "cat"]),
            ["cat", "dog", "cat"]
        );
        assert_eq!(c.push("dog").pending, None);
    }

    #[test]
    fn a_change_is_published_on_its_nth_agreeing_frame_exactly() {
        let mut c = Confirm::new(3);
        // Before a first state: unknown, with what is pending.
        assert_eq!(
            c.push("cat"),
            Confirmed {
                label: "unknown".into(),
                pending: Some("cat".into())
            }
        );
        assert_eq!(labels(&mut c, &["cat", "cat"]), ["unknown", "cat"]);
        assert_eq!(
            labels(&mut c, &["dog", "dog", "dog", "dog"]),
            ["cat", "cat", "dog", "dog"]
        );
        // An interrupted run starts counting again.
        assert_eq!(
            labels(&mut c, &["cat", "cat", "dog", "cat", "cat", "cat"]),
            ["dog", "dog", "dog", "dog", "dog", "cat"]
        );
    }

    #[test]
    fn alternating_decisions_never_change_the_state() {
        let mut c = Confirm::new(2);
        assert_eq!(labels(&mut c, &["cat", "cat"]), ["unknown", "cat"]);
        for _ in 0..50 {
            assert_eq!(c.push("dog").label, "cat");
            assert_eq!(c.push("cat").label, "cat");
        }
        c.reset();
        assert_eq!(c.push("cat").label, "unknown");
    }
}
