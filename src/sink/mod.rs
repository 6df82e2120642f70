//! Where results go. `edge-tl run` writes JSON lines to stdout and, under systemd, tells it
//! that the loop is alive; the service will add HTTP and MQTT.

pub mod systemd;

use std::io::{self, Write};

use crate::live::LiveResult;

/// Receives every published result.
pub trait Sink {
    /// An error ends the loop (e.g. stdout closed by `| head`).
    fn publish(&mut self, result: &LiveResult) -> io::Result<()>;

    /// Called on every turn of the loop, with or without a frame (liveness signals).
    fn tick(&mut self) {}
}

/// Every result to each of several sinks, in order.
pub struct Fanout<'a>(pub Vec<&'a mut dyn Sink>);

impl Sink for Fanout<'_> {
    fn publish(&mut self, result: &LiveResult) -> io::Result<()> {
        self.0.iter_mut().try_for_each(|s| s.publish(result))
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
