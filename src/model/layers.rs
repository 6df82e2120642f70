//! Looking inside a backbone: its intermediate feature maps (`edge-tl features`).
//!
//! Layers are read from the ONNX graph itself: every convolution's activation (the ReLU6 that
//! follows it, or the convolution when nothing follows, as in MobileNetV2's linear
//! bottlenecks) and every residual sum, in graph order. They are named by the first part of
//! the TensorFlow scope the node carries (`MobilenetV2/expanded_conv_3/expand/Relu6`), which
//! is what the Coral exports keep of the original network.

use std::collections::HashMap;

use ndarray::{ArrayD, IxDyn};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use super::extractor::{fix_input, to_tensor, tract_error};
use super::store::ResolvedModel;
use crate::error::ModelError;
use crate::model::input::InputTensor;

/// One feature map a backbone computes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Layer {
    /// Position in graph order, from 0.
    pub index: usize,
    /// Readable name (the node's TensorFlow scope).
    pub name: String,
    /// `Conv`, `Clip` (ReLU6 after a convolution) or `Add` (residual sum).
    pub op: String,
    /// The ONNX node whose output this is.
    #[serde(skip)]
    pub node: String,
    /// Channels, height, width.
    pub shape: [usize; 3],
}

/// Why a layer cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{model} has no layer {wanted:?} ({count} layers: 0..{}); list them with --layer list", count.saturating_sub(1))]
    Unknown {
        model: String,
        wanted: String,
        count: usize,
    },
    #[error("{model}: layer {wanted:?} matches {} layers ({}); give more of the name or its number", matches.len(), matches.join(", "))]
    Ambiguous {
        model: String,
        wanted: String,
        matches: Vec<String>,
    },
}

/// The backbone's graph, parsed once, for listing and running layers.
pub struct Layers {
    model: ResolvedModel,
    proto: ModelProto,
    list: Vec<Layer>,
}

impl Layers {
    /// Parses the model file and lists its feature maps with their shapes.
    pub fn open(model: &ResolvedModel) -> Result<Layers, ModelError> {
        let name = &model.manifest.name;
        let proto = tract_onnx::onnx()
            .proto_model_for_path(&model.path)
            .map_err(tract_error(
                name,
                &format!("reading {}", model.path.display()),
            ))?;
        let candidates = candidates(&proto);
        let typed = inference_model(model, &proto)?
            .into_typed()
            .map_err(tract_error(name, "analysing the graph"))?;
        let mut list = Vec::new();
        for (node, shape_of, op, label) in candidates {
            let Ok(n) = typed.node_by_name(&shape_of) else {
                continue;
            };
            let Some(shape) = n.outputs[0].fact.shape.as_concrete() else {
                continue;
            };
            // 1x1 "maps" (the classifier) are not pictures of anything.
            if let [1, c, h, w] = *shape {
                if h * w == 1 {
                    continue;
                }
                list.push(Layer {
                    index: list.len(),
                    name: label,
                    op,
                    node,
                    shape: [c, h, w],
                });
            }
        }
        Ok(Layers {
            model: model.clone(),
            proto,
            list,
        })
    }

    pub fn list(&self) -> &[Layer] {
        &self.list
    }

    /// A layer by number, exact name, or a part of its name that only one layer has.
    pub fn find(&self, wanted: &str) -> Result<&Layer, LayerError> {
        let model = self.model.manifest.name.clone();
        let unknown = || LayerError::Unknown {
            model: model.clone(),
            wanted: wanted.to_string(),
            count: self.list.len(),
        };
        if let Ok(i) = wanted.parse::<usize>() {
            return self.list.get(i).ok_or_else(unknown);
        }
        if let Some(l) = self.list.iter().find(|l| l.name == wanted) {
            return Ok(l);
        }
        let matches: Vec<&Layer> = self
            .list
            .iter()
            .filter(|l| l.name.contains(wanted))
            .collect();
        match matches.as_slice() {
            [] => Err(unknown()),
            [one] => Ok(one),
            many => Err(LayerError::Ambiguous {
                model,
                wanted: wanted.to_string(),
                matches: many.iter().map(|l| l.name.clone()).collect(),
            }),
        }
    }

    /// The layer's activations for one picture, `[channels, height, width]`.
    pub fn activations(
        &self,
        layer: &Layer,
        input: &InputTensor,
    ) -> Result<ArrayD<f32>, ModelError> {
        let name = &self.model.manifest.name;
        let mut graph = inference_model(&self.model, &self.proto)?;
        graph
            .select_outputs_by_name([layer.node.as_str()])
            .map_err(tract_error(name, "selecting the layer"))?;
        let plan = graph
            .into_optimized()
            .and_then(|g| g.into_runnable())
            .map_err(tract_error(name, "optimising the graph"))?;
        let tensor = to_tensor(input).map_err(tract_error(name, "building the input tensor"))?;
        let out = plan
            .run(tvec!(tensor.into()))
            .map_err(tract_error(name, "running the layer"))?;
        let view = out[0]
            .to_plain_array_view::<f32>()
            .map_err(tract_error(name, "reading the layer"))?;
        // tract's ndarray is another version than ours (linfa's): copy in logical order.
        let values: Vec<f32> = view.iter().copied().collect();
        let [c, h, w] = layer.shape;
        ArrayD::from_shape_vec(IxDyn(&[c, h, w]), values)
            .map_err(|e| tract_error(name, "reading the layer")(e.into()))
    }
}

/// The inference model with the input fixed as the manifest says.
fn inference_model(
    model: &ResolvedModel,
    proto: &ModelProto,
) -> Result<InferenceModel, ModelError> {
    let m = &model.manifest;
    let err = |what: &str| tract_error(&m.name, what);
    let mut graph = tract_onnx::onnx()
        .model_for_proto_model(proto)
        .map_err(err("loading the graph"))?;
    fix_input(&mut graph, m).map_err(err("fixing the input shape"))?;
    Ok(graph)
}

/// (node name, node of the same shape that survives tract's analysis, op, readable name) of
/// the nodes worth showing, in graph order. Activations are rewritten by tract's analysis
/// (their names disappear from the typed graph) but keep their convolution's shape.
fn candidates(proto: &ModelProto) -> Vec<(String, String, String, String)> {
    let Some(graph) = &proto.graph else {
        return Vec::new();
    };
    let producer: HashMap<&str, &tract_onnx::pb::NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let consumed_by_clip: std::collections::HashSet<&str> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Clip" || n.op_type == "Relu")
        .filter_map(|n| n.input.first().map(String::as_str))
        .collect();
    let scope = |n: &tract_onnx::pb::NodeProto| n.name.split(';').next().unwrap_or("").to_string();
    graph
        .node
        .iter()
        .filter_map(|n| {
            let ends_in_activation = n
                .output
                .iter()
                .any(|o| consumed_by_clip.contains(o.as_str()));
            let (shape_of, label) = match n.op_type.as_str() {
                "Conv" if !ends_in_activation => (n.name.clone(), scope(n)),
                // An activation carries a generated name; its convolution's scope says what it is.
                "Clip" | "Relu" => {
                    let input = n.input.first()?;
                    let conv = producer.get(input.as_str())?;
                    (conv.name.clone(), scope(conv))
                }
                "Add" => (n.name.clone(), format!("{} (sum)", scope(n))),
                _ => return None,
            };
            Some((n.name.clone(), shape_of, n.op_type.clone(), label))
        })
        .collect()
}
