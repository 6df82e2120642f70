//! Where results go. `edge-tl run` writes JSON lines to stdout; the service adds HTTP and MQTT.

use std::io::{self, Write};

use crate::live::LiveResult;

/// Receives every published result.
pub trait Sink {
    /// An error ends the loop (e.g. stdout closed by `| head`).
    fn publish(&mut self, result: &LiveResult) -> io::Result<()>;
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
