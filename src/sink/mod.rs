//! Where results go. `edge-tl run` writes JSON lines to stdout, publishes to MQTT and feeds the
//! HTTP service ([`crate::service`]). Every sink takes every classified frame through one
//! method, [`Sink::push`]; behaviour that several sinks want (publishing only changes of label)
//! is a wrapper, [`OnChange`], rather than a method most sinks would leave empty.

pub mod mqtt;
pub mod on_change;
pub mod systemd;

use std::io::Write;
use std::sync::Arc;

pub use on_change::OnChange;

use crate::prediction::LiveResult;
use crate::source::RawFrame;

/// Whether the loop should go on after a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The sink cannot take results any more (stdout closed by `| head`); it has said why.
    Stop,
}

/// Receives every classified frame's result. Must not block: a slow consumer (a network, a
/// browser) is the sink's own business, never the loop's. The frame is shared, so a sink that
/// keeps it (the live preview) does not copy it.
pub trait Sink {
    fn push(&mut self, result: &LiveResult, frame: &Arc<RawFrame>) -> Flow;
}

/// Every result to each of several sinks, in order; stops when any of them stops (after all
/// had the result).
pub struct Fanout<'a>(pub Vec<&'a mut dyn Sink>);

impl Sink for Fanout<'_> {
    fn push(&mut self, result: &LiveResult, frame: &Arc<RawFrame>) -> Flow {
        let mut flow = Flow::Continue;
        for s in self.0.iter_mut() {
            if s.push(result, frame) == Flow::Stop {
                flow = Flow::Stop;
            }
        }
        flow
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
    fn push(&mut self, result: &LiveResult, _frame: &Arc<RawFrame>) -> Flow {
        let written = serde_json::to_writer(&mut self.out, result)
            .map_err(std::io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        match written {
            Ok(()) => Flow::Continue,
            Err(e) => {
                log::warn!("cannot write results any more ({e}); stopping");
                Flow::Stop
            }
        }
    }
}

/// Collects results in memory (benchmarks, tests).
#[derive(Debug, Default)]
pub struct Collect(pub Vec<LiveResult>);

impl Sink for Collect {
    fn push(&mut self, result: &LiveResult, _frame: &Arc<RawFrame>) -> Flow {
        self.0.push(result.clone());
        Flow::Continue
    }
}
