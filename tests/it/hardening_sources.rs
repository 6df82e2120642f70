//! Sources and MQTT under inputs that used to make `run` spin or break: a looping folder in
//! which nothing decodes, a picture that cannot be read, results too large for rumqttc's
//! default packet limit, and device ids too long for any topic.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{copy_pictures, data};
use crate::harness::{path_arg, Background};

/// The end of a long text, for failure messages (the old loop wrote megabytes).
fn tail(text: &str) -> &str {
    text.char_indices()
        .rev()
        .nth(3000)
        .map_or(text, |(i, _)| &text[i..])
}

/// Ends `run` (a looping replay never ends by itself) and fails with the end of its stderr.
fn give_up(run: &mut Background, what: &str) -> ! {
    let _ = run.child.kill();
    let _ = run.child.wait();
    panic!("{what} within 90 s; stderr ends: {}", tail(&run.stderr()));
}

/// Waits (at most 90 s) until `run`'s stderr holds `text`.
fn wait_for_stderr(run: &mut Background, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !run.stderr().contains(text) {
        if Instant::now() >= deadline {
            give_up(run, &format!("no {text:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The broken pictures of `$EDGE_TL_SHARED/data/bad` (not its NOTES.csv), copied to `dest`.
fn copy_broken_pictures(dest: &Path) -> Vec<PathBuf> {
    let mut copied = Vec::new();
    for entry in std::fs::read_dir(data("bad")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jpg" || e == "png") {
            let to = dest.join(path.file_name().unwrap());
            std::fs::copy(&path, &to).unwrap();
            copied.push(to);
        }
    }
    copied.sort();
    copied
}

/// The folder's six broken pictures are each named once, then the folder is said to have
/// nothing that decodes, once, and `run` waits instead of printing thousands of warnings a
/// second (8,524 lines in 5 s before).
#[test]
fn a_looping_folder_of_broken_pictures_is_told_about_once_and_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let broken = copy_broken_pictures(dir.path());
    assert_eq!(broken.len(), 6, "{broken:?}");
    let mut run = Background::start(&["run", "--source", &path_arg("dir:", dir.path()), "--loop"]);
    let sentence = format!(
        "{}: none of its 6 pictures decode; waiting 1 s before trying again",
        dir.path().display()
    );
    wait_for_stderr(&mut run, &sentence);
    // The time in which the old loop printed thousands of lines (the waits are 1 s, then 2 s).
    std::thread::sleep(Duration::from_secs(3));
    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
    let lines = err.lines().count();
    assert!(
        lines < 50,
        "{lines} lines on stderr, ending:\n{}",
        tail(&err)
    );
    assert_eq!(err.matches(&sentence).count(), 1, "{err}");
    for path in &broken {
        let named = format!("{}: ", path.display());
        assert_eq!(err.matches(&named).count(), 1, "{named}\n{err}");
    }
    assert!(err.contains("0 frames classified"), "{err}");
}

/// A file that cannot be read is reported as such, with the system's reason, not as an empty
/// file. The tests run as root here, where `chmod 000` does not stop reading, so the file is
/// removed after the folder was listed, which fails the same way for any user.
#[test]
fn a_picture_that_cannot_be_read_is_reported_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    copy_pictures("catsdogs/test/cat", dir.path(), 2);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut run = Background::start(&[
        "run",
        "--source",
        &path_arg("dir:", dir.path()),
        "--loop",
        "--top",
        "1",
    ]);
    run.wait_for("a first result", |_| true);
    let gone = &files[1];
    std::fs::remove_file(gone).unwrap();
    let reason = format!(
        "{}: cannot read the file: No such file or directory",
        gone.display()
    );
    wait_for_stderr(&mut run, &reason);
    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains("the file is empty"), "{err}");
}

#[cfg(feature = "service")]
mod mqtt {
    use std::net::TcpStream;
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc::{channel, Receiver};

    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    use serde_json::Value;

    use super::*;
    use crate::common::{edge_tl, stderr};

    /// An anonymous Mosquitto broker on loopback, on its own port, without persistence.
    struct Broker {
        child: Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl Broker {
        fn start() -> Broker {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     user root\n"
                ),
            )
            .unwrap();
            let child = Command::new("mosquitto")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto (apt install mosquitto) is needed for the MQTT tests");
            let broker = Broker {
                child,
                port,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "mosquitto did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
            broker
        }

        fn url(&self) -> String {
            format!("mqtt://127.0.0.1:{}", self.port)
        }
    }

    impl Drop for Broker {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Messages under `edge-tl/#`, once the subscription is in place (this returns after the
    /// broker acknowledged it). The watcher itself accepts packets of up to 1 MiB.
    fn subscribe(port: u16) -> Receiver<(String, Vec<u8>)> {
        let mut options = MqttOptions::new("hardening-watcher", "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = Client::new(options, 100);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                let message = match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client.subscribe("edge-tl/#", QoS::AtLeastOnce).unwrap();
                        continue;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => (String::new(), Vec::new()),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        (p.topic.clone(), p.payload.to_vec())
                    }
                    Ok(_) => continue,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                };
                if tx.send(message).is_err() {
                    return;
                }
            }
        });
        let subscribed = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(
            subscribed.0, "",
            "the subscription's acknowledgement comes first"
        );
        rx
    }

    /// `--top 300` with the 1000 ImageNet classes makes a `prediction` of about 18 KB, over
    /// rumqttc's default 10 KiB limit: the connection broke 13 times in 6 s and nothing was
    /// delivered. Now it arrives whole, on the first connection.
    #[test]
    fn a_result_with_300_top_entries_reaches_the_broker() {
        let broker = Broker::start();
        let rx = subscribe(broker.port);
        let dir = tempfile::tempdir().unwrap();
        copy_pictures("catsdogs/test/cat", dir.path(), 2);
        copy_pictures("catsdogs/test/dog", dir.path(), 2);
        let mut run = Background::start(&[
            "run",
            "--source",
            &path_arg("dir:", dir.path()),
            "--loop",
            "--replay-fps",
            "5",
            "--top",
            "300",
            "--mqtt",
            &broker.url(),
            "--device-id",
            "toppi",
        ]);
        let deadline = Instant::now() + Duration::from_secs(90);
        let prediction = loop {
            if Instant::now() >= deadline {
                give_up(&mut run, "no prediction");
            }
            if let Ok((topic, payload)) = rx.recv_timeout(Duration::from_millis(200)) {
                if topic == "edge-tl/toppi/prediction" {
                    break payload;
                }
            }
        };
        assert!(prediction.len() > 10 * 1024, "{}", prediction.len());
        let v: Value = serde_json::from_slice(&prediction).unwrap();
        assert_eq!(v["top"].as_array().unwrap().len(), 300, "{v}");
        assert_eq!(v["top"][0]["label"], v["label"]);
        let (status, err) = run.terminate();
        assert!(status.success(), "{status:?}: {err}");
        assert_eq!(err.matches("MQTT: connected to").count(), 1, "{err}");
    }

    /// A 3,000-character device id made packets too large to send (70,000 characters, topics
    /// too long for MQTT): refused at start, naming the flag or the key.
    #[test]
    fn a_device_id_of_3000_characters_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        copy_pictures("catsdogs/test/cat", dir.path(), 1);
        let id = "a".repeat(3000);
        let too_long = "MQTT device id of 3000 characters is too long: use at most 64";
        let out = edge_tl(&[
            "run",
            "--source",
            &path_arg("dir:", dir.path()),
            "--mqtt",
            "mqtt://127.0.0.1:1",
            "--device-id",
            &id,
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--device-id"), "{err}");
        assert!(err.contains(too_long), "{err}");

        let config = dir.path().join("config.toml");
        std::fs::write(&config, format!("[mqtt]\ndevice_id = \"{id}\"\n")).unwrap();
        let out = edge_tl(&["config", "check", config.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("key `mqtt.device_id`"), "{err}");
        assert!(err.contains(too_long), "{err}");
    }
}
