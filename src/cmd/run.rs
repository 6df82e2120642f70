//! `edge-tl run`: classify a camera (or a replay) in real time, one JSON line per result;
//! optionally also served over HTTP (with the teaching page) and published over MQTT.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::run_services::Services;
use crate::cli::{ServiceArgs, SourceArgs};
use edge_tl::config::{Checked, Config};
use edge_tl::live::{run_loop, HeadWatcher, LiveOptions};
use edge_tl::pipeline::Pipeline;
use edge_tl::sink::mqtt::MqttSettings;
use edge_tl::sink::systemd::SystemdNotify;
use edge_tl::sink::{Fanout, JsonLines, Sink};
use edge_tl::source::Feed;

pub struct RunArgs {
    pub head: Option<PathBuf>,
    pub live: LiveOptions,
    pub watch: bool,
    pub source: SourceArgs,
    pub service: ServiceArgs,
    /// `[mqtt]` keys that have no flag.
    pub mqtt_extra: edge_tl::config::MqttConfig,
    pub model: Option<String>,
    pub threads: Option<usize>,
    /// Settings file, below flags and environment variables.
    pub config: Option<PathBuf>,
    /// Argument ids the user gave explicitly (flag or environment variable).
    pub given: HashSet<String>,
}

impl RunArgs {
    /// Fills everything the user did not give from the settings file.
    fn apply(&mut self, c: &Config, checked: &Checked) {
        let free = |id: &str| !self.given.contains(id);
        if let (true, Some(s)) = (free("source"), &c.source) {
            self.source.source = s.clone();
        }
        if free("format") && checked.format.is_some() {
            self.source.format = checked.format;
        }
        if free("size") && checked.size.is_some() {
            self.source.size = checked.size;
        }
        if free("fps") && c.camera.fps.is_some() {
            self.source.fps = c.camera.fps;
        }
        if free("head") && c.head.is_some() {
            self.head = c.head.clone();
        }
        if free("model") && c.model.is_some() {
            self.model = c.model.clone();
        }
        if free("threads") && c.threads.is_some() {
            self.threads = c.threads;
        }
        if free("no_watch") {
            if let Some(w) = c.watch_head {
                self.watch = w;
            }
        }
        let r = &c.results;
        if free("threshold") && r.threshold.is_some() {
            self.live.threshold = r.threshold;
        }
        if let (true, Some(n)) = (free("smooth"), r.smooth) {
            self.live.smooth = n;
        }
        if let (true, Some(b)) = (free("on_change"), r.on_change) {
            self.live.on_change = b;
        }
        if let (true, Some(n)) = (free("top"), r.top) {
            self.live.top = n;
        }
        let s = &mut self.service;
        if let (true, Some(d)) = (free("data"), &c.data) {
            s.data = d.clone();
        }
        if free("http") && checked.listen.is_some() {
            s.http = checked.listen;
        }
        if let (true, Some(t)) = (free("http_token"), &c.http.token) {
            s.http_token = Some(t.clone());
        }
        let m = &c.mqtt;
        for (id, flag, file) in [
            ("mqtt", &mut s.mqtt, &m.url),
            ("mqtt_user", &mut s.mqtt_user, &m.user),
            ("mqtt_password", &mut s.mqtt_password, &m.password),
            ("device_id", &mut s.device_id, &m.device_id),
        ] {
            if free(id) && file.is_some() {
                flag.clone_from(file);
            }
        }
        self.mqtt_extra = m.clone();
    }

    pub(super) fn mqtt_settings(&self) -> Option<MqttSettings> {
        let s = &self.service;
        let mut m = MqttSettings::new(s.mqtt.as_deref()?);
        m.user.clone_from(&s.mqtt_user);
        m.password.clone_from(&s.mqtt_password);
        if let Some(id) = &s.device_id {
            m.device_id.clone_from(id);
        }
        let x = &self.mqtt_extra;
        if let Some(p) = &x.topic_prefix {
            m.topic_prefix.clone_from(p);
        }
        if let Some(p) = &x.discovery_prefix {
            m.discovery_prefix = Some(p.clone());
        }
        if x.discovery == Some(false) {
            m.discovery_prefix = None;
        }
        Some(m)
    }
}

/// How often the head file is checked for a new version.
const HEAD_CHECK: Duration = Duration::from_millis(500);

pub fn run(mut args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = args.config.clone() {
        let (config, checked) = Config::load(&path)?;
        args.apply(&config, &checked);
    }
    let threads = crate::cli::ThreadsArg {
        threads: args.threads,
    }
    .resolve();
    let stop = super::stop_flag()?;
    // A head file that does not exist yet is one the page (or `edge-tl train`) will write:
    // until then the backbone's own classes answer, and the watcher loads it when it appears.
    let existing_head = args.head.as_ref().filter(|p| p.exists());
    if let Some(path) = args.head.as_ref().filter(|p| !p.exists()) {
        eprintln!(
            "{} does not exist yet: answering with the backbone's ImageNet classes until it is trained",
            path.display()
        );
    }
    let mut pipeline = match existing_head {
        Some(path) => {
            let head = super::load_head(path)?;
            let model = super::resolve_model(args.model.as_deref(), Some(&head))?;
            Pipeline::with_head(&model, head, path).with_context(|| {
                format!(
                    "loading {} with head {}",
                    model.path.display(),
                    path.display()
                )
            })?
        }
        None => {
            let model = super::resolve_model(args.model.as_deref(), None)?;
            Pipeline::backbone(&model)
                .with_context(|| format!("loading {}", model.path.display()))?
        }
    };
    pipeline.set_threads(threads);
    let mut services = Services::start(&args, &pipeline)?;
    let source = super::open_source(&args.source)?;
    eprintln!(
        "classifying {} into {} labels on {} thread{}; Ctrl-C stops",
        source.describe(),
        pipeline.labels().len(),
        threads,
        if threads == 1 { "" } else { "s" }
    );
    let feed = Feed::spawn(source, stop.clone());
    let mut watcher = match (&args.head, args.watch) {
        (Some(path), true) => Some(HeadWatcher::new(path, HEAD_CHECK)),
        _ => None,
    };
    let mut json = JsonLines::new(std::io::stdout().lock());
    let mut systemd = SystemdNotify::from_env();
    let mut sinks: Vec<&mut dyn Sink> = vec![&mut json];
    if let Some(s) = systemd.as_mut() {
        sinks.push(s);
    }
    sinks.extend(services.sinks());
    let mut sink = Fanout(sinks);
    let outcome = run_loop(
        &mut pipeline,
        &feed,
        watcher.as_mut(),
        &args.live,
        &stop,
        &mut sink,
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
