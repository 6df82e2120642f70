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

/// The topics of one device.
#[derive(Debug, Clone)]
struct Topics {
    availability: String,
    state: String,
    prediction: String,
    /// Home Assistant discovery topic and payload.
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
        check_device_id(&settings.device_id)?;
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

/// Publishes every result it is given: wrap it in [`crate::sink::OnChange`] (as `run` does)
/// to publish changes of label only.
impl Sink for MqttSink {
    fn push(&mut self, result: &LiveResult, _frame: &Arc<RawFrame>) -> Flow {
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
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
