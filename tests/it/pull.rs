//! `models pull` against a loopback HTTP server serving the real model file: a good download,
//! a wrong file, a 404 and a connection dropped mid-transfer; nothing half-installed remains.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use crate::common::{edge_tl, shared, stderr, stdout};

/// Serves: /good (the real file), /other (another model), /drop (half, then hang up), else 404.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let good = std::fs::read(shared().join("models/mobilenet_v2_1.0_224_quant_qdq.onnx")).unwrap();
    let other =
        std::fs::read(shared().join("models/mobilenet_v1_0.75_192_quant_qdq.onnx")).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut line).unwrap();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, body, send): (&str, &[u8], usize) = match path.as_str() {
                "/good" => ("200 OK", &good, good.len()),
                "/other" => ("200 OK", &other, other.len()),
                "/drop" => ("200 OK", &good, good.len() / 2),
                _ => ("404 Not Found", b"no such file", 12),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body[..send]);
            let _ = stream.flush();
        }
    });
    format!("http://{addr}")
}

fn files_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn pull_over_http_checks_everything_and_installs_atomically() {
    let base = serve();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("models");
    let pull = |from: &str| {
        edge_tl(&[
            "models",
            "pull",
            "mobilenet-v2-int8",
            "--from",
            from,
            "--dir",
            dest.to_str().unwrap(),
        ])
    };

    let out = pull(&format!("{base}/missing"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the server answered HTTP 404"),
        "{}",
        stderr(&out)
    );
    assert_eq!(files_in(&dest), Vec::<String>::new());

    let out = pull(&format!("{base}/other"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not match the manifest of mobilenet-v2-int8"),
        "{}",
        stderr(&out)
    );
    assert_eq!(files_in(&dest), Vec::<String>::new());

    let out = pull(&format!("{base}/drop"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the connection ended after"),
        "{}",
        stderr(&out)
    );
    assert_eq!(files_in(&dest), Vec::<String>::new());

    let out = pull(&format!("{base}/good"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("installed mobilenet-v2-int8"));
    assert_eq!(
        files_in(&dest),
        vec!["mobilenet_v2_1.0_224_quant_qdq.onnx".to_string()]
    );

    // The installed file is found and used through $EDGE_TL_MODELS.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge-tl"))
        .args(["models", "list", "--json"])
        .env("EDGE_TL_MODELS", &dest)
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v2 = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "mobilenet-v2-int8")
        .unwrap();
    assert_eq!(
        v2["installed"],
        dest.join("mobilenet_v2_1.0_224_quant_qdq.onnx")
            .to_str()
            .unwrap()
    );
}

#[test]
fn pull_from_a_local_file_and_refuse_a_damaged_install() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("models");
    let src = shared().join("models/mobilenet_v1_0.75_192_quant_qdq.onnx");
    let out = edge_tl(&[
        "models",
        "pull",
        "mobilenet-v1-int8",
        "--from",
        src.to_str().unwrap(),
        "--dir",
        dest.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Damage the installed file: every command refuses it, naming file and fix.
    let installed = dest.join("mobilenet_v1_0.75_192_quant_qdq.onnx");
    let mut bytes = std::fs::read(&installed).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&installed, bytes).unwrap();
    let photo = shared().join("models/testdata/cat.bmp");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge-tl"))
        .args([
            "classify",
            "--model",
            "mobilenet-v1-int8",
            photo.to_str().unwrap(),
        ])
        .env("EDGE_TL_MODELS", &dest)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("does not match the manifest of mobilenet-v1-int8")
            && err.contains("pull it again"),
        "{err}"
    );
}
