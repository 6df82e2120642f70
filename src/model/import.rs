//! `models import`: reading an ONNX classifier someone brings and writing the manifest that
//! lets edge-tl learn from it.
//!
//! What a manifest needs and the file itself says: the image input (the one graph input of
//! rank 4 with three channels first or last, its element type and size), the embedding (the
//! pooled features right before the classifier) and the classifier's output. What the file
//! cannot say (the value range a float input expects, and a size left open) must come from
//! a flag, and every case that is not clear ends in an [`ImportError`] that lists what was
//! found and names the flag that settles it: a guessed normalisation would give a working
//! but quietly worse backbone.
//!
//! The embedding is found by its shape, not its name: the output of a pooling node
//! (`GlobalAveragePool`, `GlobalMaxPool`, or `AveragePool`/`MaxPool`/`ReduceMean`/`ReduceMax`
//! that leave one position) after which nothing has two spatial dimensions again. That rules
//! out squeeze-and-excitation pools, whose result multiplies a feature map. Flatten, Reshape,
//! Squeeze and Identity after it change no value; of that chain the graph output is taken
//! when there is one (what the shipped files name `embedding`).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use tract_onnx::pb::{self, type_proto};
use tract_onnx::prelude::*;

use crate::error::ImportError;
use crate::model::manifest::{
    DType, InputSpec, Layout, LogitsSpec, Manifest, Normalize, OutputSpec, PreprocessSpec,
    ResizeFilter, ResizeMode, BUILTIN_LABELS,
};

/// What the user settles by flag; everything else is read from the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOptions {
    /// `--name`; default: the file name without `.onnx`.
    pub name: Option<String>,
    /// `--input`: the image input, when the graph has several candidates.
    pub input: Option<String>,
    /// `--size`: height and width, when the file leaves them open.
    pub size: Option<(usize, usize)>,
    /// `--normalize`: required for a float input.
    pub normalize: Option<Normalize>,
    /// `--resize`; default: stretch.
    pub resize: Option<ResizeMode>,
    /// `--embedding`: the features' tensor, when none or several are found.
    pub embedding: Option<String>,
    /// `--logits`: the classifier's output tensor (`Some("none")` keeps none).
    pub logits: Option<String>,
    /// `--labels`: a labels file name beside the model, or a built-in one.
    pub labels: Option<String>,
}

/// The values `--normalize` takes, each a [`Normalize`].
pub const NORMALIZE_NAMES: &str = "raw (0..255), unit (0..1), tf ((x/255-0.5)/0.5, -1..1), \
                                   imagenet (torchvision mean/std)";

/// Parses a `--normalize` value.
pub fn normalize_by_name(name: &str) -> Option<Normalize> {
    Some(match name {
        "raw" => Normalize::Raw,
        "unit" => Normalize::MeanStd {
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        "tf" => Normalize::MeanStd {
            mean: [0.5; 3],
            std: [0.5; 3],
        },
        "imagenet" => Normalize::MeanStd {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        },
        _ => return None,
    })
}

/// What `import` read from the file, besides the manifest: for the command's report.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub manifest: Manifest,
    /// Where the labels came from, when they were assumed from the classifier's width.
    pub assumed_labels: Option<String>,
    /// Outputs that looked like a classifier but were not taken, and why.
    pub notes: Vec<String>,
}

/// Reads `path` and describes it as a manifest (not written; not yet run).
pub fn inspect(path: &Path, sha256: &str, opts: &ImportOptions) -> Result<Import, ImportError> {
    let file = path.display().to_string();
    let onnx = tract_onnx::onnx();
    let proto = onnx
        .proto_model_for_path(path)
        .map_err(|source| ImportError::NotOnnx {
            path: file.clone(),
            source,
        })?;
    let graph = proto.graph.as_ref().ok_or_else(|| ImportError::NotOnnx {
        path: file.clone(),
        source: anyhow::anyhow!("the file holds no graph"),
    })?;
    let input = image_input(&file, graph, opts)?;
    let normalize = match (input.dtype, &opts.normalize) {
        (DType::U8, None | Some(Normalize::Raw)) => Normalize::Raw,
        (DType::U8, Some(_)) => {
            return Err(ImportError::NormalizeU8 {
                path: file.clone(),
                input: input.name.clone(),
            })
        }
        (DType::F32, Some(n)) => n.clone(),
        (DType::F32, None) => {
            return Err(ImportError::NeedsNormalize {
                path: file.clone(),
                input: input.name.clone(),
                choices: NORMALIZE_NAMES,
            })
        }
    };
    let shapes = shapes(&onnx, &proto, path, &input)?;
    let flow = Flow::new(graph);
    let embedding = match &opts.embedding {
        Some(name) => {
            let shape = known_tensor(&file, &shapes, name, "--embedding")?;
            OutputSpec {
                output: name.clone(),
                dim: shape.iter().product(),
            }
        }
        None => find_embedding(&file, &flow, &shapes)?,
    };
    let mut notes = Vec::new();
    let (logits, assumed_labels) =
        find_logits(&file, graph, &flow, &shapes, &embedding, opts, &mut notes)?;
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "imported".to_string()),
    };
    let manifest = Manifest {
        name,
        description: format!("imported from {}", file_name(path)),
        file: file_name(path),
        sha256: sha256.to_string(),
        bytes: std::fs::metadata(path).ok().map(|m| m.len()),
        urls: vec![],
        upstream: None,
        input,
        preprocess: PreprocessSpec {
            resize: opts.resize.unwrap_or(ResizeMode::Stretch),
            filter: ResizeFilter::Bilinear,
            normalize,
        },
        embedding,
        logits,
    };
    let manifest = Manifest::parse(&manifest.to_toml(), &file).map_err(ImportError::Manifest)?;
    Ok(Import {
        manifest,
        assumed_labels,
        notes,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The graph's inputs that are not weights.
fn real_inputs(graph: &pb::GraphProto) -> Vec<&pb::ValueInfoProto> {
    let weights: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|i| !weights.contains(i.name.as_str()))
        .collect()
}

/// Element type and dimensions (`None` = left open) of a declared graph input.
fn declared(info: &pb::ValueInfoProto) -> (i32, Vec<Option<usize>>) {
    let Some(type_proto::Value::TensorType(t)) = info.r#type.as_ref().and_then(|t| t.value.clone())
    else {
        return (0, vec![]);
    };
    let dims = t.shape.map_or(vec![], |s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                    Some(*v as usize)
                }
                _ => None,
            })
            .collect()
    });
    (t.elem_type, dims)
}

fn describe_input(info: &pb::ValueInfoProto) -> String {
    let (elem, dims) = declared(info);
    let dims: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".to_string(), |v| v.to_string()))
        .collect();
    format!("{} [{}] {}", info.name, dims.join(","), elem_name(elem))
}

fn elem_name(elem: i32) -> &'static str {
    match elem {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        10 => "float16",
        11 => "float64",
        _ => "other",
    }
}

/// The one input that can take an RGB picture.
fn image_input(
    file: &str,
    graph: &pb::GraphProto,
    opts: &ImportOptions,
) -> Result<InputSpec, ImportError> {
    let inputs = real_inputs(graph);
    let listed = || {
        inputs
            .iter()
            .map(|i| describe_input(i))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let layout_of = |dims: &[Option<usize>]| match dims {
        [_, _, _, Some(3)] => Some(Layout::Nhwc),
        [_, Some(3), _, _] => Some(Layout::Nchw),
        _ => None,
    };
    let candidates: Vec<&pb::ValueInfoProto> = match &opts.input {
        Some(name) => {
            let found: Vec<_> = inputs.iter().copied().filter(|i| &i.name == name).collect();
            if found.is_empty() {
                return Err(ImportError::UnknownInput {
                    path: file.to_string(),
                    name: name.clone(),
                    inputs: listed(),
                });
            }
            found
        }
        None => inputs
            .iter()
            .copied()
            .filter(|i| layout_of(&declared(i).1).is_some())
            .collect(),
    };
    let info = match candidates.as_slice() {
        [one] => *one,
        [] => {
            return Err(ImportError::NoImageInput {
                path: file.to_string(),
                inputs: listed(),
            })
        }
        _ => {
            return Err(ImportError::SeveralImageInputs {
                path: file.to_string(),
                inputs: listed(),
            })
        }
    };
    let (elem, dims) = declared(info);
    let Some(layout) = layout_of(&dims) else {
        return Err(ImportError::NoImageInput {
            path: file.to_string(),
            inputs: listed(),
        });
    };
    let dtype = match elem {
        1 => DType::F32,
        2 => DType::U8,
        _ => {
            return Err(ImportError::InputType {
                path: file.to_string(),
                input: describe_input(info),
            })
        }
    };
    let (hi, wi) = match layout {
        Layout::Nhwc => (1, 2),
        Layout::Nchw => (2, 3),
    };
    let (h, w) = match (dims[hi], dims[wi], opts.size) {
        (_, _, Some(size)) => size,
        (Some(h), Some(w), None) => (h, w),
        _ => {
            return Err(ImportError::OpenSize {
                path: file.to_string(),
                input: describe_input(info),
            })
        }
    };
    if dims[0].is_some_and(|n| n != 1) {
        return Err(ImportError::Batch {
            path: file.to_string(),
            input: describe_input(info),
        });
    }
    let shape = match layout {
        Layout::Nhwc => [1, h, w, 3],
        Layout::Nchw => [1, 3, h, w],
    };
    Ok(InputSpec {
        name: info.name.clone(),
        shape,
        layout,
        dtype,
    })
}

/// Every named tensor's concrete shape, from tract's analysed graph with the input fixed
/// (which also proves tract can load the file).
fn shapes(
    onnx: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    path: &Path,
    input: &InputSpec,
) -> Result<HashMap<String, Vec<usize>>, ImportError> {
    let file = &path.display().to_string();
    let tract = |what: &'static str| {
        let file = file.to_string();
        move |source: anyhow::Error| ImportError::Tract {
            path: file.clone(),
            what,
            source,
        }
    };
    // With the file's folder, so weights kept in external data files beside it are found
    // (what tract's `model_for_path` does, without reading the file a second time).
    let parsed = onnx
        .parse(proto, path.parent().and_then(|d| d.to_str()))
        .map_err(tract("loading it"))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(tract("loading it")(anyhow::anyhow!(
            "inputs that nothing computes: {:?}",
            parsed.unresolved_inputs
        )));
    }
    let mut model = parsed.model;
    let ix = model
        .input_outlets()
        .map_err(tract("reading its inputs"))?
        .iter()
        .position(|o| model.node(o.node).name == input.name)
        .unwrap_or(0);
    let fact = match input.dtype {
        DType::U8 => u8::fact(input.shape),
        DType::F32 => f32::fact(input.shape),
    };
    model
        .set_input_fact(ix, fact.into())
        .map_err(tract("fixing the input shape"))?;
    // The analysed graph still has one node per ONNX node, each output labelled with its
    // tensor's name (the typed graph splits some ops and loses labels on the way).
    model
        .analyse(false)
        .map_err(tract("working out its shapes"))?;
    let mut shapes = HashMap::new();
    for (outlet, label) in &model.outlet_labels {
        let shape = model
            .outlet_fact(*outlet)
            .ok()
            .and_then(|f| f.shape.as_concrete_finite().ok().flatten());
        if let Some(shape) = shape {
            shapes.insert(label.clone(), shape.to_vec());
        }
    }
    Ok(shapes)
}

fn known_tensor<'s>(
    file: &str,
    shapes: &'s HashMap<String, Vec<usize>>,
    name: &str,
    flag: &'static str,
) -> Result<&'s Vec<usize>, ImportError> {
    shapes.get(name).ok_or_else(|| ImportError::UnknownTensor {
        path: file.to_string(),
        name: name.to_string(),
        flag,
    })
}

/// Which node makes each tensor and which nodes read it.
struct Flow<'g> {
    producer: HashMap<&'g str, &'g pb::NodeProto>,
    consumers: HashMap<&'g str, Vec<&'g pb::NodeProto>>,
    outputs: Vec<&'g str>,
}

impl<'g> Flow<'g> {
    fn new(graph: &'g pb::GraphProto) -> Flow<'g> {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<&pb::NodeProto>> = HashMap::new();
        for node in &graph.node {
            for o in &node.output {
                producer.insert(o.as_str(), node);
            }
            for i in &node.input {
                consumers.entry(i.as_str()).or_default().push(node);
            }
        }
        Flow {
            producer,
            consumers,
            outputs: graph.output.iter().map(|o| o.name.as_str()).collect(),
        }
    }

    /// Every tensor computed from `tensor` (not itself).
    fn downstream(&self, tensor: &'g str) -> Vec<&'g str> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut todo = vec![tensor];
        while let Some(t) = todo.pop() {
            for node in self.consumers.get(t).into_iter().flatten() {
                for o in &node.output {
                    if seen.insert(o.as_str()) {
                        todo.push(o.as_str());
                    }
                }
            }
        }
        seen.into_iter().collect()
    }
}

/// Ops that pass their input's values on unchanged, only reshaped.
const SAME_VALUES: [&str; 4] = ["Flatten", "Reshape", "Squeeze", "Identity"];

/// A tensor with two or more positions along at least two axes besides the batch: a feature
/// map, not a vector.
fn spatial(shape: &[usize]) -> bool {
    shape.iter().skip(1).filter(|&&d| d > 1).count() >= 2
}

fn find_embedding(
    file: &str,
    flow: &Flow,
    shapes: &HashMap<String, Vec<usize>>,
) -> Result<OutputSpec, ImportError> {
    const POOLS: [&str; 6] = [
        "GlobalAveragePool",
        "GlobalMaxPool",
        "AveragePool",
        "MaxPool",
        "ReduceMean",
        "ReduceMax",
    ];
    let mut found: Vec<OutputSpec> = Vec::new();
    for (tensor, node) in &flow.producer {
        let Some(shape) = shapes.get(*tensor) else {
            continue;
        };
        let input_spatial = node
            .input
            .first()
            .and_then(|i| shapes.get(i))
            .is_some_and(|s| spatial(s));
        if !POOLS.contains(&node.op_type.as_str()) || !input_spatial || spatial(shape) {
            continue;
        }
        let later = flow.downstream(tensor);
        if later
            .iter()
            .any(|t| shapes.get(*t).is_some_and(|s| spatial(s)))
        {
            continue; // squeeze-and-excitation: the pool scales a feature map again
        }
        // Value-preserving reshapes after the pool; their graph output is the usual name.
        let mut chain = vec![*tensor];
        let mut at = 0;
        while at < chain.len() {
            for n in flow.consumers.get(chain[at]).into_iter().flatten() {
                if SAME_VALUES.contains(&n.op_type.as_str()) && n.output.len() == 1 {
                    chain.push(n.output[0].as_str());
                }
            }
            at += 1;
        }
        let output = chain
            .iter()
            .find(|t| flow.outputs.contains(t))
            .unwrap_or(&chain[0]);
        found.push(OutputSpec {
            output: output.to_string(),
            dim: shape.iter().product(),
        });
    }
    found.sort_by(|a, b| a.output.cmp(&b.output));
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(ImportError::NoEmbedding {
            path: file.to_string(),
            outputs: describe_outputs(flow, shapes),
        }),
        _ => Err(ImportError::SeveralEmbeddings {
            path: file.to_string(),
            candidates: found
                .iter()
                .map(|o| format!("{} ({} values)", o.output, o.dim))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn describe_outputs(flow: &Flow, shapes: &HashMap<String, Vec<usize>>) -> String {
    flow.outputs
        .iter()
        .map(|o| match shapes.get(*o) {
            Some(s) => format!("{o} {s:?}"),
            None => format!("{o} [?]"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The classifier output: a float graph output of one vector, computed from the embedding,
/// not a softmax (whose rounding hides the ranking of small classes). Its labels: `--labels`,
/// or the built-in ImageNet labels when the width is 1000 or 1001 (said in the report).
fn find_logits(
    file: &str,
    graph: &pb::GraphProto,
    flow: &Flow,
    shapes: &HashMap<String, Vec<usize>>,
    embedding: &OutputSpec,
    opts: &ImportOptions,
    notes: &mut Vec<String>,
) -> Result<(Option<LogitsSpec>, Option<String>), ImportError> {
    let output = match opts.logits.as_deref() {
        Some("none") => return Ok((None, None)),
        Some(name) => {
            known_tensor(file, shapes, name, "--logits")?;
            Some(name.to_string())
        }
        None => {
            // From the pool itself: the classifier may read it apart from the named output.
            let mut root = embedding.output.as_str();
            while let Some(n) = flow
                .producer
                .get(root)
                .filter(|n| SAME_VALUES.contains(&n.op_type.as_str()))
            {
                root = n.input[0].as_str();
            }
            let after: HashSet<&str> = flow.downstream(root).into_iter().collect();
            let mut candidates: Vec<&str> = Vec::new();
            for o in &graph.output {
                let name = o.name.as_str();
                let is_vector = shapes
                    .get(name)
                    .is_some_and(|s| !spatial(s) && s.iter().product::<usize>() >= 2);
                let float = declared(o).0 == 1;
                let softmax = flow
                    .producer
                    .get(name)
                    .is_some_and(|n| n.op_type == "Softmax");
                if name == embedding.output || !after.contains(name) {
                    continue;
                }
                if is_vector && float && !softmax {
                    candidates.push(name);
                } else {
                    notes.push(format!(
                        "output {name} is not taken as the classifier ({})",
                        if softmax {
                            "a softmax"
                        } else if !float {
                            "not float"
                        } else {
                            "not one vector"
                        }
                    ));
                }
            }
            match candidates.as_slice() {
                [one] => Some(one.to_string()),
                [] => None,
                several => {
                    notes.push(format!(
                        "several outputs could be the classifier ({}); name one with --logits",
                        several.join(", ")
                    ));
                    None
                }
            }
        }
    };
    let Some(output) = output else {
        return Ok((None, None));
    };
    let width: usize = shapes[&output].iter().product();
    let (labels, assumed) = match (&opts.labels, width) {
        (Some(l), _) => (l.clone(), None),
        (None, 1001) => (
            "imagenet_labels.txt".to_string(),
            Some("imagenet_labels.txt"),
        ),
        (None, 1000) => (
            "imagenet_labels_1000.txt".to_string(),
            Some("imagenet_labels_1000.txt"),
        ),
        (None, _) => {
            notes.push(format!(
                "output {output} ({width} classes) is kept out: name its labels file with --labels FILE"
            ));
            return Ok((None, None));
        }
    };
    debug_assert!(assumed.is_none_or(|a| BUILTIN_LABELS.iter().any(|(n, _)| *n == a)));
    Ok((
        Some(LogitsSpec { output, labels }),
        assumed.map(str::to_string),
    ))
}
