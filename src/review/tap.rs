//! The loop's side of the review queue: a [`Selector`] per camera picks frames, and hands them
//! to a writer thread per queue through a small channel. The loop never waits on it: when the
//! writer is busy (encoding, writing to a slow SD card) a frame is simply not offered.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use super::{Reason, ReviewQueue, SelectSettings, Selector};
use crate::source::RawFrame;

/// A frame worth a look, on its way to the queue.
pub struct Candidate {
    pub frame: Arc<RawFrame>,
    pub camera: Option<String>,
    /// Best label and probability.
    pub best: (String, f32),
    /// Second-best, when the head has two or more labels.
    pub second: Option<(String, f32)>,
    pub embedding: Vec<f32>,
    pub reason: Reason,
}

/// Frames offered to the writer before one is dropped.
const IN_FLIGHT: usize = 2;

/// One camera's tap into a queue.
pub struct ReviewTap {
    camera: Option<String>,
    selector: Selector,
    writer: SyncSender<Candidate>,
}

impl ReviewTap {
    /// Looks at one classified frame: its own probabilities (in label order), the labels, and
    /// its embedding.
    pub fn see(
        &mut self,
        frame: &Arc<RawFrame>,
        probs: &[f32],
        labels: &[String],
        embedding: &[f32],
    ) {
        let top = crate::predict::top_k(probs, labels, 2);
        let Some(best) = top.first() else { return };
        let second = top.get(1);
        let Some(reason) = self
            .selector
            .consider((&best.label, best.prob), second.map(|s| s.prob))
        else {
            return;
        };
        let candidate = Candidate {
            frame: frame.clone(),
            camera: self.camera.clone(),
            best: (best.label.clone(), best.prob),
            second: second.map(|s| (s.label.clone(), s.prob)),
            embedding: embedding.to_vec(),
            reason,
        };
        match self.writer.try_send(candidate) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => log::debug!("the review writer is gone"),
        }
    }

    /// A new head: the previous frame's label means nothing now.
    pub fn reset(&mut self) {
        self.selector.reset();
    }
}

/// The writer of one queue; taps are made from it for each camera that feeds the queue.
#[derive(Debug, Clone)]
pub struct ReviewWriter {
    queue: Arc<ReviewQueue>,
    sender: SyncSender<Candidate>,
}

impl ReviewWriter {
    /// Starts the thread that writes offered frames into `queue`; it ends when every tap and
    /// this writer are dropped.
    pub fn spawn(queue: Arc<ReviewQueue>) -> std::io::Result<ReviewWriter> {
        let (sender, receiver) = sync_channel(IN_FLIGHT);
        let q = queue.clone();
        std::thread::Builder::new()
            .name("edge-tl-review".into())
            .spawn(move || write_offered(&q, receiver))?;
        Ok(ReviewWriter { queue, sender })
    }

    pub fn queue(&self) -> &Arc<ReviewQueue> {
        &self.queue
    }

    /// A tap for one camera, selecting by `select`.
    pub fn tap(&self, camera: Option<String>, select: SelectSettings) -> ReviewTap {
        ReviewTap {
            camera,
            selector: Selector::new(select),
            writer: self.sender.clone(),
        }
    }
}

/// Offers each frame to the queue. A failed write is said once as a warning (and then at
/// debug level, so a full disk does not flood the journal); the loop goes on either way.
fn write_offered(queue: &ReviewQueue, receiver: Receiver<Candidate>) {
    let mut warned = false;
    for candidate in receiver {
        match queue.offer(&candidate) {
            Ok(_) => warned = false,
            Err(e) if !warned => {
                log::warn!(
                    "review queue: {}; frames are not kept for review until this clears",
                    crate::error::chain(&e)
                );
                warned = true;
            }
            Err(e) => log::debug!("review queue: {}", crate::error::chain(&e)),
        }
    }
}
