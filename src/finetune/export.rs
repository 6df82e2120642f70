//! A fine-tuned network as files the device runs like the shipped models: the original ONNX
//! graph with the trained tensors written back into its initializers, its ImageNet classifier
//! replaced by the new one (`Gemm` on the embedding -> `logits`), the labels in the file's
//! metadata and beside it, and a manifest beside it (`<name>.toml`, the sidecar edge-tl reads
//! for `--model <name>.onnx`). Every file is written to a temporary name, then renamed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, ModelProto,
    NodeProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use tract_onnx::prelude::Framework;

use super::Finetuned;
use crate::grad::net::{computing, initializer_values, needed_nodes};
use crate::grad::GradError;
use crate::model::manifest::LogitsSpec;
use crate::model::ResolvedModel;

/// The files written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    pub onnx: PathBuf,
    pub manifest: PathBuf,
    pub labels: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// Why the export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Grad(#[from] GradError),
    #[error("{path}: {what}")]
    Model { path: PathBuf, what: String },
    #[error("{path}: the output must be a file name ending in .onnx")]
    BadName { path: PathBuf },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const ONNX_FLOAT: i32 = 1;
const HEAD_WEIGHT: &str = "edge_tl/finetuned_head/weight";
const HEAD_BIAS: &str = "edge_tl/finetuned_head/bias";
const LOGITS: &str = "logits";

/// Writes `out` (.onnx), `<stem>.labels.txt` and `<stem>.toml` beside it; with `int8`, every
/// convolution's and the classifier's weights are stored as int8 ([`quantize_weights`]).
pub fn export(
    ft: &Finetuned,
    base: &ResolvedModel,
    out: &Path,
    int8: bool,
) -> Result<Exported, ExportError> {
    let stem = model_name(out)?;
    let model_err = |what: String| ExportError::Model {
        path: base.path.clone(),
        what,
    };
    let mut proto = tract_onnx::onnx()
        .proto_model_for_path(&base.path)
        .map_err(|e| model_err(format!("{e:#}")))?;
    let embedding = base.manifest.embedding.output.clone();
    rewrite(&mut proto, ft, &embedding).map_err(model_err)?;
    if int8 {
        quantize_weights(&mut proto).map_err(model_err)?;
    }
    let bytes = proto.encode_to_vec();

    let write = |path: &Path, data: &[u8]| {
        crate::atomic_file::write(path, data).map_err(|source| ExportError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    let labels_name = format!("{stem}.labels.txt");
    let labels_path = out.with_file_name(&labels_name);
    write(
        &labels_path,
        format!("{}\n", ft.labels.join("\n")).as_bytes(),
    )?;
    write(out, &bytes)?;
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let mut manifest = base.manifest.clone();
    manifest.name = stem.clone();
    manifest.description = format!(
        "{} fine-tuned ({} trained: {}) for {} labels",
        base.manifest.name,
        ft.cut.blocks.len(),
        ft.cut.blocks.join(", "),
        ft.labels.len()
    );
    manifest.file = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    manifest.sha256 = sha256.clone();
    manifest.bytes = Some(bytes.len() as u64);
    manifest.urls = Vec::new();
    manifest.upstream = None;
    manifest.logits = Some(LogitsSpec {
        output: LOGITS.to_string(),
        labels: labels_name,
    });
    let manifest_path = out.with_extension("toml");
    let text = format!(
        "# Written by `edge-tl finetune`; edge-tl reads it for `--model {}`.\n{}",
        out.display(),
        toml::to_string(&manifest).map_err(|e| model_err(e.to_string()))?
    );
    write(&manifest_path, text.as_bytes())?;
    Ok(Exported {
        onnx: out.to_path_buf(),
        manifest: manifest_path,
        labels: labels_path,
        bytes: bytes.len() as u64,
        sha256,
    })
}

/// The model name an output path gives (its stem), refused unless it ends in `.onnx`; checked
/// before training too, so a wrong name does not cost a whole run.
pub fn model_name(out: &Path) -> Result<String, ExportError> {
    out.file_stem()
        .and_then(|s| s.to_str())
        .filter(|_| out.extension().is_some_and(|e| e == "onnx"))
        .map(str::to_string)
        .ok_or_else(|| ExportError::BadName {
            path: out.to_path_buf(),
        })
}

/// Trained weights in, ImageNet classifier out, new classifier in.
fn rewrite(proto: &mut ModelProto, ft: &Finetuned, embedding: &str) -> Result<(), String> {
    let graph = proto.graph.as_mut().ok_or("no graph")?;
    let trained: HashSet<&str> = ft.cut.weights.iter().map(String::as_str).collect();
    for init in graph.initializer.iter_mut() {
        if trained.contains(init.name.as_str()) {
            let values = ft
                .net
                .weight_values(&init.name)
                .map_err(|e| e.to_string())?;
            let expected: i64 = init.dims.iter().product();
            if expected != values.len() as i64 {
                return Err(format!(
                    "{}: {} values for {:?}",
                    init.name,
                    values.len(),
                    init.dims
                ));
            }
            set_floats(init, &values);
        }
    }
    // Keep only what the embedding needs: the ImageNet classifier and its outputs go.
    let io: Vec<(&[String], &[String])> = graph
        .node
        .iter()
        .map(|n| (n.input.as_slice(), n.output.as_slice()))
        .collect();
    let keep: HashSet<usize> = needed_nodes(&io, &[embedding], |_| false)
        .0
        .into_iter()
        .collect();
    let nodes = std::mem::take(&mut graph.node);
    graph.node = nodes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, n)| n)
        .collect();

    let (k, d) = ft
        .head_weight
        .dims2()
        .map_err(|e| format!("classifier shape: {e}"))?;
    let to_vec = |t: &candle_core::Tensor, what: &str| -> Result<Vec<f32>, String> {
        t.flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(computing(what))
            .map_err(|e| e.to_string())
    };
    let mut w = TensorProto {
        name: HEAD_WEIGHT.into(),
        dims: vec![k as i64, d as i64],
        ..Default::default()
    };
    set_floats(&mut w, &to_vec(&ft.head_weight, "classifier weights")?);
    let mut b = TensorProto {
        name: HEAD_BIAS.into(),
        dims: vec![k as i64],
        ..Default::default()
    };
    set_floats(&mut b, &to_vec(&ft.head_bias, "classifier bias")?);
    graph.initializer.push(w);
    graph.initializer.push(b);
    graph.node.push(NodeProto {
        name: "edge_tl/finetuned_head".into(),
        op_type: "Gemm".into(),
        input: vec![embedding.into(), HEAD_WEIGHT.into(), HEAD_BIAS.into()],
        output: vec![LOGITS.into()],
        attribute: vec![int_attribute("transB", 1)],
        ..Default::default()
    });
    let used: HashSet<String> = graph.node.iter().flat_map(|n| n.input.clone()).collect();
    graph.initializer.retain(|t| used.contains(&t.name));
    let produced: HashSet<String> = graph.node.iter().flat_map(|n| n.output.clone()).collect();
    graph.value_info.retain(|v| produced.contains(&v.name));
    let embedding_info = graph
        .output
        .iter()
        .find(|o| o.name == embedding)
        .cloned()
        .ok_or_else(|| format!("no output {embedding:?}"))?;
    graph.output = vec![embedding_info, float_output(LOGITS, &[1, k as i64])];
    proto
        .metadata_props
        .retain(|p| !p.key.starts_with("edge_tl."));
    proto.metadata_props.push(StringStringEntryProto {
        key: "edge_tl.labels".into(),
        value: serde_json::to_string(&ft.labels).unwrap_or_default(),
    });
    proto.metadata_props.push(StringStringEntryProto {
        key: "edge_tl.trained_blocks".into(),
        value: ft.cut.blocks.join(","),
    });
    Ok(())
}

const ONNX_INT8: i32 = 3;

/// Stores every `Conv` and `Gemm` weight as int8, one symmetric scale per output channel (the
/// first axis), restored by a `DequantizeLinear` node: the file shrinks to about a quarter
/// while tract still runs float convolutions (it folds the dequantization of constants when
/// it loads the file), so only the rounding costs accuracy. The Coral weights are int8 values
/// already; the trained blocks are rounded to a fresh grid.
fn quantize_weights(proto: &mut ModelProto) -> Result<(), String> {
    let graph = proto.graph.as_mut().ok_or("no graph")?;
    let weights: HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Conv" || n.op_type == "Gemm")
        .filter_map(|n| n.input.get(1).cloned())
        .collect();
    let mut added = Vec::new();
    let mut dequantize = Vec::new();
    for init in graph.initializer.iter_mut() {
        if !weights.contains(&init.name) || init.data_type != ONNX_FLOAT || init.dims.is_empty() {
            continue;
        }
        let values = initializer_values(init, None)?
            .map(|(_, v)| v)
            .ok_or_else(|| format!("{}: not float values", init.name))?;
        let rows = init.dims[0].max(1) as usize;
        let per_row = values.len() / rows;
        let mut scales = Vec::with_capacity(rows);
        let mut q = Vec::with_capacity(values.len());
        for row in values.chunks(per_row.max(1)) {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            scales.push(scale);
            q.extend(
                row.iter()
                    .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
            );
        }
        let name = init.name.clone();
        let (q_name, s_name, z_name) = (
            format!("{name}/int8"),
            format!("{name}/scale"),
            format!("{name}/zero_point"),
        );
        let mut s = TensorProto {
            name: s_name.clone(),
            dims: vec![rows as i64],
            ..Default::default()
        };
        set_floats(&mut s, &scales);
        let z = TensorProto {
            name: z_name.clone(),
            dims: vec![rows as i64],
            data_type: ONNX_INT8,
            raw_data: vec![0; rows],
            ..Default::default()
        };
        init.name = q_name.clone();
        init.data_type = ONNX_INT8;
        init.float_data.clear();
        init.raw_data = q.iter().map(|v| *v as u8).collect();
        added.push(s);
        added.push(z);
        dequantize.push(NodeProto {
            name: format!("{name}/dequantize"),
            op_type: "DequantizeLinear".into(),
            input: vec![q_name, s_name, z_name],
            output: vec![name],
            attribute: vec![int_attribute("axis", 0)],
            ..Default::default()
        });
    }
    graph.initializer.extend(added);
    // Constants first: the graph stays in topological order.
    dequantize.append(&mut graph.node);
    graph.node = dequantize;
    Ok(())
}

fn int_attribute(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn set_floats(t: &mut TensorProto, values: &[f32]) {
    t.data_type = ONNX_FLOAT;
    t.float_data.clear();
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
}

fn float_output(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: ONNX_FLOAT,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&v| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(v)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
