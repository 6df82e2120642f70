//! `run --mqtt` against a real Mosquitto broker started here on loopback (Debian's
//! `mosquitto`, which `.ci/run` installs): messages arrive and agree with `predict`, the
//! broker restarting mid-run is survived, a clean stop and a crash both leave `offline`, and a
//! wrong password is a clear error.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::common::{edge_tl, stderr};
use crate::harness::{fixture, path_arg, Background, FRAMES};

/// A Mosquitto broker with two users, on its own port, without persistence.
struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let passwd = dir.path().join("passwd");
        for (i, (user, password)) in [("edge", "s3cret"), ("watch", "w4tch")].iter().enumerate() {
            let mut args = vec!["-b"];
            if i == 0 {
                args.push("-c");
            }
            let ok = Command::new("mosquitto_passwd")
                .args(&args)
                .arg(&passwd)
                .args([user, password])
                .status()
                .expect("mosquitto_passwd (apt install mosquitto) is needed for the MQTT tests");
            assert!(ok.success());
        }
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                 persistence false\nuser root\n",
                passwd.display()
            ),
        )
        .unwrap();
        let mut b = Broker {
            child: None,
            port,
            dir,
        };
        b.up();
        b
    }

    fn up(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (apt install mosquitto) is needed for the MQTT tests");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.down();
    }
}

/// A subscriber to everything edge-tl and Home Assistant, re-subscribing after reconnects.
fn watch(port: u16) -> Receiver<(String, String, bool)> {
    let mut options = MqttOptions::new("test-watcher", "127.0.0.1", port);
    options.set_credentials("watch", "w4tch");
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(options, 100);
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.subscribe("edge-tl/#", QoS::AtLeastOnce).unwrap();
                    client
                        .subscribe("homeassistant/#", QoS::AtLeastOnce)
                        .unwrap();
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let text = String::from_utf8_lossy(&p.payload).to_string();
                    if tx.send((p.topic.clone(), text, p.retain)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    });
    rx
}

/// Messages until one satisfies `until` (included); fails after a minute.
fn until(
    rx: &Receiver<(String, String, bool)>,
    what: &str,
    done: impl Fn(&str, &str) -> bool,
) -> Vec<(String, String, bool)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(m) = rx.recv_timeout(Duration::from_millis(200)) {
            let stop = done(&m.0, &m.1);
            seen.push(m);
            if stop {
                return seen;
            }
        }
    }
    panic!("no {what} within 60 s; got {seen:?}");
}

fn publish_run(head: &Path, frames: &Path, broker: &Broker) -> Background {
    Background::start(&[
        "run",
        "--head",
        head.to_str().unwrap(),
        "--source",
        &path_arg("dir:", frames),
        "--loop",
        "--replay-fps",
        "5",
        "--mqtt",
        &broker.url(),
        "--mqtt-user",
        "edge",
        "--mqtt-password",
        "s3cret",
        "--device-id",
        "testpi",
    ])
}

const AVAILABILITY: &str = "edge-tl/testpi/availability";

#[test]
fn predictions_reach_the_broker_and_survive_its_restart() {
    let f = fixture();
    let mut broker = Broker::start();
    let rx = watch(broker.port);
    std::thread::sleep(Duration::from_millis(300));
    let run = publish_run(&f.head, &f.frames, &broker);

    let seen = until(&rx, "three predictions", {
        let count = std::cell::Cell::new(0);
        move |topic, _| {
            if topic == "edge-tl/testpi/prediction" {
                count.set(count.get() + 1);
            }
            count.get() >= 3
        }
    });
    let discovery = seen
        .iter()
        .find(|(t, _, _)| t == "homeassistant/sensor/edge-tl-testpi/label/config")
        .expect("a Home Assistant discovery message");
    let config: Value = serde_json::from_str(&discovery.1).unwrap();
    assert_eq!(config["state_topic"], "edge-tl/testpi/state");
    assert_eq!(config["availability_topic"], AVAILABILITY);
    assert!(seen
        .iter()
        .any(|(t, p, _)| t == AVAILABILITY && p == "online"));
    let check = |seen: &[(String, String, bool)]| {
        for (topic, payload, _) in seen {
            let v: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
            if topic == "edge-tl/testpi/prediction" {
                let i = v["frame"].as_u64().unwrap() as usize % FRAMES;
                assert_eq!(v["label"], f.predicted[i].0.as_str(), "{payload}");
            }
            if topic == "edge-tl/testpi/state" {
                assert!(v["label"] == "cat" || v["label"] == "dog", "{payload}");
                assert!(v["prob"].as_f64().unwrap() > 0.5, "{payload}");
            }
        }
    };
    check(&seen);
    assert!(seen.iter().any(|(t, _, _)| t == "edge-tl/testpi/state"));

    // The broker goes away for two seconds and comes back empty (no persistence).
    broker.down();
    std::thread::sleep(Duration::from_secs(2));
    broker.up();
    let after = until(&rx, "predictions after the broker restart", {
        let online = std::cell::Cell::new(false);
        move |topic, payload| {
            if topic == AVAILABILITY && payload == "online" {
                online.set(true);
            }
            online.get() && topic == "edge-tl/testpi/prediction"
        }
    });
    check(&after);
    // Retained state is announced again for subscribers of the restarted broker.
    assert!(
        after
            .iter()
            .any(|(t, _, _)| t == "homeassistant/sensor/edge-tl-testpi/label/config"),
        "{after:?}"
    );

    // A clean stop says offline.
    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
    until(&rx, "offline after SIGTERM", |t, p| {
        t == AVAILABILITY && p == "offline"
    });
    assert!(err.contains("MQTT: connected to 127.0.0.1"), "{err}");
}

#[test]
fn a_crash_leaves_the_last_will_and_a_wrong_password_is_named() {
    let f = fixture();
    let broker = Broker::start();
    let rx = watch(broker.port);
    std::thread::sleep(Duration::from_millis(300));
    let mut run = publish_run(&f.head, &f.frames, &broker);
    until(&rx, "online", |t, p| t == AVAILABILITY && p == "online");
    run.child.kill().unwrap();
    run.child.wait().unwrap();
    until(&rx, "the last will", |t, p| {
        t == AVAILABILITY && p == "offline"
    });

    let out = edge_tl(&[
        "run",
        "--head",
        f.head.to_str().unwrap(),
        "--source",
        &path_arg("dir:", &f.frames),
        "--mqtt",
        &broker.url(),
        "--mqtt-user",
        "edge",
        "--mqtt-password",
        "wrong",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "MQTT broker 127.0.0.1:{} refused the connection: not authorised: a wrong user name or password",
            broker.port
        )),
        "{err}"
    );
    assert!(err.contains("EDGE_TL_MQTT_PASSWORD"), "{err}");
}
