//! The hand-over between the capture thread and the inference thread: a single slot. For a
//! live source the newest frame replaces one not yet taken (the old one is dropped and
//! counted), so inference always works on the present and latency cannot build up behind a
//! slow network. For a replay the capture thread waits instead, so every frame is processed.
//! Transient source failures (a camera unplugged, a stream dropped) are retried here with
//! backoff; the inference side only sees a gap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{FrameSource, RawFrame, SourceError};

/// Counters of the capture side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FeedStats {
    /// Frames delivered by the source.
    pub captured: u64,
    /// Frames replaced by a newer one before inference took them.
    pub dropped: u64,
    /// Successful reconnections after the source went away.
    pub reconnects: u64,
}

/// What [`Feed::next`] found.
#[derive(Debug)]
pub enum Next {
    Frame(RawFrame),
    /// Nothing arrived within the timeout (check for stop requests, then ask again).
    Timeout,
    /// A finite source has delivered its last frame.
    Ended,
    /// The source failed for good.
    Failed(SourceError),
}

#[derive(Default)]
struct Slot {
    frame: Option<RawFrame>,
    stats: FeedStats,
    ended: bool,
    failure: Option<SourceError>,
}

type Shared = Arc<(Mutex<Slot>, Condvar)>;

/// Frames from a source running on its own thread.
pub struct Feed {
    shared: Shared,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Wakes a loop that waits on several feeds at once (several cameras): each feed given the same
/// `Wake` counts up when it has something new to hand over.
#[derive(Debug, Default)]
pub struct Wake {
    count: Mutex<u64>,
    changed: Condvar,
}

impl Wake {
    /// The count now: read before looking at the feeds, then [`Wake::wait`] for a change.
    pub fn seen(&self) -> u64 {
        *self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `timeout` for the count to move on from `seen`.
    pub fn wait(&self, seen: u64, timeout: Duration) {
        let count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .changed
            .wait_timeout_while(count, timeout, |c| *c == seen);
    }

    fn notify(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_all();
    }
}

impl Feed {
    /// Starts the capture thread. Setting `stop` ends it.
    pub fn spawn(source: Box<dyn FrameSource>, stop: Arc<AtomicBool>) -> Feed {
        Feed::spawn_waking(source, stop, Arc::default())
    }

    /// [`Feed::spawn`], counting `wake` up whenever a frame, the end or a failure is ready.
    pub fn spawn_waking(
        source: Box<dyn FrameSource>,
        stop: Arc<AtomicBool>,
        wake: Arc<Wake>,
    ) -> Feed {
        let shared: Shared = Arc::default();
        let thread = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("capture".into())
                .spawn(move || capture_loop(source, &shared, &stop, &wake))
                .expect("spawning the capture thread")
        };
        Feed {
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// The newest frame not yet taken, waiting up to `timeout` for one.
    pub fn next(&self, timeout: Duration) -> Next {
        let (lock, ready) = &*self.shared;
        let deadline = Instant::now() + timeout;
        let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(frame) = slot.frame.take() {
                ready.notify_all();
                return Next::Frame(frame);
            }
            if let Some(e) = slot.failure.take() {
                return Next::Failed(e);
            }
            if slot.ended {
                return Next::Ended;
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::Timeout;
            }
            slot = ready
                .wait_timeout(slot, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub fn stats(&self) -> FeedStats {
        self.shared
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stats
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.shared.1.notify_all();
        // A source blocked in a read returns within its own timeout; do not wait for it.
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn capture_loop(mut source: Box<dyn FrameSource>, shared: &Shared, stop: &AtomicBool, wake: &Wake) {
    let (lock, ready) = &**shared;
    let live = source.is_live();
    let finish = |failure: Option<SourceError>| {
        let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
        slot.ended = true;
        slot.failure = failure;
        ready.notify_all();
        drop(slot);
        wake.notify();
    };
    while !stop.load(Ordering::SeqCst) {
        match source.next_frame() {
            Ok(Some(mut frame)) => {
                let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
                if !live {
                    while slot.frame.is_some() && !stop.load(Ordering::SeqCst) {
                        slot = ready
                            .wait_timeout(slot, Duration::from_millis(100))
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    // A replay frame is "captured" when it is handed over, so latencies
                    // measure processing, not the wait for the previous frame.
                    frame.captured = std::time::SystemTime::now();
                }
                slot.stats.captured += 1;
                if slot.frame.replace(frame).is_some() {
                    slot.stats.dropped += 1;
                }
                ready.notify_all();
                drop(slot);
                wake.notify();
            }
            Ok(None) => return finish(None),
            Err(e) if e.is_transient() => {
                log::warn!("{e}; reconnecting");
                if !reconnect(source.as_mut(), stop) {
                    break;
                }
                log::warn!("{} is back", source.describe());
                lock.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .stats
                    .reconnects += 1;
            }
            Err(e) => return finish(Some(e)),
        }
    }
    finish(None);
}

/// Retries with exponential backoff until the source is back (true) or a stop is requested.
fn reconnect(source: &mut dyn FrameSource, stop: &AtomicBool) -> bool {
    let mut wait = FIRST_BACKOFF;
    loop {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(wait));
        }
        match source.reconnect() {
            Ok(()) => return true,
            Err(e) => log::warn!(
                "{e}; next try in {:.1} s",
                (wait * 2).min(MAX_BACKOFF).as_secs_f64()
            ),
        }
        wait = (wait * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::super::FrameData;
    use super::*;
    use std::time::SystemTime;

    /// Delivers `total` frames; fails transiently once at `fail_at`.
    struct Scripted {
        next: u64,
        total: u64,
        live: bool,
        fail_at: Option<u64>,
        reconnects: u64,
    }

    impl FrameSource for Scripted {
        fn next_frame(&mut self) -> Result<Option<RawFrame>, SourceError> {
            if self.fail_at == Some(self.next) {
                self.fail_at = None;
                return Err(SourceError::Disconnected {
                    what: "test source".into(),
                    reason: "unplugged".into(),
                });
            }
            if self.next == self.total {
                return Ok(None);
            }
            self.next += 1;
            Ok(Some(RawFrame {
                index: self.next - 1,
                captured: SystemTime::now(),
                name: None,
                data: FrameData::Encoded(Vec::new()),
            }))
        }
        fn is_live(&self) -> bool {
            self.live
        }
        fn reconnect(&mut self) -> Result<(), SourceError> {
            self.reconnects += 1;
            Ok(())
        }
        fn describe(&self) -> String {
            "test source".into()
        }
    }

    fn scripted(total: u64, live: bool, fail_at: Option<u64>) -> Box<dyn FrameSource> {
        Box::new(Scripted {
            next: 0,
            total,
            live,
            fail_at,
            reconnects: 0,
        })
    }

    /// Takes every frame, slowly, and returns their indices.
    fn drain(feed: &Feed, pause: Duration) -> Vec<u64> {
        let mut seen = Vec::new();
        loop {
            match feed.next(Duration::from_secs(10)) {
                Next::Frame(f) => seen.push(f.index),
                Next::Ended => return seen,
                other => panic!("{other:?}"),
            }
            std::thread::sleep(pause);
        }
    }

    #[test]
    fn a_replay_hands_over_every_frame_in_order() {
        let feed = Feed::spawn(scripted(50, false, None), Arc::default());
        let seen = drain(&feed, Duration::from_millis(1));
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert_eq!(
            feed.stats(),
            FeedStats {
                captured: 50,
                dropped: 0,
                reconnects: 0
            }
        );
    }

    #[test]
    fn a_live_source_drops_stale_frames_for_a_slow_reader() {
        let feed = Feed::spawn(scripted(2000, true, None), Arc::default());
        let seen = drain(&feed, Duration::from_millis(2));
        let stats = feed.stats();
        assert_eq!(stats.captured, 2000);
        // Every frame was either taken or dropped, never queued.
        assert_eq!(seen.len() as u64 + stats.dropped, 2000);
        assert!(stats.dropped > 0);
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "newest first, in order"
        );
    }

    #[test]
    fn a_disconnect_is_retried_and_the_stream_resumes() {
        let feed = Feed::spawn(scripted(10, false, Some(4)), Arc::default());
        let seen = drain(&feed, Duration::ZERO);
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(feed.stats().reconnects, 1);
    }

    #[test]
    fn stop_ends_a_source_that_never_ends() {
        let stop = Arc::new(AtomicBool::new(false));
        let feed = Feed::spawn(scripted(u64::MAX, true, None), stop.clone());
        assert!(matches!(feed.next(Duration::from_secs(10)), Next::Frame(_)));
        stop.store(true, Ordering::SeqCst);
        let mut end = feed.next(Duration::from_secs(10));
        while let Next::Frame(_) = end {
            end = feed.next(Duration::from_secs(10));
        }
        assert!(matches!(end, Next::Ended), "{end:?}");
    }
}
