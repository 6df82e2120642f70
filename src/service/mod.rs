//! The HTTP service of `edge-tl run --http ADDR:PORT`: health, Prometheus metrics, the latest
//! prediction, server-sent events, a live MJPEG preview, and a page that captures samples and
//! trains a new head from a browser.
//!
//! The inference loop only hands each result and frame to the [`Hub`] (a few pointer swaps);
//! the server runs on its own one-worker tokio runtime and reads from there. Clients that are
//! slow, many or malformed cost sockets and tasks on that runtime, never a wait in the loop:
//! every channel is newest-wins. Connections are accepted within [`HttpLimits`] (times to send
//! a request, caps on open connections), so idle sockets cannot use up the process's files.

mod guard;
mod http;
mod listen;
pub mod metrics;
pub mod teach;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

use crate::prediction::LiveResult;
use crate::settings::SettingsError;
pub use crate::settings::{HttpLimits, HttpSettings};
use crate::sink::{Flow, Sink};
use crate::source::RawFrame;
pub use metrics::Metrics;
pub use teach::{Teach, TeachSettings};

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("cannot listen on {addr}{}", if source.kind() == std::io::ErrorKind::AddrInUse { " (another program, another edge-tl?, uses that port: choose another with --http)" } else { "" })]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

type PreviewJpeg = ((u64, std::time::SystemTime), Arc<Vec<u8>>);

/// What the loop publishes and the server reads.
pub struct Hub {
    latest: watch::Sender<Option<Arc<LiveResult>>>,
    frames: watch::Sender<Option<Arc<RawFrame>>>,
    last_result: Mutex<Option<Instant>>,
    /// The newest frame encoded as JPEG for previews, keyed by (index, capture time).
    preview: tokio::sync::Mutex<Option<PreviewJpeg>>,
    started: Instant,
    pub metrics: Metrics,
    pub teach: Arc<Teach>,
}

impl Hub {
    pub fn new(teach: Teach) -> Arc<Hub> {
        Arc::new(Hub {
            latest: watch::channel(None).0,
            frames: watch::channel(None).0,
            last_result: Mutex::new(None),
            preview: tokio::sync::Mutex::new(None),
            started: Instant::now(),
            metrics: Metrics::default(),
            teach: Arc::new(teach),
        })
    }

    /// The newest result, if any.
    pub fn latest(&self) -> Option<Arc<LiveResult>> {
        self.latest.borrow().clone()
    }

    /// Seconds since the last result (or since start, before the first).
    fn quiet_for(&self) -> (bool, f64) {
        match *self.last_result.lock().unwrap() {
            Some(t) => (true, t.elapsed().as_secs_f64()),
            None => (false, self.started.elapsed().as_secs_f64()),
        }
    }
}

/// The next value of a newest-wins channel, skipping empties; `None` once the loop is gone.
/// (A receiver that falls behind simply gets the newest value: nothing queues.)
pub(crate) async fn next_latest<T>(rx: &mut watch::Receiver<Option<Arc<T>>>) -> Option<Arc<T>> {
    loop {
        rx.changed().await.ok()?;
        if let Some(v) = rx.borrow_and_update().clone() {
            return Some(v);
        }
    }
}

/// The loop's side of the hub.
pub struct HubSink(pub Arc<Hub>);

impl Sink for HubSink {
    fn push(&mut self, result: &LiveResult, frame: &Arc<RawFrame>) -> Flow {
        let hub = &self.0;
        hub.metrics.record(result);
        *hub.last_result.lock().unwrap() = Some(Instant::now());
        hub.frames.send_replace(Some(frame.clone()));
        hub.latest.send_replace(Some(Arc::new(result.clone())));
        Flow::Continue
    }
}

/// Binds `settings.listen` (so a taken port is an error now, not later) and serves on
/// `runtime`, within `settings.limits`. Returns the address bound (useful with port 0).
pub fn serve(
    settings: &HttpSettings,
    hub: Arc<Hub>,
    runtime: &tokio::runtime::Handle,
) -> Result<SocketAddr, ServiceError> {
    settings.check()?;
    let bind_err = |source| ServiceError::Bind {
        addr: settings.listen,
        source,
    };
    let std_listener = std::net::TcpListener::bind(settings.listen).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let addr = std_listener.local_addr().map_err(bind_err)?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(std_listener).map_err(bind_err)?
    };
    let app = http::router(hub, settings.token.clone(), addr, settings.limits.body_read);
    runtime.spawn(listen::serve_connections(
        listener,
        app,
        settings.limits.clone(),
    ));
    Ok(addr)
}

/// The runtime the HTTP service and the MQTT connection share: one worker thread, so they
/// take little from the cores inference needs.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        // File writes and JPEG encoding for previews; few, so they cannot crowd out inference.
        .max_blocking_threads(2)
        .thread_name("edge-tl-io")
        .enable_all()
        .build()
}
