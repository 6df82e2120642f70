//! Hardening of `run --http`, through the binary: sockets that send nothing or that one client
//! piles up, requests a web page on another site can make a browser send (cross-site changes,
//! DNS rebinding when there is no token), a token read from a file, and passwords in source
//! URLs kept out of every line edge-tl prints.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use edge_tl::source::jpeg_stream::{write_part, BOUNDARY};
use serde_json::Value;

use crate::common::{edge_tl, stderr, stdout};
use crate::harness::{fixture, free_port, http, path_arg, Background};

/// One HTTP/1.1 exchange of a complete request: status, head, body.
fn exchange(port: u16, request: &str) -> (u16, String, Vec<u8>) {
    http(port, request, b"")
}

/// `GET path` with `Host: 127.0.0.1:PORT` and the `extra` header lines.
fn get(port: u16, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    exchange(
        port,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\r\n"
        ),
    )
}

/// `POST path` with `Host: 127.0.0.1:PORT`, the `extra` header lines and `body`.
fn post(port: u16, path: &str, extra: &str, body: &str) -> (u16, String) {
    let (status, _, answer) = exchange(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    (status, error_of(&answer))
}

/// The `error` of a JSON answer ("" if there is none).
fn error_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn wait_until(run: &Background, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {what} within 90 s; stderr: {}", run.stderr());
}

/// `run --http 127.0.0.1:PORT` on the fixture's frames replayed at 10 frames/s, with `extra`
/// flags; returned once `/healthz` says ok.
fn service(extra: &[&str]) -> (Background, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let frames = path_arg("dir:", &fixture().frames);
    let mut args = vec![
        "run",
        "--http",
        &listen,
        "--source",
        &frames,
        "--loop",
        "--replay-fps",
        "10",
    ];
    args.extend_from_slice(extra);
    // Without a data folder of the test's own, the default `dataset` is in the working tree:
    // no review queue there.
    if !extra.contains(&"--data") {
        args.extend(["--review-keep", "0"]);
    }
    let run = Background::start(&args);
    wait_until(&run, "/healthz to say ok", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/healthz", "").0 == 200
    });
    (run, port)
}

/// Whether the server closes `s` (reading until it does; at most 30 s per read).
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn silent_sockets_are_closed_and_one_client_cannot_hold_every_connection() {
    let (run, port) = service(&[]);
    // A connection that sends nothing is closed once the time to send a request head is up.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(
        closed_by_server(&mut silent),
        "a silent connection stayed open"
    );
    // Past 32 connections from one address, the next is answered 503 with the reason...
    let held: Vec<TcpStream> = (0..32)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let (status, _, body) = get(port, "/healthz", "");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(
        error_of(&body).contains("32 connections from your address are open"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // ...while another client is still served (curl sends from a second loopback address,
    // which std's TcpStream cannot choose)...
    let other = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--interface",
            "127.0.0.2",
        ])
        .arg(format!("http://127.0.0.1:{port}/healthz"))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&other.stdout), "200", "{other:?}");
    // ...and inference goes on: once they close, the service answers, and it is healthy.
    drop(held);
    wait_until(&run, "/healthz to answer again", || {
        get(port, "/healthz", "").0 == 200
    });
    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
}

#[test]
fn without_a_token_other_sites_and_other_host_names_are_refused() {
    // No head: `POST /api/train` answers 409 (nothing to write) without training, which shows
    // a request got through.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dataset");
    let (run, port) = service(&["--data", data.to_str().unwrap()]);
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";

    // curl -XPOST .../api/train -H 'Origin: http://evil.example' -d x=1
    let (status, why) = post(
        port,
        "/api/train",
        &format!("Origin: http://evil.example\r\n{form}"),
        "x=1",
    );
    assert_eq!(status, 403, "{why}");
    assert!(
        why.contains("\"http://evil.example\", another site"),
        "{why}"
    );
    let (status, why) = post(
        port,
        "/api/capture",
        "Sec-Fetch-Site: cross-site\r\nContent-Type: application/json\r\n",
        r#"{"label": "cat"}"#,
    );
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("Sec-Fetch-Site: cross-site"), "{why}");
    // A form body without an Origin (older browsers) is refused for its type.
    let (status, why) = post(port, "/api/train", form, "x=1");
    assert_eq!(status, 415, "{why}");
    assert!(why.contains("application/x-www-form-urlencoded"), "{why}");
    // Only the review queue's hidden folder: no label folder, nothing was captured.
    let labels: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(labels.is_empty(), "nothing was captured: {labels:?}");
    // A body that never comes does not hold the request: 408 once its time is up.
    let (status, _, body) = exchange(
        port,
        &format!(
            "POST /api/capture HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"la"
        ),
    );
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
    assert!(
        error_of(&body).contains("the request body did not arrive within 10 s"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // The same requests from the service's own page get through: JSON, or no body at all (as
    // the page's Train button sends it).
    let own = format!("Origin: http://127.0.0.1:{port}\r\nSec-Fetch-Site: same-origin\r\n");
    let (status, why) = post(
        port,
        "/api/train",
        &format!("{own}Content-Type: application/json\r\n"),
        "{}",
    );
    assert_eq!(status, 409, "{why}");
    assert!(why.contains("--head FILE"), "{why}");
    let (status, why) = post(port, "/api/train", &own, "");
    assert_eq!(status, 409, "{why}");

    // DNS rebinding: a name that is not this service's is refused, even for reading.
    let (status, _, body) = exchange(
        port,
        "GET /snapshot.jpg HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 421, "{}", String::from_utf8_lossy(&body));
    let why = error_of(&body);
    assert!(
        why.contains("\"attacker.example\"") && why.contains("DNS rebinding"),
        "{why}"
    );
    let wrong_port = format!(
        "GET /snapshot.jpg HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        port.wrapping_add(1)
    );
    assert_eq!(exchange(port, &wrong_port).0, 421);
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let (status, head, jpeg) = exchange(
            port,
            &format!("GET /snapshot.jpg HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 200, "{host}: {head}");
        assert!(jpeg.starts_with(&[0xFF, 0xD8]), "{host}: not a JPEG");
    }
    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
}

#[test]
fn a_token_from_a_file_guards_the_service_and_other_sites_still_cannot_change_anything() {
    let dir = tempfile::tempdir().unwrap();
    // An unreadable token file stops `run` before anything starts, naming the flag and file.
    let missing = dir.path().join("missing-token");
    let out = edge_tl(&[
        "run",
        "--http",
        "127.0.0.1:0",
        "--http-token-file",
        missing.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "--http-token-file: cannot read the secret file {}",
            missing.display()
        )),
        "{err}"
    );

    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (run, port) = service(&["--http-token-file", token.to_str().unwrap()]);
    assert_eq!(get(port, "/metrics", "").0, 401);
    assert_eq!(
        get(port, "/metrics", "Authorization: Bearer s3cre\r\n").0,
        401
    );
    assert_eq!(
        get(port, "/metrics", "Authorization: Bearer s3cret\r\n").0,
        200
    );
    // With a token, a change from another site is refused even when it carries the token.
    let bearer = "Authorization: Bearer s3cret\r\n";
    let (status, why) = post(
        port,
        "/api/train",
        &format!("{bearer}Origin: http://evil.example\r\n"),
        "",
    );
    assert_eq!(status, 403, "{why}");
    let (status, why) = post(port, "/api/train", bearer, "");
    assert_eq!(status, 409, "{why}");
    let (status, err) = run.terminate();
    assert!(status.success(), "{status:?}: {err}");
}

#[test]
fn passwords_in_source_urls_are_in_no_line_edge_tl_prints() {
    // A stream server that sends three frames, then closes and stops listening: `run` prints
    // its start line, a disconnect warning and reconnection warnings, each naming the URL.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let jpegs = fixture().jpegs.clone();
    let server = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && socket.read(&mut byte).unwrap_or(0) == 1 {
            request.push(byte[0]);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n\r\n"
        );
        let _ = socket.write_all(head.as_bytes());
        for jpeg in jpegs.iter().take(3) {
            let mut part = Vec::new();
            write_part(&mut part, jpeg).unwrap();
            let _ = socket.write_all(&part);
            std::thread::sleep(Duration::from_millis(100));
        }
        String::from_utf8_lossy(&request).to_lowercase()
    });
    let url = format!("http://admin:hunter2@127.0.0.1:{port}/x");
    let shown = format!("http://admin:***@127.0.0.1:{port}/x");
    let run = Background::start(&["run", "--source", &url]);
    let first = run.wait_for("a result", |_| true);
    let request = server.join().unwrap();
    // The credentials still reach the server, as Basic authentication.
    assert!(
        request.contains("authorization: basic ywrtaw46ahvudgvymg=="),
        "{request}"
    );
    wait_until(&run, "a reconnection warning", || {
        run.stderr().contains("next try in")
    });
    let (_, err) = run.terminate();
    assert!(!err.contains("hunter2"), "{err}");
    for line in &first {
        assert!(!line.to_string().contains("hunter2"), "{line}");
    }
    assert!(
        err.contains(&format!("classifying stream {shown} into")),
        "{err}"
    );
    assert!(
        err.contains(&format!("stream {shown} disconnected")),
        "{err}"
    );

    // A server (HTTP) or camera (RTSP) that cannot be reached at start: the error names the
    // URL, not the password.
    for scheme in ["http", "rtsp"] {
        let url = format!("{scheme}://admin:hunter2@127.0.0.1:{}/x", free_port());
        let out = edge_tl(&["run", "--source", &url]);
        let (out_text, err) = (stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            !err.contains("hunter2") && !out_text.contains("hunter2"),
            "{err}"
        );
        assert!(
            err.contains(&format!("{scheme}://admin:***@127.0.0.1:")),
            "{err}"
        );
    }

    // A source edge-tl does not know, credentials and all: refused without repeating them.
    let out = edge_tl(&["run", "--source", "rtmp://admin:hunter2@127.0.0.1/x"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.contains("--source: unknown source \"rtmp://admin:***@127.0.0.1/x\""),
        "{err}"
    );
}
