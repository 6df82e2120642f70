//! Where results go. `edge-tl run` writes JSON lines to stdout, tells systemd that the loop
//! is alive, publishes to MQTT and feeds the HTTP service ([`crate::service`]).

pub mod mqtt;
pub mod systemd;

use std::io::{self, Write};
use std::sync::Arc;

use crate::live::LiveResult;
use crate::source::RawFrame;

/// Receives every published result.
pub trait Sink {
    /// An error ends the loop (e.g. stdout closed by `| head`).
    fn publish(&mut self, result: &LiveResult) -> io::Result<()>;

    /// Every classified frame with its result, before `--on-change` filtering (live views,
    /// metrics, and sinks that decide for themselves what is a change). Must not block. The
    /// frame is shared, so a sink that keeps it (the live preview) does not copy it.
    fn observe(&mut self, _result: &LiveResult, _frame: &Arc<RawFrame>) {}

    /// Called on every turn of the loop, with or without a frame (liveness signals).
    fn tick(&mut self) {}
}

/// Every result to each of several sinks, in order.
pub struct Fanout<'a>(pub Vec<&'a mut dyn Sink>);

impl Sink for Fanout<'_> {
    fn publish(&mut self, result: &LiveResult) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.publish(result))
    }

    fn observe(&mut self, result: &LiveResult, frame: &Arc<RawFrame>) {
        self.0.iter_mut().for_each(|s| s.observe(result, frame));
    }

    fn tick(&mut self) {
        self.0.iter_mut().for_each(|s| s.tick());
    }
}

/// One JSON object per line, flushed per result so a reader sees it at once.
pub struct JsonLines<W: Write> {
    out: W,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines { out }
    }
}

impl<W: Write> Sink for JsonLines<W> {
    fn publish(&mut self, result: &LiveResult) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, result)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// Collects results in memory (benchmarks, tests).
#[derive(Debug, Default)]
pub struct Collect(pub Vec<LiveResult>);

impl Sink for Collect {
    fn publish(&mut self, result: &LiveResult) -> io::Result<()> {
        self.0.push(result.clone());
        Ok(())
    }
}
