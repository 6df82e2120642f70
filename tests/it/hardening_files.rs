//! The files edge-tl reads and writes, hardened end to end through the binary: a poisoned
//! embedding cache entry is recomputed with one warning, a head with an infinite weight is
//! refused by `predict` and by the hot swap of a running loop, written files follow the umask
//! (or keep the mode of the file they replace), killed runs' temporary files are removed by the
//! next write into their folder, and `models pull` stops an endless server at the manifest's
//! size.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::common::{cache_dir, data, edge_tl, shared, small_catsdogs, stderr, train_cli};

/// A pid no process has: above every kernel's pid_max.
const DEAD_PID: u32 = 0x7fff_ffff;

/// The umask the binary inherits from this test process, read without changing it.
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("a Umask line in /proc/self/status");
    u32::from_str_radix(field.trim(), 8).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `dir/name`, last modified two hours ago.
fn old_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(2 * 60 * 60))
        .unwrap();
    path
}

/// An old leftover of a dead process and an old temporary file of a live one (this test
/// process): only the first may be removed.
fn plant_leftovers(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let dead = old_file(dir, &format!(".edge-tl-{DEAD_PID}-a1B2c3.part"));
    let live = old_file(dir, &format!(".edge-tl-{}-x9Y8z7.part", std::process::id()));
    (dead, live)
}

/// `edge-tl train`, as `common::train_cli` runs it, with warnings on stderr whatever
/// `RUST_LOG` the tests run with.
fn train_logged(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    std::process::Command::new(env!("CARGO_BIN_EXE_edge-tl"))
        .args(&args)
        .env("EDGE_TL_MODELS", shared().join("models"))
        .env("EDGE_TL_SHARED", shared())
        .env_remove("EDGE_TL_MODEL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("edge-tl runs")
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_poisoned_cache_entry_is_recomputed_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("data");
    small_catsdogs(&set, 4);
    let cache = dir.path().join("cache");
    let head = dir.path().join("cd.head");
    let args = [
        "--cache-dir",
        cache.to_str().unwrap(),
        "--folds",
        "0",
        "--json",
    ];
    let first = json(&train_logged(&set, &head, &args));
    assert_eq!(first["computed"], 8);

    // A NaN over the first float of one entry, as a bad write or a bad card would leave it.
    let file = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "emb"))
        .expect("a cache file");
    let mut bytes = std::fs::read(&file).unwrap();
    assert_eq!(&bytes[..8], b"ETLEMB2\n");
    let first_float = 16 + 33;
    bytes[first_float..first_float + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&file, &bytes).unwrap();

    let out = train_logged(&set, &head, &args);
    let err = stderr(&out);
    let second = json(&out);
    assert_eq!(second["computed"], 1, "the damaged entry is embedded again");
    assert_eq!(second["cached"], 7, "the other entries are used");
    let warning = format!(
        "{}: 1 of 8 embedding cache entries are damaged",
        file.display()
    );
    assert_eq!(err.matches(&warning).count(), 1, "{err}");

    // The head is usable, and the cache was rewritten whole.
    let photo = data("catsdogs/test/cat/cat.101.jpg");
    let out = edge_tl(&["predict", head.to_str().unwrap(), photo.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = train_logged(&set, &head, &args);
    assert!(!stderr(&out).contains("damaged"), "{}", stderr(&out));
    assert_eq!(json(&out)["computed"], 0);
}

#[test]
fn a_head_with_an_infinite_weight_is_refused_by_predict_and_the_hot_swap() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("data");
    small_catsdogs(&set, 3);
    let head = dir.path().join("cd.head");
    let cache = cache_dir();
    let out = train_cli(
        &set,
        &head,
        &["--cache-dir", cache.to_str().unwrap(), "--folds", "0"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut watcher = edge_tl::live::HeadWatcher::new(&head, Duration::ZERO);

    // 1e39 is a valid JSON number and an f32 infinity. Replaced by a rename, as train does.
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    v["head"]["classifier"]["model"]["weights"][1][7] = serde_json::json!(1e39);
    let tmp = dir.path().join("edited.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&v).unwrap()).unwrap();
    std::fs::rename(&tmp, &head).unwrap();
    let problem = format!(
        "{}: the head is inconsistent: weights[1][7] is inf",
        head.display()
    );

    let photo = data("catsdogs/test/cat/cat.101.jpg");
    let out = edge_tl(&["predict", head.to_str().unwrap(), photo.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&problem), "{}", stderr(&out));

    let polled = watcher.poll().expect("the replaced file is noticed");
    assert_eq!(polled.unwrap_err().to_string(), problem);
}

#[test]
fn train_keeps_a_replaced_heads_mode_follows_the_umask_and_cleans_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("data");
    small_catsdogs(&set, 3);
    let cache = cache_dir();
    let args = ["--cache-dir", cache.to_str().unwrap(), "--folds", "0"];

    let service = dir.path().join("service");
    let (dead, live) = plant_leftovers(&service);
    let replaced = service.join("cd.head");
    std::fs::write(&replaced, b"an older head").unwrap();
    std::fs::set_permissions(&replaced, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = train_cli(&set, &replaced, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&replaced), 0o640, "the replaced head keeps its mode");
    assert!(!dead.exists(), "the dead process's leftover is removed");
    assert!(live.exists(), "a live process's temporary file is kept");

    let new = dir.path().join("new.head");
    let out = train_cli(&set, &new, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&new), 0o666 & !umask());
}

#[test]
fn capture_follows_the_umask_and_cleans_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let (dead, live) = plant_leftovers(&dir.path().join("cat"));
    let source = format!("dir:{}", data("catsdogs/test/cat").display());
    let out = edge_tl(&[
        "capture",
        "--label",
        "cat",
        "--source",
        &source,
        "--count",
        "1",
        "--interval",
        "0s",
        "--data",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pictures: Vec<PathBuf> = std::fs::read_dir(dir.path().join("cat"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    assert_eq!(pictures.len(), 1);
    assert_eq!(mode(&pictures[0]), 0o666 & !umask());
    assert!(!dead.exists(), "the dead process's leftover is removed");
    assert!(live.exists(), "a live process's temporary file is kept");
}

#[test]
fn pull_stops_an_endless_server_at_the_manifest_size() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while request.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
            line.clear();
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let chunk = [0u8; 1 << 16];
        while stream.write_all(&chunk).is_ok() {}
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("models");
    let (dead, live) = plant_leftovers(&dest);
    let url = format!("http://{addr}/endless");
    let out = edge_tl(&[
        "models",
        "pull",
        "mobilenet-v2-int8",
        "--from",
        &url,
        "--dir",
        dest.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "{url}: more than the manifest's 3753167 bytes arrived (stopped after 3753168)"
        )),
        "{}",
        stderr(&out)
    );
    assert!(!dead.exists(), "the dead process's leftover is removed");
    let left: Vec<PathBuf> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, vec![live], "nothing of the refused download is left");
}
