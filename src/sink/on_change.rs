//! Publishing only changes of label: `run --on-change` wraps the JSON lines in it, and MQTT
//! always is (its `state` topic is retained, so a repeat says nothing new).

use std::sync::Arc;

use super::{Flow, Sink};
use crate::prediction::LiveResult;
use crate::source::RawFrame;

/// Remembers the last reported label to tell changes apart.
#[derive(Debug, Default)]
pub struct ChangeDetector {
    last: Option<String>,
}

impl ChangeDetector {
    /// True for the first label and whenever it differs from the previous one.
    pub fn changed(&mut self, label: &str) -> bool {
        if self.last.as_deref() == Some(label) {
            return false;
        }
        self.last = Some(label.to_string());
        true
    }
}

/// Passes a result on to the wrapped sink only when its label differs from the last one
/// passed on for the same camera.
pub struct OnChange<S> {
    inner: S,
    /// Per camera (`None`: the one camera of `--source`).
    changes: std::collections::HashMap<Option<String>, ChangeDetector>,
}

impl<S: Sink> OnChange<S> {
    pub fn new(inner: S) -> Self {
        OnChange {
            inner,
            changes: Default::default(),
        }
    }

    /// The wrapped sink, e.g. to close it.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Sink> Sink for OnChange<S> {
    fn push(&mut self, result: &LiveResult, frame: &Arc<RawFrame>) -> Flow {
        let changes = match self.changes.get_mut(&result.camera) {
            Some(c) => c,
            None => self.changes.entry(result.camera.clone()).or_default(),
        };
        if changes.changed(&result.label) {
            self.inner.push(result, frame)
        } else {
            Flow::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Collect;

    #[test]
    fn reports_only_changes() {
        let mut c = ChangeDetector::default();
        let seen: Vec<bool> = ["cat", "cat", "dog", "dog", "cat"]
            .iter()
            .map(|l| c.changed(l))
            .collect();
        assert_eq!(seen, [true, false, true, false, true]);
    }

    #[test]
    fn the_wrapper_passes_on_changes_only() {
        let frame = Arc::new(RawFrame {
            index: 0,
            captured: std::time::SystemTime::UNIX_EPOCH,
            name: None,
            data: crate::source::FrameData::Encoded(Vec::new()),
        });
        let result = |label: &str| LiveResult {
            camera: None,
            pending: None,
            ts: String::new(),
            frame: 0,
            name: None,
            label: label.into(),
            prob: 1.0,
            top: Vec::new(),
            latency_ms: Default::default(),
            fps: 0.0,
            dropped: 0,
            reconnects: 0,
        };
        let mut sink = OnChange::new(Collect::default());
        for l in ["cat", "cat", "dog", "dog", "cat"] {
            assert_eq!(sink.push(&result(l), &frame), Flow::Continue);
        }
        let labels: Vec<String> = sink.into_inner().0.into_iter().map(|r| r.label).collect();
        assert_eq!(labels, ["cat", "dog", "cat"]);

        // Each camera's changes on their own: two cameras interleaved, each steady.
        let mut sink = OnChange::new(Collect::default());
        for (camera, l) in [
            ("door", "cat"),
            ("yard", "dog"),
            ("door", "cat"),
            ("yard", "dog"),
            ("yard", "cat"),
        ] {
            let r = LiveResult {
                camera: Some(camera.into()),
                ..result(l)
            };
            sink.push(&r, &frame);
        }
        let passed: Vec<(String, String)> = sink
            .into_inner()
            .0
            .into_iter()
            .map(|r| (r.camera.unwrap(), r.label))
            .collect();
        let expected = [("door", "cat"), ("yard", "dog"), ("yard", "cat")];
        assert_eq!(
            passed,
            expected.map(|(c, l)| (c.to_string(), l.to_string()))
        );
    }
}
