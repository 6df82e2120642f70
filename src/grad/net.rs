//! A float ONNX backbone interpreted node by node in candle.
//!
//! The graph is read with tract's ONNX parser (the same file, the same weights tract runs) and
//! kept as a list of nodes in graph order; weights are candle tensors, and any of them can be
//! made trainable. Evaluation computes only what the wanted outputs need and can start from
//! known intermediate tensors, which is how fine-tuning reuses the frozen prefix's activations.
//! Tensors are NCHW inside, as the ONNX graph has them; the picture goes in as the graph's
//! input after its `Cast` to float: (N, H, W, 3) pixel values in 0..255.
//!
//! It is one file of a little over 500 lines on purpose: reading the graph, evaluating it and
//! making weights trainable share one node representation and are changed together.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor, Var};
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};
use tract_onnx::prelude::Framework;

use super::conv::{conv, global_average, ConvSpec};

/// Why the engine cannot load or run a model.
#[derive(Debug, thiserror::Error)]
pub enum GradError {
    #[error("{path}: cannot read the ONNX model: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(
        "{path}: node {node:?} is a {op}, which the gradient engine does not run; it runs float \
         models (ONNX Conv/Clip/Add/pooling), e.g. --model mobilenet-v2-f32, not int8 QDQ files"
    )]
    Unsupported {
        path: PathBuf,
        node: String,
        op: String,
    },
    #[error("{path}: {what}")]
    Graph { path: PathBuf, what: String },
    #[error("{0}")]
    Input(String),
    #[error("the model has no tensor named {0:?}")]
    NoTensor(String),
    #[error("computing {what}")]
    Compute {
        what: String,
        #[source]
        source: candle_core::Error,
    },
}

/// Wraps a candle error with what was being computed.
pub fn computing(what: impl Into<String>) -> impl FnOnce(candle_core::Error) -> GradError {
    let what = what.into();
    move |source| GradError::Compute { what, source }
}

#[derive(Debug, Clone)]
enum Op {
    /// Cast, Identity: the engine works in f32 throughout.
    Pass,
    Sub,
    Mul,
    Add,
    Transpose(Vec<usize>),
    Conv(ConvSpec),
    Clip {
        min: f32,
        max: f32,
    },
    Relu,
    GlobalAverage,
    /// An average pool with this window; the engine runs only windows that cover the map.
    AveragePool([usize; 2]),
    Reshape,
    Flatten(usize),
    Softmax,
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    op_type: String,
    op: Op,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

/// A convolution of the graph, for choosing what to train.
#[derive(Debug, Clone)]
pub struct ConvInfo {
    pub name: String,
    /// Its input tensor.
    pub input: String,
    /// Its weight and bias initializers.
    pub weights: Vec<String>,
    /// Whether it comes after the global pooling (a classifier, not a feature extractor).
    pub after_pool: bool,
}

/// A float backbone ready to run, differentiate and train.
pub struct Net {
    path: PathBuf,
    nodes: Vec<Node>,
    weights: HashMap<String, Tensor>,
    input: String,
    /// (height, width) of the picture the graph takes.
    input_hw: (usize, usize),
}

/// An initializer's shape and its values.
pub type Values = (Vec<usize>, Vec<f32>);

/// An initializer's shape and values as f32, read by tract-onnx (raw or typed data, external
/// files beside the model in `dir`); `None` when they do not convert to f32.
pub fn initializer_values(init: &TensorProto, dir: Option<&str>) -> Result<Option<Values>, String> {
    let t =
        tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::FopenDataResolver, init, dir)
            .map_err(|e| format!("initializer {:?}: {e:#}", init.name))?;
    let shape = t.shape().to_vec();
    let Ok(t) = t.cast_to::<f32>() else {
        return Ok(None);
    };
    let data = t
        .to_plain_array_view::<f32>()
        .map_err(|e| format!("initializer {:?}: {e:#}", init.name))?
        .iter()
        .copied()
        .collect();
    Ok(Some((shape, data)))
}

impl Net {
    /// Reads the ONNX file. Nodes that no output needs are not checked, so a float file whose
    /// extra `probs` output is quantized still loads.
    pub fn load(path: &Path) -> Result<Net, GradError> {
        let proto = tract_onnx::onnx()
            .proto_model_for_path(path)
            .map_err(|e| GradError::Read {
                path: path.to_path_buf(),
                reason: format!("{e:#}"),
            })?;
        Net::from_proto(&proto, path)
    }

    fn from_proto(proto: &ModelProto, path: &Path) -> Result<Net, GradError> {
        let graph_err = |what: String| GradError::Graph {
            path: path.to_path_buf(),
            what,
        };
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| graph_err("no graph".into()))?;
        let device = super::device();
        let mut weights = HashMap::new();
        for init in &graph.initializer {
            let Some((shape, data)) =
                initializer_values(init, path.parent().and_then(Path::to_str))
                    .map_err(graph_err)?
            else {
                continue; // integer constants of nodes the engine does not run
            };
            let tensor = Tensor::from_vec(data, shape, &device)
                .map_err(computing(format!("loading {}", init.name)))?;
            weights.insert(init.name.clone(), tensor);
        }
        let input = graph
            .input
            .iter()
            .map(|i| i.name.clone())
            .find(|n| !weights.contains_key(n))
            .ok_or_else(|| graph_err("no input".into()))?;
        let input_hw = input_size(graph.input.iter().find(|i| i.name == input))
            .ok_or_else(|| graph_err(format!("input {input:?} is not (1, H, W, 3)")))?;
        let mut nodes = Vec::new();
        for n in &graph.node {
            nodes.push(Node {
                name: n.name.clone(),
                op_type: n.op_type.clone(),
                op: parse_op(n, &weights),
                inputs: n.input.clone(),
                outputs: n.output.clone(),
            });
        }
        Ok(Net {
            path: path.to_path_buf(),
            nodes,
            weights,
            input,
            input_hw,
        })
    }

    /// (height, width) of the input picture.
    pub fn input_size(&self) -> (usize, usize) {
        self.input_hw
    }

    /// Runs the graph on `pixels` (N, H, W, 3) in 0..255 and returns the wanted outputs.
    pub fn forward(&self, pixels: &Tensor, want: &[&str]) -> Result<Vec<Tensor>, GradError> {
        let known = HashMap::from([(self.input.clone(), pixels.clone())]);
        self.eval(known, want)
    }

    /// Runs what the wanted tensors need that is not already `known` (by tensor name).
    pub fn eval(
        &self,
        mut known: HashMap<String, Tensor>,
        want: &[&str],
    ) -> Result<Vec<Tensor>, GradError> {
        let plan = self.plan(&known, want)?;
        for i in plan {
            let node = &self.nodes[i];
            let args: Vec<&Tensor> = node
                .inputs
                .iter()
                .filter(|n| !n.is_empty())
                .map(|n| {
                    known
                        .get(n)
                        .or_else(|| self.weights.get(n))
                        .ok_or_else(|| GradError::NoTensor(n.clone()))
                })
                .collect::<Result<_, _>>()?;
            let out =
                run_op(&node.op, &args).map_err(computing(format!("node {:?}", node.name)))?;
            known.insert(node.outputs[0].clone(), out);
        }
        want.iter()
            .map(|w| {
                known
                    .get(*w)
                    .cloned()
                    .ok_or_else(|| GradError::NoTensor(w.to_string()))
            })
            .collect()
    }

    /// Indexes of the nodes to run, in graph order, checking that each is supported.
    fn plan(
        &self,
        known: &HashMap<String, Tensor>,
        want: &[&str],
    ) -> Result<Vec<usize>, GradError> {
        let io: Vec<(&[String], &[String])> = self
            .nodes
            .iter()
            .map(|n| (n.inputs.as_slice(), n.outputs.as_slice()))
            .collect();
        let (plan, missing) = needed_nodes(&io, want, |t| {
            known.contains_key(t) || self.weights.contains_key(t)
        });
        if let Some(t) = missing.into_iter().next() {
            return Err(GradError::NoTensor(t));
        }
        for &i in &plan {
            if let Some(op) = unsupported(&self.nodes[i]) {
                return Err(GradError::Unsupported {
                    path: self.path.clone(),
                    node: self.nodes[i].name.clone(),
                    op,
                });
            }
        }
        Ok(plan)
    }

    /// Makes the named weights trainable and returns them, in the order given.
    pub fn train_weights(&mut self, names: &[String]) -> Result<Vec<Var>, GradError> {
        names
            .iter()
            .map(|n| {
                let t = self
                    .weights
                    .get(n)
                    .ok_or_else(|| GradError::NoTensor(n.clone()))?;
                let var = Var::from_tensor(t).map_err(computing(format!("weight {n}")))?;
                self.weights.insert(n.clone(), var.as_tensor().clone());
                Ok(var)
            })
            .collect()
    }

    /// Every convolution in graph order.
    pub fn convs(&self) -> Vec<ConvInfo> {
        let mut pooled = false;
        let mut out = Vec::new();
        for n in &self.nodes {
            match n.op {
                Op::GlobalAverage | Op::AveragePool(_) => pooled = true,
                Op::Conv(_) => out.push(ConvInfo {
                    name: n.name.clone(),
                    input: n.inputs[0].clone(),
                    weights: n
                        .inputs
                        .iter()
                        .skip(1)
                        .filter(|i| !i.is_empty())
                        .cloned()
                        .collect(),
                    after_pool: pooled,
                }),
                _ => {}
            }
        }
        out
    }

    /// Converts a weight to a plain f32 vector (for export).
    pub fn weight_values(&self, name: &str) -> Result<Vec<f32>, GradError> {
        let t = self
            .weights
            .get(name)
            .ok_or_else(|| GradError::NoTensor(name.to_string()))?;
        t.flatten_all()
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(computing(format!("reading weight {name}")))
    }
}

/// The nodes the `want`ed tensors need, in graph order, from each node's (inputs, outputs): a
/// walk back from the wanted tensors that stops at those `given` says are at hand (and at
/// ONNX's empty "no input" names). Also returns the tensors reached that are neither given
/// nor produced by a node (graph inputs and initializers, when `given` does not name them).
pub fn needed_nodes(
    nodes: &[(&[String], &[String])],
    want: &[&str],
    given: impl Fn(&str) -> bool,
) -> (Vec<usize>, Vec<String>) {
    let producer: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, (_, outputs))| outputs.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut needed = HashSet::new();
    let mut missing = Vec::new();
    let mut stack: Vec<&str> = want.to_vec();
    while let Some(t) = stack.pop() {
        if t.is_empty() || given(t) {
            continue;
        }
        match producer.get(t) {
            Some(&i) => {
                if needed.insert(i) {
                    stack.extend(nodes[i].0.iter().map(String::as_str));
                }
            }
            None => missing.push(t.to_string()),
        }
    }
    let mut order: Vec<usize> = needed.into_iter().collect();
    order.sort_unstable();
    (order, missing)
}

/// (H, W) from an input declared as (1, H, W, 3).
fn input_size(input: Option<&tract_onnx::pb::ValueInfoProto>) -> Option<(usize, usize)> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto::Value as TypeValue;
    let TypeValue::TensorType(t) = input?.r#type.as_ref()?.value.as_ref()?;
    let dims: Vec<Option<i64>> = t
        .shape
        .as_ref()?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(Value::DimValue(v)) => Some(v),
            _ => None,
        })
        .collect();
    match dims.as_slice() {
        [_, Some(h), Some(w), Some(3)] => Some((*h as usize, *w as usize)),
        _ => None,
    }
}

/// The op of a node; unsupported ones become `Op::Pass` and are caught by [`unsupported`].
fn parse_op(n: &NodeProto, weights: &HashMap<String, Tensor>) -> Op {
    let ints = |name: &str| -> Vec<i64> {
        n.attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.ints.clone())
            .unwrap_or_default()
    };
    let int = |name: &str, default: i64| -> i64 {
        n.attribute
            .iter()
            .find(|a| a.name == name)
            .map_or(default, |a| a.i)
    };
    let scalar = |i: usize| -> Option<f32> {
        let name = n.input.get(i)?;
        weights
            .get(name)?
            .flatten_all()
            .ok()?
            .to_vec1::<f32>()
            .ok()?
            .first()
            .copied()
    };
    let to_usize = |v: Vec<i64>| v.into_iter().map(|x| x.max(0) as usize).collect::<Vec<_>>();
    match n.op_type.as_str() {
        "Cast" | "Identity" => Op::Pass,
        "Sub" => Op::Sub,
        "Mul" => Op::Mul,
        "Add" => Op::Add,
        "Transpose" => Op::Transpose(to_usize(ints("perm"))),
        "Conv" => {
            let s = to_usize(ints("strides"));
            let p = to_usize(ints("pads"));
            Op::Conv(ConvSpec {
                strides: [*s.first().unwrap_or(&1), *s.get(1).unwrap_or(&1)],
                pads: if p.len() == 4 {
                    [p[0], p[1], p[2], p[3]]
                } else {
                    [0; 4]
                },
                group: int("group", 1).max(1) as usize,
            })
        }
        "Clip" => Op::Clip {
            min: scalar(1).unwrap_or(f32::MIN),
            max: scalar(2).unwrap_or(f32::MAX),
        },
        "Relu" => Op::Relu,
        "GlobalAveragePool" => Op::GlobalAverage,
        "AveragePool" => {
            let k = to_usize(ints("kernel_shape"));
            Op::AveragePool([*k.first().unwrap_or(&1), *k.get(1).unwrap_or(&1)])
        }
        "Reshape" => Op::Reshape,
        "Flatten" => Op::Flatten(int("axis", 1).max(0) as usize),
        "Softmax" => Op::Softmax,
        _ => Op::Pass,
    }
}

/// The op name when the engine cannot run this node.
fn unsupported(n: &Node) -> Option<String> {
    const KNOWN: [&str; 14] = [
        "Cast",
        "Identity",
        "Sub",
        "Mul",
        "Add",
        "Transpose",
        "Conv",
        "Clip",
        "Relu",
        "GlobalAveragePool",
        "AveragePool",
        "Reshape",
        "Flatten",
        "Softmax",
    ];
    (!KNOWN.contains(&n.op_type.as_str())).then(|| n.op_type.clone())
}

fn run_op(op: &Op, a: &[&Tensor]) -> candle_core::Result<Tensor> {
    match op {
        Op::Pass => Ok(a[0].clone()),
        Op::Sub => a[0].broadcast_sub(a[1]),
        Op::Mul => a[0].broadcast_mul(a[1]),
        Op::Add => a[0].broadcast_add(a[1]),
        Op::Transpose(perm) => a[0].permute(perm.as_slice())?.contiguous(),
        Op::Conv(spec) => conv(a[0], a[1], a.get(2).copied(), spec),
        Op::Clip { min, max } => a[0].clamp(*min, *max),
        Op::Relu => a[0].relu(),
        Op::GlobalAverage => global_average(a[0]),
        Op::AveragePool(k) => {
            let (_, _, h, w) = a[0].dims4()?;
            if [h, w] != *k {
                candle_core::bail!("an AveragePool window {k:?} smaller than its {h}x{w} map")
            }
            global_average(a[0])
        }
        Op::Reshape => {
            let spec: Vec<i64> = a[1]
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(|v| v as i64)
                .collect();
            a[0].reshape(onnx_shape(a[0].dims(), &spec)?)
        }
        Op::Flatten(axis) => {
            let dims = a[0].dims();
            let outer: usize = dims[..*axis].iter().product();
            let inner: usize = dims[*axis..].iter().product();
            a[0].reshape((outer, inner))
        }
        Op::Softmax => {
            let last = a[0].rank() - 1;
            let lse = a[0].log_sum_exp(last)?.unsqueeze(last)?;
            a[0].broadcast_sub(&lse)?.exp()
        }
    }
}

/// ONNX Reshape semantics: 0 copies the input dimension, -1 takes what is left.
fn onnx_shape(dims: &[usize], spec: &[i64]) -> candle_core::Result<Vec<usize>> {
    let total: usize = dims.iter().product();
    let mut out: Vec<usize> = spec
        .iter()
        .enumerate()
        .map(|(i, &s)| match s {
            0 => dims.get(i).copied().unwrap_or(1),
            s if s > 0 => s as usize,
            _ => 1,
        })
        .collect();
    if let Some(hole) = spec.iter().position(|&s| s == -1) {
        let known: usize = out.iter().product();
        out[hole] = total / known.max(1);
    }
    Ok(out)
}
