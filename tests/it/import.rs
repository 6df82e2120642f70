//! `edge-tl models import`: every shared ONNX file, with its manifest left out, gets a manifest
//! that gives the same embeddings as the shipped one; a small generated graph shows each
//! unclear case ending in its own message and flag.

use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb::{
    tensor_shape_proto, type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use edge_tl::model::manifest::Manifest;
use edge_tl::model::{Extractor, Outputs};
use edge_tl::preprocess;

use crate::common::{edge_tl, resolve, shared, stderr, stdout};

/// Copies a shared model file alone into `dir` (so no manifest is beside it) and imports it.
fn import(file: &str, dir: &Path, extra: &[&str]) -> (PathBuf, std::process::Output) {
    let copy = dir.join(file);
    std::fs::copy(shared().join("models").join(file), &copy).unwrap();
    let mut args = vec!["models", "import", copy.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = edge_tl(&args);
    (copy, out)
}

fn embedding(model: &edge_tl::model::ResolvedModel, photo: &Path) -> Vec<f32> {
    let ex = Extractor::load(model, Outputs::Embedding).unwrap();
    let frame = preprocess::decode_file(photo).unwrap();
    ex.run(&preprocess::to_input(&frame, &model.manifest))
        .unwrap()
        .embedding
}

#[test]
fn every_shared_model_imports_to_the_shipped_embeddings() {
    let photo = shared().join("models/testdata/cat.bmp");
    let dir = tempfile::tempdir().unwrap();
    for shipped in Manifest::builtin() {
        let (copy, out) = import(
            &shipped.file,
            dir.path(),
            &["--photo", photo.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}: {}", shipped.name, stderr(&out));
        let text = std::fs::read_to_string(copy.with_extension("toml")).unwrap();
        let made = Manifest::parse(&text, "imported").unwrap();
        assert_eq!(made.input, shipped.input, "{}", shipped.name);
        assert_eq!(made.preprocess, shipped.preprocess, "{}", shipped.name);
        assert_eq!(made.embedding, shipped.embedding, "{}", shipped.name);
        assert_eq!(made.sha256, shipped.sha256);
        // Both manifests know the classifier and its labels.
        assert_eq!(
            made.logits.as_ref().map(|l| (&l.output, &l.labels)),
            shipped.logits.as_ref().map(|l| (&l.output, &l.labels)),
            "{}: {}",
            shipped.name,
            stdout(&out)
        );
        let ours = resolve(copy.to_str().unwrap());
        assert_eq!(
            ours.manifest.name,
            copy.file_stem().unwrap().to_str().unwrap()
        );
        let theirs = resolve(&shipped.name);
        assert_eq!(
            embedding(&ours, &photo),
            embedding(&theirs, &photo),
            "{}",
            shipped.name
        );
        // A second import does not overwrite the manifest unless told to.
        let again = edge_tl(&["models", "import", copy.to_str().unwrap()]);
        assert!(!again.status.success());
        assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
        std::fs::remove_file(&copy).unwrap();
    }
}

fn dims(values: &[Option<i64>]) -> Option<TensorShapeProto> {
    Some(TensorShapeProto {
        dim: values
            .iter()
            .map(|v| tensor_shape_proto::Dimension {
                value: Some(match v {
                    Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                    None => tensor_shape_proto::dimension::Value::DimParam("h".into()),
                }),
                ..Default::default()
            })
            .collect(),
    })
}

fn value(name: &str, shape: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: 1,
                shape: dims(shape),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn weights(name: &str, dims: &[i64], seed: f32) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect(),
        ..Default::default()
    }
}

/// A float NCHW picture through two 1x1 convolutions, each globally pooled into its own output:
/// two equally good candidates for the embedding. `open_size` leaves height and width open.
fn two_headed(path: &Path, open_size: bool) {
    let side = (!open_size).then_some(16);
    let graph = GraphProto {
        name: "two_headed".into(),
        node: vec![
            node("Conv", &["picture", "wa"], "fa"),
            node("Conv", &["picture", "wb"], "fb"),
            node("GlobalAveragePool", &["fa"], "pool_a"),
            node("GlobalAveragePool", &["fb"], "pool_b"),
        ],
        initializer: vec![
            weights("wa", &[8, 3, 1, 1], 0.0),
            weights("wb", &[4, 3, 1, 1], 1.0),
        ],
        input: vec![value("picture", &[Some(1), Some(3), side, side])],
        output: vec![
            value("pool_a", &[Some(1), Some(8), Some(1), Some(1)]),
            value("pool_b", &[Some(1), Some(4), Some(1), Some(1)]),
        ],
        ..Default::default()
    };
    write_model(path, graph);
}

/// Writes `graph` as an opset-13 ONNX file.
fn write_model(path: &Path, graph: GraphProto) {
    let model = ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    };
    std::fs::write(path, model.encode_to_vec()).unwrap();
}

#[test]
fn unclear_graphs_end_in_a_message_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two.onnx");
    let run = |extra: &[&str]| {
        let mut args = vec!["models", "import", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        edge_tl(&args)
    };
    let refused = |extra: &[&str], wanted: &[&str]| {
        let out = run(extra);
        assert!(!out.status.success(), "{extra:?} was accepted");
        let err = stderr(&out);
        for w in wanted {
            assert!(err.contains(w), "{extra:?}: {w:?} not in {err}");
        }
        assert!(
            !file.with_extension("toml").exists(),
            "{extra:?} wrote a manifest"
        );
    };
    two_headed(&file, true);
    refused(&[], &["input picture [1,3,?,?]", "--size"]);
    two_headed(&file, false);
    refused(&[], &["takes float pixels", "--normalize", "imagenet"]);
    refused(
        &["--normalize", "unit"],
        &[
            "several tensors could be the features",
            "pool_a (8 values)",
            "pool_b (4 values)",
            "--embedding NAME",
        ],
    );
    refused(
        &["--normalize", "unit", "--embedding", "pool_c"],
        &["no tensor named \"pool_c\"", "--embedding"],
    );
    refused(&["--normalize", "sideways"], &["one of raw (0..255)"]);
    let out = run(&[
        "--normalize",
        "unit",
        "--embedding",
        "pool_b",
        "--name",
        "tiny",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let made = Manifest::parse(
        &std::fs::read_to_string(file.with_extension("toml")).unwrap(),
        "made",
    )
    .unwrap();
    assert_eq!(made.name, "tiny");
    assert_eq!(made.embedding.output, "pool_b");
    assert_eq!(made.embedding.dim, 4);
    assert_eq!(made.input.shape, [1, 3, 16, 16]);
    assert!(made.logits.is_none());
    // The manifest works for training-side commands: features come out of the chosen output.
    let photo = shared().join("models/testdata/cat.bmp");
    assert_eq!(embedding(&resolve(file.to_str().unwrap()), &photo).len(), 4);

    // An input that cannot take a picture.
    let flat = dir.path().join("flat.onnx");
    write_model(
        &flat,
        GraphProto {
            node: vec![node("Relu", &["x"], "y")],
            input: vec![value("x", &[Some(1), Some(10)])],
            output: vec![value("y", &[Some(1), Some(10)])],
            ..Default::default()
        },
    );
    let out = edge_tl(&["models", "import", flat.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("no input takes one RGB picture"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("x [1,10] float32"),
        "{}",
        stderr(&out)
    );
}
