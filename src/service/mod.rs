//! The HTTP service of `edge-tl run --http ADDR:PORT`: health, Prometheus metrics, the latest
//! prediction, server-sent events, a live MJPEG preview, and a page that captures samples and
//! trains a new head from a browser; for each camera of the run (`?camera=NAME`).
//!
//! The inference loop only hands each result and frame to the [`Hub`] (a few pointer swaps);
//! the server runs on its own one-worker tokio runtime and reads from there. Clients that are
//! slow, many or malformed cost sockets and tasks on that runtime, never a wait in the loop:
//! every channel is newest-wins. Connections are accepted within [`HttpLimits`] (times to send
//! a request, caps on open connections), so idle sockets cannot use up the process's files.

mod app;
mod dataset_api;
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

/// One camera's side of the hub: what its loop publishes and its routes read.
pub struct CameraHub {
    /// `None` for the one camera of `--source`.
    name: Option<String>,
    latest: watch::Sender<Option<Arc<LiveResult>>>,
    frames: watch::Sender<Option<Arc<RawFrame>>>,
    last_result: Mutex<Option<Instant>>,
    /// The newest frame encoded as JPEG for previews, keyed by (index, capture time).
    preview: tokio::sync::Mutex<Option<PreviewJpeg>>,
    /// Capturing and training for this camera's head (shared by cameras of one head).
    pub teach: Arc<Teach>,
}

impl CameraHub {
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The newest result, if any.
    pub fn latest(&self) -> Option<Arc<LiveResult>> {
        self.latest.borrow().clone()
    }

    /// Seconds since the last result (`None` before the first).
    fn quiet_for(&self) -> Option<f64> {
        self.last_result
            .lock()
            .unwrap()
            .map(|t| t.elapsed().as_secs_f64())
    }
}

/// What the loop publishes and the server reads, for every camera of the run.
pub struct Hub {
    /// In the order of the settings; the first is the one a request that names none gets.
    cameras: Vec<Arc<CameraHub>>,
    started: Instant,
    pub metrics: Metrics,
}

/// A request named a camera the run does not have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CameraError {
    #[error("no camera {asked:?}: this service has {}", known.join(", "))]
    Unknown { asked: String, known: Vec<String> },
    #[error("this service has one camera, without a name: leave ?camera= out")]
    Unnamed,
}

impl Hub {
    /// One entry per camera, in order: its name (`None` for the camera of `--source`) and
    /// what captures for and trains its head.
    pub fn new(cameras: Vec<(Option<String>, Arc<Teach>)>) -> Arc<Hub> {
        assert!(!cameras.is_empty(), "a hub serves at least one camera");
        Arc::new(Hub {
            cameras: cameras
                .into_iter()
                .map(|(name, teach)| {
                    Arc::new(CameraHub {
                        name,
                        latest: watch::channel(None).0,
                        frames: watch::channel(None).0,
                        last_result: Mutex::new(None),
                        preview: tokio::sync::Mutex::new(None),
                        teach,
                    })
                })
                .collect(),
            started: Instant::now(),
            metrics: Metrics::default(),
        })
    }

    pub fn cameras(&self) -> &[Arc<CameraHub>] {
        &self.cameras
    }

    /// The camera a request asks for by name, or the first when it names none.
    pub fn camera(&self, asked: Option<&str>) -> Result<&Arc<CameraHub>, CameraError> {
        let Some(asked) = asked else {
            return Ok(&self.cameras[0]);
        };
        if self.cameras.iter().all(|c| c.name.is_none()) {
            return Err(CameraError::Unnamed);
        }
        self.cameras
            .iter()
            .find(|c| c.name.as_deref() == Some(asked))
            .ok_or_else(|| CameraError::Unknown {
                asked: asked.to_string(),
                known: self.cameras.iter().filter_map(|c| c.name.clone()).collect(),
            })
    }

    /// How a camera is doing, for `/healthz`: `ok`, `starting` (no result yet) or `stalled`
    /// (none for `stall` seconds), and the seconds since its last result (or since start).
    fn health(&self, camera: &CameraHub, stall: f64) -> (&'static str, f64) {
        match camera.quiet_for() {
            Some(q) if q > stall => ("stalled", q),
            Some(q) => ("ok", q),
            None => ("starting", self.started.elapsed().as_secs_f64()),
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

/// The loop's side of the hub: each result goes to its camera's channels.
pub struct HubSink(pub Arc<Hub>);

impl Sink for HubSink {
    fn push(&mut self, result: &LiveResult, frame: &Arc<RawFrame>) -> Flow {
        let hub = &self.0;
        hub.metrics.record(result);
        let camera = hub.cameras.iter().find(|c| c.name == result.camera);
        debug_assert!(camera.is_some(), "a result of an unknown camera");
        let camera = camera.unwrap_or(&hub.cameras[0]);
        *camera.last_result.lock().unwrap() = Some(Instant::now());
        camera.frames.send_replace(Some(frame.clone()));
        camera.latest.send_replace(Some(Arc::new(result.clone())));
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
