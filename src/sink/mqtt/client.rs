//! The MQTT connection itself (rumqttc on the service's tokio runtime); see the module above.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS,
};
use tokio::sync::watch;

use super::{check_device_id, parse_url, MqttError, MqttSettings};
use crate::prediction::LiveResult;
use crate::sink::{Flow, Sink};
use crate::source::RawFrame;

/// The topics of one device: its availability, and per camera a state, a prediction and a
/// Home Assistant sensor.
#[derive(Debug, Clone)]
struct Topics {
    availability: String,
    cameras: Vec<CameraTopics>,
}

/// One camera's topics: right under the device for the one camera of `--source`
/// (`<prefix>/<device>/state`), under its name when there are several
/// (`<prefix>/<device>/<camera>/state`).
#[derive(Debug, Clone)]
struct CameraTopics {
    camera: Option<String>,
    state: String,
    prediction: String,
    /// Home Assistant discovery topic and payload.
    discovery: Option<(String, String)>,
}

impl Topics {
    fn new(s: &MqttSettings, cameras: &[Option<String>]) -> Topics {
        let device = format!("{}/{}", s.topic_prefix, s.device_id);
        let availability = format!("{device}/availability");
        let cameras = cameras
            .iter()
            .map(|camera| {
                let base = match camera {
                    Some(name) => format!("{device}/{name}"),
                    None => device.clone(),
                };
                let state = format!("{base}/state");
                let discovery = s.discovery_prefix.as_ref().map(|prefix| {
                    let node = format!("edge-tl-{}", s.device_id);
                    let (name, object) = match camera {
                        Some(c) => (format!("{c} label"), format!("{c}_label")),
                        None => ("Label".to_string(), "label".to_string()),
                    };
                    let config = serde_json::json!({
                        "name": name,
                        "unique_id": format!("{node}-{}", object.replace('_', "-")),
                        "state_topic": state,
                        "value_template": "{{ value_json.label }}",
                        "json_attributes_topic": state,
                        "availability_topic": availability,
                        "icon": "mdi:camera-iris",
                        "device": {
                            "identifiers": [node],
                            "name": format!("edge-tl {}", s.device_id),
                            "model": "edge-tl",
                            "sw_version": env!("CARGO_PKG_VERSION"),
                        },
                    });
                    (
                        format!("{prefix}/sensor/{node}/{object}/config"),
                        config.to_string(),
                    )
                });
                CameraTopics {
                    camera: camera.clone(),
                    state,
                    prediction: format!("{base}/prediction"),
                    discovery,
                }
            })
            .collect();
        Topics {
            availability,
            cameras,
        }
    }

    fn of(&self, camera: &Option<String>) -> Option<&CameraTopics> {
        self.cameras.iter().find(|t| &t.camera == camera)
    }
}

/// The last state published per camera, announced again after every (re)connection.
type States = Arc<Mutex<std::collections::HashMap<Option<String>, Vec<u8>>>>;

/// Explains a CONNACK refusal and says what to change.
fn refusal(code: ConnectReturnCode) -> String {
    match code {
        ConnectReturnCode::BadUserNamePassword => {
            "wrong user name or password; check [mqtt] user and password in the settings \
             (or --mqtt-user / EDGE_TL_MQTT_PASSWORD)"
                .into()
        }
        // Mosquitto answers a wrong password with this code too.
        ConnectReturnCode::NotAuthorized => {
            "not authorised: a wrong user name or password, or none where the broker wants \
             one; check [mqtt] user and password in the settings (or --mqtt-user / \
             EDGE_TL_MQTT_PASSWORD)"
                .into()
        }
        ConnectReturnCode::BadClientId => {
            "it does not accept the client id; choose another [mqtt] device_id".into()
        }
        other => format!("{other:?}"),
    }
}

/// Where the connection stands, as seen by the task driving it.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    Connecting,
    Connected,
    Refused(String),
    Unreachable(String),
}

/// Largest MQTT packet sent or accepted, in bytes. rumqttc's default of 10 KiB is smaller than
/// a result with a long `top` (`--top 300` with ImageNet labels makes about 18 KB): the client
/// refused to send such a packet, dropped the connection and sent it again after reconnecting,
/// forever. An MQTT 3.1.1 broker does not announce its own limit (only MQTT 5's CONNACK
/// carries one), so this is a fixed choice: room for all 1000 ImageNet classes (about 55 KB),
/// and far below what Mosquitto accepts by default (the protocol's 256 MB). Every payload is
/// kept within it (`prediction_payload`, `fits`).
pub(crate) const MAX_PACKET: usize = 256 * 1024;

/// Bytes of a QoS 1 PUBLISH packet, counted as rumqttc checks it against the limit: fixed
/// header (at most 5 bytes), topic (2 + its length), packet id (2), payload.
fn publish_size(topic: &str, payload_len: usize) -> usize {
    5 + 2 + topic.len() + 2 + payload_len
}

/// Whether a message fits in one packet: one that does not would break the connection.
fn fits(topic: &str, payload: &[u8]) -> bool {
    publish_size(topic, payload.len()) <= MAX_PACKET
}

/// The `prediction` payload (the result as JSON) and how many of its `top` entries it holds.
struct PredictionPayload {
    bytes: Vec<u8>,
    kept: usize,
}

/// The whole result as the payload of a message to `topic`, or, when that would exceed a
/// packet of `max` bytes, the result with as many of its best `top` entries as fit. `None`
/// when not even an empty `top` fits (labels or names of absurd length).
fn prediction_payload(result: &LiveResult, topic: &str, max: usize) -> Option<PredictionPayload> {
    let fits_in = |bytes: &[u8]| publish_size(topic, bytes.len()) <= max;
    let full = serde_json::to_vec(result).unwrap_or_default();
    if fits_in(&full) {
        return Some(PredictionPayload {
            bytes: full,
            kept: result.top.len(),
        });
    }
    let with = |kept: usize| {
        let mut trimmed = result.clone();
        trimmed.top.truncate(kept);
        serde_json::to_vec(&trimmed).unwrap_or_default()
    };
    if !fits_in(&with(0)) {
        return None;
    }
    // The largest count that fits: `low` entries fit, `high` do not.
    let (mut low, mut high) = (0, result.top.len());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if fits_in(&with(middle)) {
            low = middle;
        } else {
            high = middle;
        }
    }
    Some(PredictionPayload {
        bytes: with(low),
        kept: low,
    })
}

/// The retained messages, re-sent after every (re)connection.
fn announce(client: &AsyncClient, topics: &Topics, states: &States) {
    let send = |topic: &str, payload: Vec<u8>| {
        if !fits(topic, &payload) {
            log::warn!(
                "MQTT: {topic} not sent: {} bytes do not fit in a {MAX_PACKET}-byte packet",
                payload.len()
            );
            return;
        }
        if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, true, payload) {
            log::debug!("MQTT: {topic} not queued: {e}");
        }
    };
    send(&topics.availability, b"online".to_vec());
    let states = states.lock().unwrap().clone();
    for camera in &topics.cameras {
        if let Some((topic, config)) = &camera.discovery {
            send(topic, config.clone().into_bytes());
        }
        if let Some(state) = states.get(&camera.camera) {
            send(&camera.state, state.clone());
        }
    }
}

/// Publishes results to an MQTT broker; see the module documentation.
pub struct MqttSink {
    client: AsyncClient,
    topics: Topics,
    states: States,
    task: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Handle,
    /// A message too large for one packet has been reported (once per run: it recurs with
    /// every result).
    told_too_large: bool,
}

/// Messages waiting for the connection before new ones are dropped.
const QUEUE: usize = 64;
/// How long `start` waits for the broker's answer before going on without it.
const FIRST_ANSWER: Duration = Duration::from_secs(5);

impl MqttSink {
    /// Connects on `runtime`. Waits up to 5 s for the broker: a refusal (wrong password, ...)
    /// is an error; a broker that does not answer is logged and retried in the background,
    /// so the device works, and reports once the broker is back.
    /// `cameras`: the names of the cameras whose results it will publish (`None` for the one
    /// camera of `--source`).
    pub fn start(
        settings: &MqttSettings,
        cameras: &[Option<String>],
        runtime: &tokio::runtime::Handle,
    ) -> Result<MqttSink, MqttError> {
        let (host, port) = parse_url(&settings.url)?;
        check_device_id(&settings.device_id)?;
        let broker = format!("{host}:{port}");
        let topics = Topics::new(settings, cameras);
        let mut options = MqttOptions::new(format!("edge-tl-{}", settings.device_id), host, port);
        options.set_keep_alive(Duration::from_secs(15));
        options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        options.set_last_will(LastWill::new(
            &topics.availability,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &settings.user {
            options.set_credentials(user, settings.password.clone().unwrap_or_default());
        }
        let (client, mut eventloop) = AsyncClient::new(options, QUEUE);
        let (status_tx, mut status_rx) = watch::channel(Status::Connecting);
        let states: States = Arc::default();
        let task = {
            let (client, topics, states, broker) = (
                client.clone(),
                topics.clone(),
                states.clone(),
                broker.clone(),
            );
            runtime.spawn(async move {
                let mut backoff = Duration::from_millis(500);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            log::warn!("MQTT: connected to {broker}");
                            backoff = Duration::from_millis(500);
                            status_tx.send_replace(Status::Connected);
                            announce(&client, &topics, &states);
                        }
                        Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                        Ok(_) => {}
                        Err(e) => {
                            let status = match &e {
                                ConnectionError::ConnectionRefused(code) => {
                                    Status::Refused(refusal(*code))
                                }
                                other => Status::Unreachable(other.to_string()),
                            };
                            let was = status_tx.send_replace(status.clone());
                            if was != status {
                                match &status {
                                    Status::Refused(why) => {
                                        log::error!("MQTT broker {broker} refused: {why}")
                                    }
                                    _ => log::warn!(
                                        "MQTT broker {broker}: {e}; retrying (waiting up to 30 s between attempts)"
                                    ),
                                }
                            }
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                        }
                    }
                }
            })
        };
        let first = runtime.block_on(async {
            let _ = tokio::time::timeout(
                FIRST_ANSWER,
                status_rx.wait_for(|s| *s != Status::Connecting),
            )
            .await;
            status_rx.borrow().clone()
        });
        match first {
            Status::Refused(reason) => {
                task.abort();
                return Err(MqttError::Refused { broker, reason });
            }
            Status::Unreachable(why) => log::warn!(
                "MQTT broker {broker} is not reachable yet ({why}); results are published once it is"
            ),
            Status::Connecting => log::warn!(
                "MQTT broker {broker} has not answered yet; results are published once it does"
            ),
            Status::Connected => {}
        }
        Ok(MqttSink {
            client,
            topics,
            states,
            task,
            runtime: runtime.clone(),
            told_too_large: false,
        })
    }

    /// Says `offline` and disconnects (waits up to a second for that to go out).
    pub fn close(self) {
        let _ =
            self.client
                .try_publish(&self.topics.availability, QoS::AtLeastOnce, true, "offline");
        let _ = self.client.try_disconnect();
        let task = self.task;
        self.runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        });
    }
}

/// Publishes every result it is given: wrap it in [`crate::sink::OnChange`] (as `run` does)
/// to publish changes of label only.
impl Sink for MqttSink {
    fn push(&mut self, result: &LiveResult, _frame: &Arc<RawFrame>) -> Flow {
        let Some(topics) = self.topics.of(&result.camera) else {
            log::debug!("MQTT: no topics for camera {:?}", result.camera);
            return Flow::Continue;
        };
        let state = serde_json::json!({
            "label": result.label,
            "prob": result.prob,
            "ts": result.ts,
        })
        .to_string()
        .into_bytes();
        let mut messages = Vec::with_capacity(2);
        let state_fits = fits(&topics.state, &state);
        if state_fits {
            self.states
                .lock()
                .unwrap()
                .insert(result.camera.clone(), state.clone());
            messages.push((&topics.state, true, state));
        }
        let prediction = prediction_payload(result, &topics.prediction, MAX_PACKET);
        if !self.told_too_large {
            if let Some(p) = prediction.as_ref().filter(|p| p.kept < result.top.len()) {
                self.told_too_large = true;
                log::warn!(
                    "MQTT: a result with {} top entries does not fit in a {MAX_PACKET}-byte \
                     packet; publishing the best {} (a lower --top / results.top sends them all)",
                    result.top.len(),
                    p.kept
                );
            } else if prediction.is_none() || !state_fits {
                self.told_too_large = true;
                log::warn!(
                    "MQTT: a result labelled {:?} does not fit in a {MAX_PACKET}-byte packet; \
                     not published",
                    result.label.chars().take(40).collect::<String>()
                );
            }
        }
        if let Some(p) = prediction {
            messages.push((&topics.prediction, false, p.bytes));
        }
        for (topic, retain, payload) in messages {
            if let Err(e) = self
                .client
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            {
                log::debug!("MQTT: {topic} dropped (queue full while disconnected): {e}");
            }
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict::Ranked;

    /// A result whose `top` holds the `n` longest ImageNet labels: the largest payloads.
    fn result_with_top(n: usize) -> LiveResult {
        let mut labels: Vec<&str> = include_str!("../../../models/imagenet_labels.txt")
            .lines()
            .collect();
        labels.sort_by_key(|l| std::cmp::Reverse(l.len()));
        let top: Vec<Ranked> = labels
            .iter()
            .cycle()
            .take(n)
            .enumerate()
            .map(|(index, label)| Ranked {
                label: label.to_string(),
                index,
                prob: 1.0 / (index + 2) as f32,
            })
            .collect();
        LiveResult {
            camera: None,
            pending: None,
            ts: "2025-01-01T00:00:00.000Z".into(),
            frame: 7,
            name: Some("/var/lib/edge-tl/frames/000123.jpg".into()),
            label: top[0].label.clone(),
            prob: top[0].prob,
            top,
            latency_ms: Default::default(),
            fps: 9.5,
            dropped: 0,
            reconnects: 0,
        }
    }

    const TOPIC: &str = "edge-tl/kitchen/prediction";

    #[test]
    fn a_300_entry_top_is_published_whole_within_the_packet_limit() {
        for n in [300, 1000] {
            let result = result_with_top(n);
            let p = prediction_payload(&result, TOPIC, MAX_PACKET).unwrap();
            assert_eq!(p.kept, n);
            assert!(publish_size(TOPIC, p.bytes.len()) <= MAX_PACKET);
            let v: serde_json::Value = serde_json::from_slice(&p.bytes).unwrap();
            assert_eq!(v["top"].as_array().unwrap().len(), n);
        }
        // rumqttc's default limit, which broke the connection with such a result.
        let p = prediction_payload(&result_with_top(300), TOPIC, MAX_PACKET).unwrap();
        assert!(p.bytes.len() > 10 * 1024, "{}", p.bytes.len());
    }

    #[test]
    fn a_result_over_the_limit_keeps_as_many_of_its_best_entries_as_fit() {
        let result = result_with_top(300);
        let max = 4096;
        let p = prediction_payload(&result, TOPIC, max).unwrap();
        assert!(p.kept > 0 && p.kept < 300, "{}", p.kept);
        assert!(publish_size(TOPIC, p.bytes.len()) <= max);
        let v: serde_json::Value = serde_json::from_slice(&p.bytes).unwrap();
        let top = v["top"].as_array().unwrap();
        assert_eq!(top.len(), p.kept);
        for (got, want) in top.iter().zip(&result.top) {
            assert_eq!(got["label"], want.label.as_str());
        }
        assert_eq!(v["label"], result.label.as_str());
        // One more entry would not have fitted.
        let mut more = result.clone();
        more.top.truncate(p.kept + 1);
        let bigger = serde_json::to_vec(&more).unwrap();
        assert!(publish_size(TOPIC, bigger.len()) > max);
        assert!(prediction_payload(&result, TOPIC, 100).is_none());
    }

    #[test]
    fn discovery_points_at_the_state_and_availability_topics() {
        let mut s = MqttSettings::new("mqtt://h");
        s.device_id = "pi1".into();
        let t = Topics::new(&s, &[None]);
        let one = t.of(&None).unwrap();
        assert_eq!(one.state, "edge-tl/pi1/state");
        let (topic, config) = one.discovery.clone().unwrap();
        assert_eq!(topic, "homeassistant/sensor/edge-tl-pi1/label/config");
        let v: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(v["state_topic"], "edge-tl/pi1/state");
        assert_eq!(v["availability_topic"], "edge-tl/pi1/availability");
        assert_eq!(v["unique_id"], "edge-tl-pi1-label");
        s.discovery_prefix = None;
        assert!(Topics::new(&s, &[None]).cameras[0].discovery.is_none());
    }

    #[test]
    fn several_cameras_get_their_own_topics_and_sensors_on_one_device() {
        let mut s = MqttSettings::new("mqtt://h");
        s.device_id = "pi1".into();
        let names = [Some("door".to_string()), Some("yard".to_string())];
        let t = Topics::new(&s, &names);
        assert_eq!(t.availability, "edge-tl/pi1/availability");
        let door = t.of(&names[0]).unwrap();
        assert_eq!(door.state, "edge-tl/pi1/door/state");
        assert_eq!(door.prediction, "edge-tl/pi1/door/prediction");
        let (topic, config) = door.discovery.clone().unwrap();
        assert_eq!(topic, "homeassistant/sensor/edge-tl-pi1/door_label/config");
        let v: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(v["state_topic"], "edge-tl/pi1/door/state");
        assert_eq!(v["unique_id"], "edge-tl-pi1-door-label");
        assert_eq!(v["device"]["identifiers"][0], "edge-tl-pi1");
        let yard = t.of(&names[1]).unwrap();
        assert_eq!(yard.state, "edge-tl/pi1/yard/state");
        assert!(t.of(&None).is_none());
    }
}
