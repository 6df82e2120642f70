//! `edge-tl run`: classify a camera (or a replay) in real time, one JSON line per result;
//! optionally also served over HTTP (with the teaching page) and published over MQTT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::args::{ModelArg, SourceArgs};
use super::run_services::Services;
use edge_tl::live::{run_loop, HeadWatcher, LiveCamera};
use edge_tl::model::Threads;
use edge_tl::pipeline::Pipeline;
use edge_tl::settings::bounds::{self, flag};
use edge_tl::settings::{
    check_camera_name, file, CameraLayer, CameraSettings, ReviewLayer, RunLayer, RunSettings,
    Secret,
};
use edge_tl::sink::systemd::SystemdNotify;
use edge_tl::sink::{Fanout, JsonLines, OnChange, Sink};
use edge_tl::source::{Feed, SourceSpec, Wake};

/// The flags of `run`. None has a clap default: every value is optional here and in the
/// settings file, and [`RunSettings::resolve`] applies the defaults after merging the two.
#[derive(Debug, Args)]
pub struct Flags {
    /// Head file from `edge-tl train` (reloaded when it changes) [default: the backbone's
    /// ImageNet classes]
    #[arg(long, value_name = "FILE")]
    head: Option<PathBuf>,
    /// Below this (smoothed) probability the label is "unknown" (0 to 1) [default: none]
    #[arg(long, value_name = "P", value_parser = flag::<f32>(bounds::THRESHOLD))]
    threshold: Option<f32>,
    /// Average probabilities over this many frames (1 = no smoothing) [default: 1]
    #[arg(long, value_name = "N", value_parser = flag::<usize>(bounds::SMOOTH))]
    smooth: Option<usize>,
    /// Change the reported label only after this many decisions in a row agree on the new one
    /// (1 = report every decision; before the first agreement the label is "unknown")
    /// [default: 1]
    #[arg(long, value_name = "N", value_parser = flag::<usize>(bounds::CONFIRM))]
    confirm: Option<usize>,
    /// Print a result only when the label changes
    #[arg(long)]
    on_change: bool,
    /// With --http: the part of the frame the page's Train teaches the head on, X,Y,W,H as
    /// shares of the frame's width and height (the page can draw another) [default: the
    /// existing head's region, else the whole frame]
    #[arg(long, value_name = "X,Y,W,H")]
    region: Option<edge_tl::region::Region>,
    /// Frames the page's review queue keeps for labelling (0 = none) [default: 200]
    #[arg(long, value_name = "N", value_parser = flag::<usize>(bounds::REVIEW_KEEP))]
    review_keep: Option<usize>,
    /// Labels listed per result [default: 3]
    #[arg(long, value_name = "N", value_parser = flag::<usize>(bounds::TOP))]
    top: Option<usize>,
    /// Stop after this many results
    #[arg(long, value_name = "N", value_parser = flag::<u64>(bounds::FRAMES))]
    frames: Option<u64>,
    /// Do not reload the head when its file changes
    #[arg(long)]
    no_watch: bool,
    /// Settings file (TOML); flags and environment variables override it
    #[arg(long, short = 'c', env = "EDGE_TL_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    source: SourceArgs,
    /// One of several cameras, each NAME=SOURCE (repeat the flag; instead of --source): one
    /// backbone serves them all, and each result names its camera
    // The source is parsed after clap, which would repeat a refused value, password and all.
    #[arg(long = "camera", value_name = "NAME=SOURCE")]
    cameras: Vec<String>,
    #[command(flatten)]
    model: ModelArg,
    /// Threads the backbone uses for each picture, or `auto`: from 1 up to every core,
    /// whichever measures fastest on the frames now (tried again every 900 frames and when the
    /// load changes) [default: auto]
    #[arg(long, short = 't', env = "EDGE_TL_THREADS", value_name = "N|auto",
          value_parser = bounds::threads_flag)]
    threads: Option<Threads>,
    #[command(flatten)]
    service: ServiceArgs,
}

/// The HTTP service and MQTT publishing of `run`.
#[derive(Debug, Clone, Args)]
struct ServiceArgs {
    /// Serve the live page and the HTTP API on ADDRESS:PORT (e.g. 127.0.0.1:8080)
    #[arg(long, env = "EDGE_TL_HTTP", value_name = "ADDR:PORT")]
    http: Option<std::net::SocketAddr>,
    /// Bearer token for the HTTP service (required unless it listens on loopback); visible in
    /// ps: prefer EDGE_TL_HTTP_TOKEN or --http-token-file
    #[arg(
        long,
        env = "EDGE_TL_HTTP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    http_token: Option<String>,
    /// File holding the bearer token, read once at start (a trailing newline is ignored)
    #[arg(long, value_name = "FILE", conflicts_with = "http_token")]
    http_token_file: Option<PathBuf>,
    /// Dataset folder the page's captures go to and trains from [default: dataset]
    #[arg(long, short = 'd', env = "EDGE_TL_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Publish results to this MQTT broker (mqtt://HOST[:PORT])
    // Checked after clap, which would repeat a refused value, credentials and all.
    #[arg(long, env = "EDGE_TL_MQTT", value_name = "URL")]
    mqtt: Option<String>,
    /// MQTT user name
    #[arg(long, env = "EDGE_TL_MQTT_USER", value_name = "USER")]
    mqtt_user: Option<String>,
    /// MQTT password; visible in ps: prefer EDGE_TL_MQTT_PASSWORD or --mqtt-password-file
    #[arg(
        long,
        env = "EDGE_TL_MQTT_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    mqtt_password: Option<String>,
    /// File holding the MQTT password, read once at start (a trailing newline is ignored)
    #[arg(long, value_name = "FILE", conflicts_with = "mqtt_password")]
    mqtt_password_file: Option<PathBuf>,
    /// This device's name in MQTT topics [default: the host name]
    #[arg(long, env = "EDGE_TL_DEVICE_ID", value_name = "ID", value_parser = device_id)]
    device_id: Option<String>,
}

fn device_id(s: &str) -> Result<String, String> {
    edge_tl::sink::mqtt::check_device_id(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

/// `--camera NAME=SOURCE`, the rest of the camera's settings from those of all cameras.
fn camera_flag(spec: &str) -> anyhow::Result<CameraLayer> {
    let Some((name, source)) = spec.split_once('=') else {
        anyhow::bail!(
            "--camera {}: write NAME=SOURCE, e.g. --camera door=rtsp://viewer@192.168.1.20/stream1",
            edge_tl::source::redact_url(spec)
        );
    };
    check_camera_name(name).map_err(|e| anyhow::anyhow!("--camera: {e}"))?;
    let source = source
        .parse::<SourceSpec>()
        .with_context(|| format!("--camera {name}"))?;
    Ok(CameraLayer {
        name: name.to_string(),
        source,
        source_password: None,
        head: None,
        data: None,
        region: None,
        threshold: None,
        smooth: None,
        confirm: None,
    })
}

impl Flags {
    /// What the command line (and the environment, which clap reads with each flag) says.
    fn layer(&self) -> anyhow::Result<RunLayer> {
        let s = &self.service;
        if let Some(url) = &s.mqtt {
            edge_tl::sink::mqtt::parse_url(url).context("--mqtt")?;
        }
        let cameras = match self.cameras.as_slice() {
            [] => None,
            given => Some(
                given
                    .iter()
                    .map(|spec| camera_flag(spec))
                    .collect::<anyhow::Result<Vec<_>>>()?,
            ),
        };
        Ok(RunLayer {
            cameras,
            model: self.model.model.clone(),
            head: self.head.clone(),
            threads: self.threads,
            watch_head: self.no_watch.then_some(false),
            data: s.data.clone(),
            region: self.region,
            threshold: self.threshold,
            smooth: self.smooth,
            confirm: self.confirm,
            on_change: self.on_change.then_some(true),
            top: self.top,
            frames: self.frames,
            http_listen: s.http,
            // clap refuses a value and its file together.
            http_token: Secret::given(
                s.http_token.clone(),
                s.http_token_file.clone(),
                "--http-token-file".into(),
            ),
            mqtt_url: s.mqtt.clone(),
            mqtt_user: s.mqtt_user.clone(),
            mqtt_password: Secret::given(
                s.mqtt_password.clone(),
                s.mqtt_password_file.clone(),
                "--mqtt-password-file".into(),
            ),
            device_id: s.device_id.clone(),
            review: ReviewLayer {
                keep: self.review_keep,
                ..ReviewLayer::default()
            },
            ..self.source.layer()?
        })
    }

    /// Flags over the settings file over the defaults, checked.
    fn settings(&self) -> anyhow::Result<RunSettings> {
        let mut layer = self.layer()?;
        if let Some(path) = &self.config {
            layer = layer.over(file::load(path)?);
        }
        Ok(RunSettings::resolve(layer)?)
    }
}

/// How often the head file is checked for a new version.
const HEAD_CHECK: Duration = Duration::from_millis(500);

pub fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    let settings = flags.settings()?;
    let threads = settings.threads;
    let stop = super::stop_flag()?;
    let mut backbone = load_backbone(&settings)?;
    backbone.set_threads(threads);
    let mut services = Services::start(&settings, &backbone)?;
    let wake = Arc::new(Wake::default());
    let mut cameras = Vec::new();
    for (i, camera) in settings.cameras.iter().enumerate() {
        let pipeline = camera_pipeline(&backbone, camera)?;
        let source =
            edge_tl::source::open(&camera.source, &camera.source_options).with_context(|| {
                match &camera.name {
                    Some(name) => format!("camera {name}"),
                    None => "--source".to_string(),
                }
            })?;
        eprintln!(
            "classifying {}{} into {} labels on {}; Ctrl-C stops",
            camera
                .name
                .as_ref()
                .map_or(String::new(), |n| format!("camera {n}: ")),
            source.describe(),
            pipeline.labels().len(),
            threads,
        );
        cameras.push(LiveCamera {
            name: camera.name.clone(),
            pipeline,
            feed: Feed::spawn_waking(source, stop.clone(), wake.clone()),
            watcher: match (&camera.head, settings.watch_head) {
                (Some(path), true) => Some(HeadWatcher::new(path, HEAD_CHECK)),
                _ => None,
            },
            options: camera.live.clone(),
            review: services.review_tap(i, &settings.review),
        });
    }
    drop(backbone);
    let stdout = JsonLines::new(std::io::stdout().lock());
    let mut json: Box<dyn Sink> = if settings.on_change {
        Box::new(OnChange::new(stdout))
    } else {
        Box::new(stdout)
    };
    let mut sinks: Vec<&mut dyn Sink> = vec![json.as_mut()];
    sinks.extend(services.sinks());
    let mut sink = Fanout(sinks);
    let mut systemd = SystemdNotify::from_env();
    let outcome = run_loop(
        &mut cameras,
        &wake,
        settings.frames,
        &stop,
        &mut sink,
        &mut || {
            if let Some(s) = systemd.as_mut() {
                s.tick();
            }
        },
    );
    drop(sink);
    services.close();
    let summary = outcome.context("camera loop")?;
    let f = summary.feed;
    eprintln!(
        "{} frames classified, {} dropped, {} undecodable, {} reconnects, {} head reloads{}",
        summary.classified,
        f.dropped,
        summary.bad_frames,
        f.reconnects,
        summary.head_reloads,
        if summary.source_ended {
            "; the source ended"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The backbone every camera shares: the one the first existing head was trained on (a head
/// of another backbone is refused when its camera is set up), else `--model` or the default.
/// Loaded with its ImageNet logits when a camera has no head yet, or one still to be trained.
fn load_backbone(settings: &RunSettings) -> anyhow::Result<Pipeline> {
    let heads: Vec<&PathBuf> = settings
        .cameras
        .iter()
        .filter_map(|c| c.head.as_ref())
        .collect();
    let all_trained = heads.len() == settings.cameras.len() && heads.iter().all(|p| p.exists());
    match heads.iter().find(|p| p.exists()) {
        Some(path) => {
            let head = super::load_head(path)?;
            let model = super::resolve_model(settings.model.as_deref(), Some(&head))?;
            let context = || {
                format!(
                    "loading {} with head {}",
                    model.path.display(),
                    path.display()
                )
            };
            if all_trained {
                Ok(Pipeline::with_head(&model, head, path).with_context(context)?)
            } else {
                let backbone = Pipeline::backbone(&model).with_context(context)?;
                Ok(backbone.share(Some((head, path))).with_context(context)?)
            }
        }
        None => {
            let model = super::resolve_model(settings.model.as_deref(), None)?;
            Ok(Pipeline::backbone(&model)
                .with_context(|| format!("loading {}", model.path.display()))?)
        }
    }
}

/// A camera's pipeline on the shared backbone, with its head when the file exists. A head file
/// that does not exist yet is one the page (or `edge-tl train`) will write: until then the
/// backbone's own classes answer, and the watcher loads it when it appears.
fn camera_pipeline(backbone: &Pipeline, camera: &CameraSettings) -> anyhow::Result<Pipeline> {
    match camera.head.as_ref() {
        Some(path) if path.exists() => {
            let head = super::load_head(path)?;
            Ok(backbone.share(Some((head, path))).with_context(|| {
                format!(
                    "loading head {} on {}",
                    path.display(),
                    backbone.extractor().model().path.display()
                )
            })?)
        }
        Some(path) => {
            eprintln!(
                "{} does not exist yet: answering with the backbone's ImageNet classes until it is trained",
                path.display()
            );
            Ok(backbone.share(None)?)
        }
        None => Ok(backbone.share(None)?),
    }
}
