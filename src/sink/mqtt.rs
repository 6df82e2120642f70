//! MQTT (`run --mqtt mqtt://broker`): what the camera sees, for Home Assistant and friends.
//!
//! Topics, under `<prefix>/<device-id>/` (prefix `edge-tl`):
//! - `availability`: `online` (retained) once connected, `offline` on a clean stop and, as the
//!   broker's last will, when the device vanishes;
//! - `state`: `{"label","prob","ts"}`, retained, so a new subscriber sees the current answer;
//! - `prediction`: the whole result (the JSON line of `run`), each time the label changes.
//!
//! With discovery on (the default), `<discovery-prefix>/sensor/edge-tl-<id>/label/config`
//! announces a sensor, so the device appears in Home Assistant by itself.
//!
//! The connection lives on the service's tokio runtime; the inference loop only queues
//! messages (never waits), and a full queue drops them. After a reconnect everything retained
//! is announced again, so a restarted broker without persistence has the current state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS,
};
use tokio::sync::watch;

use super::Sink;
use crate::live::smooth::ChangeDetector;
use crate::live::LiveResult;
use crate::source::RawFrame;

/// How to reach the broker and what to call this device.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    /// `mqtt://host[:port]` (port 1883 when left out).
    pub url: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Topic level for this device (default: the host name).
    pub device_id: String,
    pub topic_prefix: String,
    /// Home Assistant discovery prefix; `None` turns discovery off.
    pub discovery_prefix: Option<String>,
}

impl MqttSettings {
    /// Settings with the defaults: this host's name as device id, prefix `edge-tl`,
    /// discovery under `homeassistant`.
    pub fn new(url: &str) -> Self {
        MqttSettings {
            url: url.to_string(),
            user: None,
            password: None,
            device_id: default_device_id(),
            topic_prefix: "edge-tl".into(),
            discovery_prefix: Some("homeassistant".into()),
        }
    }
}

/// The host name, reduced to what is safe in a topic level and a Home Assistant id.
pub fn default_device_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let id = sanitize_id(host.trim());
    if id.is_empty() {
        "edge-tl".into()
    } else {
        id
    }
}

fn sanitize_id(s: &str) -> String {
    s.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Why MQTT cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MqttError {
    #[error("MQTT broker address {url:?}: {problem} (expected mqtt://HOST[:PORT])")]
    Url { url: String, problem: String },
    #[error("MQTT device id {id:?}: use letters, digits, - and _ only")]
    DeviceId { id: String },
    #[error("MQTT broker {broker} refused the connection: {reason}")]
    Refused { broker: String, reason: String },
}

/// Host and port from `mqtt://host[:port]`.
pub fn parse_url(url: &str) -> Result<(String, u16), MqttError> {
    let bad = |problem: &str| MqttError::Url {
        url: url.to_string(),
        problem: problem.to_string(),
    };
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| {
            if url.starts_with("mqtts://") || url.starts_with("ssl://") {
                bad("TLS is not built in; use a broker listener without TLS on the LAN")
            } else {
                bad("not an mqtt:// address")
            }
        })?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| bad(&format!("port {p:?} is not a number from 1 to 65535")))?,
        ),
        None => (rest, 1883),
    };
    if host.is_empty() || host.contains('/') || host.contains('@') {
        return Err(bad("no host name"));
    }
    Ok((host.to_string(), port))
}

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

#[derive(Debug, Clone)]
struct Topics {
    availability: String,
    state: String,
    prediction: String,
    discovery: Option<(String, String)>,
}

impl Topics {
    fn new(s: &MqttSettings) -> Topics {
        let base = format!("{}/{}", s.topic_prefix, s.device_id);
        let availability = format!("{base}/availability");
        let state = format!("{base}/state");
        let discovery = s.discovery_prefix.as_ref().map(|prefix| {
            let node = format!("edge-tl-{}", s.device_id);
            let config = serde_json::json!({
                "name": "Label",
                "unique_id": format!("{node}-label"),
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
                format!("{prefix}/sensor/{node}/label/config"),
                config.to_string(),
            )
        });
        Topics {
            availability,
            state,
            prediction: format!("{base}/prediction"),
            discovery,
        }
    }
}

/// The retained messages, re-sent after every (re)connection.
fn announce(client: &AsyncClient, topics: &Topics, state: Option<Vec<u8>>) {
    let send = |topic: &str, payload: Vec<u8>| {
        if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, true, payload) {
            log::debug!("MQTT: {topic} not queued: {e}");
        }
    };
    send(&topics.availability, b"online".to_vec());
    if let Some((topic, config)) = &topics.discovery {
        send(topic, config.clone().into_bytes());
    }
    if let Some(state) = state {
        send(&topics.state, state);
    }
}

/// Publishes results to an MQTT broker; see the module documentation.
pub struct MqttSink {
    client: AsyncClient,
    topics: Topics,
    changes: ChangeDetector,
    state: Arc<Mutex<Option<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Handle,
}

/// Messages waiting for the connection before new ones are dropped.
const QUEUE: usize = 64;
/// How long `start` waits for the broker's answer before going on without it.
const FIRST_ANSWER: Duration = Duration::from_secs(5);

impl MqttSink {
    /// Connects on `runtime`. Waits up to 5 s for the broker: a refusal (wrong password, ...)
    /// is an error; a broker that does not answer is logged and retried in the background,
    /// so the device works, and reports once the broker is back.
    pub fn start(
        settings: &MqttSettings,
        runtime: &tokio::runtime::Handle,
    ) -> Result<MqttSink, MqttError> {
        let (host, port) = parse_url(&settings.url)?;
        if settings.device_id.is_empty() || sanitize_id(&settings.device_id) != settings.device_id {
            return Err(MqttError::DeviceId {
                id: settings.device_id.clone(),
            });
        }
        let broker = format!("{host}:{port}");
        let topics = Topics::new(settings);
        let mut options = MqttOptions::new(format!("edge-tl-{}", settings.device_id), host, port);
        options.set_keep_alive(Duration::from_secs(15));
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
        let state: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let task = {
            let (client, topics, state, broker) = (
                client.clone(),
                topics.clone(),
                state.clone(),
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
                            announce(&client, &topics, state.lock().unwrap().clone());
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
            changes: ChangeDetector::default(),
            state,
            task,
            runtime: runtime.clone(),
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

impl Sink for MqttSink {
    fn publish(&mut self, _result: &LiveResult) -> std::io::Result<()> {
        Ok(())
    }

    fn observe(&mut self, result: &LiveResult, _frame: &RawFrame) {
        if !self.changes.changed(&result.label) {
            return;
        }
        let state = serde_json::json!({
            "label": result.label,
            "prob": result.prob,
            "ts": result.ts,
        })
        .to_string()
        .into_bytes();
        *self.state.lock().unwrap() = Some(state.clone());
        let full = serde_json::to_vec(result).unwrap_or_default();
        for (topic, retain, payload) in [
            (&self.topics.state, true, state),
            (&self.topics.prediction, false, full),
        ] {
            if let Err(e) = self
                .client
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            {
                log::debug!("MQTT: {topic} dropped (queue full while disconnected): {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        assert_eq!(
            parse_url("mqtt://pi.local").unwrap(),
            ("pi.local".into(), 1883)
        );
        assert_eq!(
            parse_url("mqtt://10.0.0.2:1884/").unwrap(),
            ("10.0.0.2".into(), 1884)
        );
        assert_eq!(parse_url("tcp://h:1").unwrap(), ("h".into(), 1));
        let e = parse_url("mqtts://h").unwrap_err().to_string();
        assert!(e.contains("TLS is not built in"), "{e}");
        let e = parse_url("http://h").unwrap_err().to_string();
        assert_eq!(
            e,
            "MQTT broker address \"http://h\": not an mqtt:// address (expected mqtt://HOST[:PORT])"
        );
        assert!(parse_url("mqtt://h:99999").is_err());
        assert!(parse_url("mqtt://:1883").is_err());
    }

    #[test]
    fn device_ids_are_topic_safe() {
        assert_eq!(sanitize_id("Kitchen Pi.local"), "kitchen_pi_local");
        assert!(!default_device_id().is_empty());
    }

    #[test]
    fn discovery_points_at_the_state_and_availability_topics() {
        let mut s = MqttSettings::new("mqtt://h");
        s.device_id = "pi1".into();
        let t = Topics::new(&s);
        assert_eq!(t.state, "edge-tl/pi1/state");
        let (topic, config) = t.discovery.unwrap();
        assert_eq!(topic, "homeassistant/sensor/edge-tl-pi1/label/config");
        let v: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(v["state_topic"], "edge-tl/pi1/state");
        assert_eq!(v["availability_topic"], "edge-tl/pi1/availability");
        assert_eq!(v["unique_id"], "edge-tl-pi1-label");
        s.discovery_prefix = None;
        assert!(Topics::new(&s).discovery.is_none());
    }
}
