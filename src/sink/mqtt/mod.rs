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

#[cfg(feature = "service")]
mod client;
#[cfg(feature = "service")]
pub use client::MqttSink;

/// How to reach the broker and what to call this device.
#[derive(Clone, PartialEq)]
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
    let mut id = sanitize_id(host.trim());
    // Only ASCII is left, so this cuts between characters.
    id.truncate(MAX_DEVICE_ID);
    if id.is_empty() {
        "edge-tl".into()
    } else {
        id
    }
}

/// What a device id may hold: safe in a topic level and a Home Assistant id.
fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Longest device id. It is in every topic, in the client id and several times in the
/// discovery message, so a long one made packets the client refused to send, and the
/// connection broke and was retried forever; a host name is at most 64 characters too.
pub const MAX_DEVICE_ID: usize = 64;

/// A device id given in the settings or on the command line: letters, digits, `-` and `_`, at
/// most [`MAX_DEVICE_ID`] of them. The callers name the flag or key.
pub fn check_device_id(id: &str) -> Result<(), MqttError> {
    let length = id.chars().count();
    if length > MAX_DEVICE_ID {
        return Err(MqttError::DeviceIdLength {
            length,
            max: MAX_DEVICE_ID,
        });
    }
    if id.is_empty() || !id.chars().all(id_char) {
        return Err(MqttError::DeviceId { id: id.to_string() });
    }
    Ok(())
}

fn sanitize_id(s: &str) -> String {
    s.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if id_char(c) { c } else { '_' })
        .collect()
}

/// Why MQTT cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MqttError {
    #[error("MQTT broker address {url:?}: {problem} (expected mqtt://HOST[:PORT])")]
    Url { url: String, problem: String },
    #[error("MQTT device id {id:?}: use letters, digits, - and _ only")]
    DeviceId { id: String },
    /// The id itself is left out of the message: it is the part too long to read.
    #[error("MQTT device id of {length} characters is too long: use at most {max} (letters, digits, - and _)")]
    DeviceIdLength { length: usize, max: usize },
    #[error("MQTT broker {broker} refused the connection: {reason}")]
    Refused { broker: String, reason: String },
}

/// Like the derived `Debug`, without the password.
impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("device_id", &self.device_id)
            .field("topic_prefix", &self.topic_prefix)
            .field("discovery_prefix", &self.discovery_prefix)
            .finish()
    }
}

/// Longest topic prefix accepted: prefixes go into every topic, and every packet must stay
/// within the client's packet size.
pub const MAX_TOPIC_PREFIX: usize = 128;

/// A topic or discovery prefix from the settings: 1 to [`MAX_TOPIC_PREFIX`] characters, no
/// MQTT wildcards (`+`, `#`), no spaces or control characters; levels may be separated by `/`.
pub fn check_topic_prefix(prefix: &str) -> Result<(), String> {
    let n = prefix.chars().count();
    if n == 0 || n > MAX_TOPIC_PREFIX {
        return Err(format!(
            "must be 1 to {MAX_TOPIC_PREFIX} characters (got {n})"
        ));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| matches!(c, '+' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{c:?} cannot be in a topic prefix: use letters, digits, -, _ and / between levels"
        ));
    }
    Ok(())
}

/// Host and port from `mqtt://host[:port]`.
pub fn parse_url(url: &str) -> Result<(String, u16), MqttError> {
    // Credentials in the address are never repeated back.
    let bad = |problem: &str| MqttError::Url {
        url: crate::source::redact_url(url).into_owned(),
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
    if rest.contains('@') {
        return Err(bad(
            "a user and password go in --mqtt-user and --mqtt-password-file (or mqtt.user and \
             mqtt.password_file), not in the address",
        ));
    }
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
        let e = parse_url("mqtt://u:hunter2@h").unwrap_err().to_string();
        assert!(
            !e.contains("hunter2") && e.contains("mqtt://u:***@h"),
            "{e}"
        );
        assert!(e.contains("--mqtt-password-file"), "{e}");
        assert!(check_topic_prefix("home/cams").is_ok());
        assert_eq!(
            check_topic_prefix(&"x".repeat(70_000)).unwrap_err(),
            "must be 1 to 128 characters (got 70000)"
        );
        assert!(check_topic_prefix("a/#")
            .unwrap_err()
            .contains("'#' cannot be"));
        let mut s = MqttSettings::new("mqtt://h");
        s.password = Some("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(parse_url("mqtt://:1883").is_err());
    }

    #[test]
    fn device_ids_are_topic_safe() {
        assert_eq!(sanitize_id("Kitchen Pi.local"), "kitchen_pi_local");
        assert!(check_device_id(&sanitize_id("Kitchen Pi.local")).is_ok());
        assert!(check_device_id("Kitchen-1_b").is_ok());
        for bad in ["", "my pi", "a/b", "x+"] {
            assert_eq!(
                check_device_id(bad).unwrap_err().to_string(),
                format!("MQTT device id {bad:?}: use letters, digits, - and _ only")
            );
        }
        assert!(!default_device_id().is_empty());
    }

    #[test]
    fn device_ids_are_at_most_64_characters() {
        assert!(check_device_id(&"a".repeat(64)).is_ok());
        for length in [65, 3_000, 70_000] {
            let e = check_device_id(&"a".repeat(length))
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                format!(
                    "MQTT device id of {length} characters is too long: use at most 64 \
                     (letters, digits, - and _)"
                )
            );
        }
        assert!(default_device_id().len() <= MAX_DEVICE_ID);
    }
}
