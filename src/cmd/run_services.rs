//! The optional parts of `run`: the HTTP service and MQTT, present when edge-tl is built with
//! the `service` cargo feature (the default). Without it, asking for them is an error that
//! says so, and the binary carries no async runtime.

use edge_tl::pipeline::Pipeline;
use edge_tl::sink::Sink;

use edge_tl::settings::RunSettings;

#[cfg(feature = "service")]
pub use with_service::Services;

#[cfg(feature = "service")]
mod with_service {
    use super::*;
    use anyhow::Context;
    use edge_tl::region::Region;
    use edge_tl::review::{ReviewQueue, ReviewSettings, ReviewTap, ReviewWriter};
    use edge_tl::service::{self, Hub, HubSink, Teach, TeachSettings};
    use edge_tl::sink::mqtt::MqttSink;
    use edge_tl::sink::OnChange;
    use std::sync::Arc;

    /// The running HTTP service and MQTT connection, and the runtime they share.
    pub struct Services {
        hub: Option<HubSink>,
        /// MQTT publishes changes of label only: its `state` topic is retained.
        mqtt: Option<OnChange<MqttSink>>,
        _runtime: Option<tokio::runtime::Runtime>,
    }

    impl Services {
        /// Starts what the settings ask for: binds the HTTP port (a token is required off
        /// loopback) and connects to the broker (a refusal is an error).
        pub fn start(settings: &RunSettings, pipeline: &Pipeline) -> anyhow::Result<Services> {
            let (http, mqtt) = (&settings.http, &settings.mqtt);
            if http.is_none() && mqtt.is_none() {
                return Ok(Services {
                    hub: None,
                    mqtt: None,
                    _runtime: None,
                });
            }
            let runtime = service::runtime().context("starting the service's runtime")?;
            let hub = match http {
                Some(h) => {
                    // Cameras of one head share its teaching (one training at a time; the
                    // settings made sure they also share its samples).
                    let mut teachers: Vec<Arc<Teach>> = Vec::new();
                    let mut cameras = Vec::new();
                    for c in &settings.cameras {
                        let teach = match teachers
                            .iter()
                            .find(|t| c.head.is_some() && t.head() == c.head.as_deref())
                        {
                            Some(t) => t.clone(),
                            None => {
                                let t = Arc::new(Teach::new(TeachSettings {
                                    data: c.data.clone(),
                                    head: c.head.clone(),
                                    model: pipeline.extractor().model().clone(),
                                    review: review_writer(&c.data, &settings.review),
                                    region: page_region(c),
                                }));
                                teachers.push(t.clone());
                                t
                            }
                        };
                        cameras.push((c.name.clone(), teach));
                    }
                    let hub = Hub::new(cameras);
                    let addr = service::serve(h, hub.clone(), runtime.handle())?;
                    eprintln!("serving the live page on http://{addr}/");
                    Some(HubSink(hub))
                }
                None => None,
            };
            let mqtt = match mqtt {
                Some(m) => {
                    let cameras: Vec<Option<String>> =
                        settings.cameras.iter().map(|c| c.name.clone()).collect();
                    Some(OnChange::new(MqttSink::start(
                        m,
                        &cameras,
                        runtime.handle(),
                    )?))
                }
                None => None,
            };
            Ok(Services {
                hub,
                mqtt,
                _runtime: Some(runtime),
            })
        }

        /// What offers camera `i`'s frames to its dataset's review queue, when the page is on
        /// and keeps one.
        pub fn review_tap(&self, i: usize, review: &ReviewSettings) -> Option<ReviewTap> {
            let camera = &self.hub.as_ref()?.0.cameras()[i];
            let writer = camera.teach.review()?;
            Some(writer.tap(camera.name().map(String::from), review.select.clone()))
        }

        pub fn sinks(&mut self) -> Vec<&mut dyn Sink> {
            let mut v: Vec<&mut dyn Sink> = Vec::new();
            if let Some(h) = self.hub.as_mut() {
                v.push(h);
            }
            if let Some(m) = self.mqtt.as_mut() {
                v.push(m);
            }
            v
        }

        /// Says `offline` over MQTT before the process ends.
        pub fn close(self) {
            if let Some(m) = self.mqtt {
                m.into_inner().close();
            }
        }
    }

    /// The region the page's Train starts with: the settings' (said when the head was taught
    /// on another), else the existing head's, so training again keeps what the head looks at.
    fn page_region(camera: &edge_tl::settings::CameraSettings) -> Option<Region> {
        let head = camera.head.as_deref().filter(|p| p.exists());
        let trained = head.and_then(|p| edge_tl::head::file::load(p).ok()?.region);
        match (camera.region, trained) {
            (Some(r), t) if head.is_some() && t != Some(r) => {
                log::warn!(
                    "{}: the head looks at {}; the page's next Train teaches it on {r} (the \
                     settings' region)",
                    head.map_or(String::new(), |p| p.display().to_string()),
                    t.map_or("the whole frame".to_string(), |t| format!("the region {t}"))
                );
                Some(r)
            }
            (r, t) => r.or(t),
        }
    }

    /// The review queue of a dataset folder and its writer; `None` (with a warning) when the
    /// folder cannot hold one, so classifying and the page go on without it.
    fn review_writer(data: &std::path::Path, review: &ReviewSettings) -> Option<ReviewWriter> {
        if review.keep == 0 {
            return None;
        }
        let mut review = review.clone();
        // Tests kill the service in the middle of a write (tests/it/review.rs).
        if let Some(ms) = std::env::var("EDGE_TL_TEST_REVIEW_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            review.write_pause = std::time::Duration::from_millis(ms);
        }
        let opened = ReviewQueue::open(data, review)
            .map_err(anyhow::Error::from)
            .and_then(|q| Ok(ReviewWriter::spawn(Arc::new(q))?));
        match opened {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("{e:#}; no review queue for this folder");
                None
            }
        }
    }
}

/// Stands in for the service in builds without it.
#[cfg(not(feature = "service"))]
pub struct Services;

#[cfg(not(feature = "service"))]
impl Services {
    pub fn start(settings: &RunSettings, _pipeline: &Pipeline) -> anyhow::Result<Services> {
        if settings.http.is_some() || settings.mqtt.is_some() {
            anyhow::bail!(
                "this edge-tl was built without the HTTP service and MQTT (cargo feature \
                 `service`); rebuild with default features, or drop --http/--mqtt and the \
                 [http] listen / [mqtt] url settings"
            );
        }
        Ok(Services)
    }

    pub fn review_tap(
        &self,
        _i: usize,
        _review: &edge_tl::review::ReviewSettings,
    ) -> Option<edge_tl::review::ReviewTap> {
        None
    }

    pub fn sinks(&mut self) -> Vec<&mut dyn Sink> {
        Vec::new()
    }

    pub fn close(self) {}
}
