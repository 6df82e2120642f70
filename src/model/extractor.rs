//! The feature extractor: the only module that names tract types. It loads an ONNX backbone,
//! fixes its input to one picture of the manifest's shape, keeps only the outputs asked for
//! (the embedding, and the ImageNet logits when they are wanted), optimises the graph once and
//! reuses that plan for every picture. Everything else sees plain `Vec<f32>`s.

use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::error::ModelError;
use crate::model::manifest::Manifest;
use crate::model::store::ResolvedModel;
use crate::preprocess::{InputTensor, TensorData};

/// Which outputs the plan computes: cutting at the embedding skips the classifier layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// The penultimate features only (training, predict with a head).
    Embedding,
    /// The features and the backbone's own ImageNet logits (classify, run without a head).
    EmbeddingAndLogits,
}

/// What the backbone says about one picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Penultimate features, `manifest.embedding.dim` long.
    pub embedding: Vec<f32>,
    /// Backbone classifier logits (ImageNet: 1001, index 0 = background), if asked for.
    pub logits: Option<Vec<f32>>,
}

/// A loaded, optimised backbone ready to run pictures.
pub struct Extractor {
    model: ResolvedModel,
    plan: Arc<TypedRunnableModel>,
    logits: bool,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("model", &self.model.manifest.name)
            .field("logits", &self.logits)
            .finish()
    }
}

impl Extractor {
    /// Loads and optimises the model for the given outputs.
    pub fn load(model: &ResolvedModel, outputs: Outputs) -> Result<Extractor, ModelError> {
        let m = &model.manifest;
        let logits = match (outputs, &m.logits) {
            (Outputs::Embedding, _) => None,
            (Outputs::EmbeddingAndLogits, Some(l)) => Some(l.output.clone()),
            (Outputs::EmbeddingAndLogits, None) => {
                return Err(ModelError::NoLogits {
                    name: m.name.clone(),
                })
            }
        };
        let mut names = vec![m.embedding.output.clone()];
        names.extend(logits.clone());
        let tract = |what: &str| tract_error(&m.name, what);
        let mut graph = tract_onnx::onnx()
            .model_for_path(&model.path)
            .map_err(tract(&format!("loading {}", model.path.display())))?;
        let input_ix = input_index(&graph, &m.input.name).map_err(tract("finding the input"))?;
        let fact = match m.input.dtype {
            crate::model::manifest::DType::U8 => u8::fact(m.input.shape),
            crate::model::manifest::DType::F32 => f32::fact(m.input.shape),
        };
        graph
            .set_input_fact(input_ix, fact.into())
            .map_err(tract("fixing the input shape"))?;
        graph
            .select_outputs_by_name(&names)
            .map_err(tract("selecting the embedding/logits outputs"))?;
        let plan = graph
            .into_optimized()
            .and_then(|g| g.into_runnable())
            .map_err(tract("optimising the graph"))?;
        Ok(Extractor {
            model: model.clone(),
            plan,
            logits: logits.is_some(),
        })
    }

    /// The model this extractor runs.
    pub fn model(&self) -> &ResolvedModel {
        &self.model
    }

    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.model.manifest
    }

    /// Runs one picture (already preprocessed with [`crate::preprocess::to_input`]).
    pub fn run(&self, input: &InputTensor) -> Result<Features, ModelError> {
        let m = &self.model.manifest;
        let err = |what: &str| tract_error(&m.name, what);
        let tensor = match &input.data {
            TensorData::U8(v) => Tensor::from_shape(&input.shape, v),
            TensorData::F32(v) => Tensor::from_shape(&input.shape, v),
        }
        .map_err(err("building the input tensor"))?;
        let outputs = self
            .plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(err("running the network"))?;
        let embedding = to_vec(&outputs[0]).map_err(err("reading the embedding"))?;
        if embedding.len() != m.embedding.dim {
            return Err(ModelError::Tract {
                name: m.name.clone(),
                what: format!(
                    "the embedding output has {} values, the manifest says {}",
                    embedding.len(),
                    m.embedding.dim
                ),
                source: anyhow::anyhow!("manifest/model mismatch"),
            });
        }
        let logits = if self.logits {
            Some(to_vec(&outputs[1]).map_err(err("reading the logits"))?)
        } else {
            None
        };
        Ok(Features { embedding, logits })
    }
}

/// Wraps a tract error with the model's name and the step that failed.
fn tract_error(name: &str, what: &str) -> impl FnOnce(anyhow::Error) -> ModelError {
    let (name, what) = (name.to_string(), what.to_string());
    move |source| ModelError::Tract { name, what, source }
}

fn input_index(graph: &InferenceModel, name: &str) -> TractResult<usize> {
    let outlets = graph.input_outlets()?;
    outlets
        .iter()
        .position(|o| graph.node(o.node).name == name)
        .ok_or_else(|| {
            let names: Vec<_> = outlets
                .iter()
                .map(|o| graph.node(o.node).name.clone())
                .collect();
            anyhow::anyhow!("no input named {name:?} (the graph has {names:?})")
        })
}

fn to_vec(value: &TValue) -> TractResult<Vec<f32>> {
    let value = value.cast_to::<f32>()?;
    Ok(value
        .to_plain_array_view::<f32>()?
        .iter()
        .copied()
        .collect())
}
