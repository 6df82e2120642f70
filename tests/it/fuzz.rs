//! Property tests of every parser of outside bytes: the JPEG stream splitter (multipart MJPEG
//! and concatenated JPEGs alike, from files and HTTP), the strict picture decoder, head files,
//! settings files and model manifests. On any input none may panic, hang or grow without bound;
//! each either parses or returns its error. Inputs are random bytes and random mutations
//! (overwritten bytes, cuts, repeats) of real files, which reach far deeper into the formats
//! than noise does.
//!
//! CI runs `PROPTEST_CASES` cases per property (default below); a longer run by hand:
//! `PROPTEST_CASES=30000 cargo test --features grad --test it fuzz::` (docs/testing.md).

use std::io::Cursor;
use std::path::Path;

use proptest::prelude::*;

use edge_tl::source::jpeg_stream::{jpeg_end, with_huffman_tables, JpegFrames};

use crate::common::data;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 1000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // Failures are reported with their input; nothing is written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A mutation of `base`: some bytes overwritten, then possibly cut short or a slice repeated.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len().max(1);
    (
        prop::collection::vec((0..len, any::<u8>()), 0..16),
        prop::option::of(0..=len),
        prop::option::of((0..len, 0..len, 1usize..4)),
    )
        .prop_map(move |(writes, cut, repeat)| {
            let mut b = base.clone();
            for (i, v) in writes {
                if i < b.len() {
                    b[i] = v;
                }
            }
            if let Some((from, to, times)) = repeat {
                let (from, to) = (from.min(to), from.max(to).min(b.len()));
                let piece = b[from.min(to)..to].to_vec();
                for _ in 0..times {
                    b.splice(to..to, piece.iter().copied());
                }
            }
            if let Some(n) = cut {
                b.truncate(n);
            }
            b
        })
}

fn read(rel: &Path) -> Vec<u8> {
    std::fs::read(rel).unwrap_or_else(|e| panic!("{}: {e}", rel.display()))
}

/// A small real JPEG, and a stream of three of them in multipart form.
fn jpeg() -> Vec<u8> {
    read(&data("catsdogs/test/cat/cat.101.jpg"))
}

fn multipart() -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..3 {
        edge_tl::source::jpeg_stream::write_part(&mut out, &jpeg()).unwrap();
    }
    out
}

/// Splits a whole stream; returns the frames' total size. Every call either makes progress or
/// ends, so a stream of n bytes yields at most n frames.
fn split_all(bytes: &[u8]) -> usize {
    let mut frames = JpegFrames::new(Cursor::new(bytes.to_vec()));
    let mut total = 0;
    for _ in 0..=bytes.len() {
        match frames.next_frame() {
            Ok(Some(f)) => {
                assert!(f.len() <= bytes.len(), "a frame larger than its stream");
                total += f.len();
            }
            Ok(None) | Err(_) => return total,
        }
    }
    panic!("the splitter did not end on {} bytes", bytes.len());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_stream_splitter_ends_on_noise(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert!(split_all(&bytes) <= bytes.len());
        for start in [0, bytes.len() / 2, bytes.len()] {
            let _ = jpeg_end(&bytes, start);
        }
        let _ = with_huffman_tables(&bytes);
    }

    #[test]
    fn the_stream_splitter_ends_on_damaged_streams(bytes in mutated(multipart())) {
        prop_assert!(split_all(&bytes) <= bytes.len());
    }

    #[test]
    fn the_decoder_refuses_or_decodes_damaged_jpegs(bytes in mutated(jpeg())) {
        if let Ok(frame) = edge_tl::preprocess::decode_bytes(&with_huffman_tables(&bytes), Path::new("x.jpg")) {
            prop_assert!(frame.image.width() > 0 && frame.image.height() > 0);
        }
    }

    #[test]
    fn the_decoder_survives_noise(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = edge_tl::preprocess::decode_bytes(&bytes, Path::new("x.bin"));
    }

    #[test]
    fn settings_files_parse_or_name_the_problem(bytes in mutated(read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/config.toml")))) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = edge_tl::settings::file::parse(&text, Path::new("c.toml")) {
            prop_assert!(e.to_string().starts_with("c.toml: "), "{e}");
        }
    }

    #[test]
    fn manifests_parse_or_name_the_problem(bytes in mutated(read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mobilenet-v2-f32.toml")))) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = edge_tl::model::Manifest::parse(&text, "m.toml") {
            prop_assert!(e.to_string().contains("m.toml"), "{e}");
        }
    }

    #[test]
    fn head_files_load_or_name_the_problem(bytes in mutated(head_file())) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.head");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = edge_tl::head::file::load(&path) {
            prop_assert!(e.to_string().contains("h.head"), "{e}");
        }
    }
}

/// A real head file (a centroid head on two labels, from cached embeddings), as bytes.
fn head_file() -> Vec<u8> {
    use std::sync::OnceLock;
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| {
            let set = crate::common::embedded("catsdogs/train", false);
            let params = edge_tl::head::train::TrainParams {
                kind: edge_tl::head::train::HeadKind::Centroid,
                folds: 0,
                seed: 0,
                choose_alpha: false,
            };
            let head = edge_tl::head::train::train(
                &set,
                &data("catsdogs/train"),
                edge_tl::head::Backbone::of(crate::common::default_model()),
                &params,
            )
            .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("base.head");
            edge_tl::head::file::save(&head, &path).unwrap();
            std::fs::read(&path).unwrap()
        })
        .clone()
}

#[test]
fn the_base_inputs_are_what_the_properties_think() {
    assert_eq!(split_all(&multipart()), 3 * jpeg().len());
    assert!(edge_tl::preprocess::decode_bytes(&jpeg(), Path::new("x.jpg")).is_ok());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.head");
    std::fs::write(&p, head_file()).unwrap();
    assert!(edge_tl::head::file::load(&p).is_ok());
}
