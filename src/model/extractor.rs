//! The feature extractor: the only module that names tract types. It loads an ONNX backbone,
//! fixes its input to one picture of the manifest's shape, keeps only the outputs asked for
//! (the embedding, and the ImageNet logits when they are wanted), optimises the graph once and
//! reuses that plan for every picture. Everything else sees plain `Vec<f32>`s.

use crate::model::kernels::Kernels;
use std::sync::Arc;

use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;

use crate::error::ModelError;
use crate::model::input::{InputTensor, TensorData};
use crate::model::manifest::Manifest;
use crate::model::store::ResolvedModel;
use crate::model::threads::{Threads, Tuner};

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
    /// How many threads run a picture, as asked.
    threads: Threads,
    /// One executor per count `threads` may run with ([`Threads::candidates`], fewest first):
    /// tract's matrix products and the fused convolutions split a picture over its pool.
    executors: Vec<Executor>,
    /// Chooses among `executors` by timing the pictures ([`Threads::Auto`]); `None` when
    /// there is one.
    tuner: Option<std::sync::Mutex<Tuner>>,
    /// What runs on edge-tl's kernels instead of tract's.
    fused: super::fast_conv::Rewritten,
    /// Run states kept between pictures: a fresh state per run costs as much as a third of
    /// the network's own time (buffers are sized and allocated on first use).
    states: std::sync::Mutex<Vec<TypedSimpleState>>,
}

type TypedSimpleState = tract_onnx::tract_core::plan::SimpleState<TypedFact, Box<dyn TypedOp>>;

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("model", &self.model.manifest.name)
            .field("logits", &self.logits)
            .field("threads", &self.threads)
            .field("running_on", &self.threads())
            .finish()
    }
}

impl Extractor {
    /// Loads and optimises the model for the given outputs, on the kernels `model.kernels`
    /// names.
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
        fix_input(&mut graph, m).map_err(tract("fixing the input shape"))?;
        graph
            .select_outputs_by_name(&names)
            .map_err(tract("selecting the embedding/logits outputs"))?;
        let mut typed = graph
            .into_typed()
            .and_then(|g| g.into_decluttered())
            .map_err(tract("decluttering the graph"))?;
        let fused = match model.kernels {
            Kernels::Fused(isa) => {
                super::fast_conv::rewrite(&mut typed, isa).map_err(tract("fusing convolutions"))?
            }
            Kernels::Tract => Default::default(),
        };
        let plan = typed
            .into_optimized()
            .and_then(|g| g.into_runnable())
            .map_err(tract("optimising the graph"))?;
        Ok(Extractor {
            model: model.clone(),
            plan,
            logits: logits.is_some(),
            threads: Threads::Fixed(1),
            executors: vec![Executor::SingleThread],
            tuner: None,
            fused,
            states: Default::default(),
        })
    }

    /// Runs each picture on `threads` threads (1 = on the caller's thread only), or on as many
    /// as measure fastest ([`Threads::Auto`]). Worth it for one stream of pictures (the camera
    /// loop); datasets are embedded a picture per thread. The tuner of `Auto` times pictures
    /// run one after another; pictures run at once from several threads blur its times.
    pub fn set_threads(&mut self, threads: impl Into<Threads>) {
        let threads = threads.into();
        if threads == self.threads {
            return;
        }
        let counts = threads.candidates();
        self.executors = counts
            .iter()
            .map(|n| match n {
                1 => Executor::SingleThread,
                &n => Executor::multithread_with_name(n, "edge-tl-extract"),
            })
            .collect();
        self.tuner = (counts.len() > 1).then(|| std::sync::Mutex::new(Tuner::new(counts)));
        self.threads = threads;
    }

    /// How many convolutions run on edge-tl's fused kernels (0: tract's plan throughout).
    pub fn fused_convolutions(&self) -> usize {
        self.fused.convolutions
    }

    /// How many QDQ pairs (the int8 files' rounding between layers) run folded into a fused
    /// convolution, and how many as an op of their own; (0, 0) on tract's plan.
    pub fn fused_grids(&self) -> (usize, usize) {
        (self.fused.grids_folded, self.fused.grids_alone)
    }

    /// Threads the next picture runs on (with [`Threads::Auto`], the count chosen now).
    pub fn threads(&self) -> usize {
        match &self.tuner {
            Some(tuner) => lock(tuner).threads(),
            None => match self.threads {
                Threads::Fixed(n) => n,
                Threads::Auto { .. } => 1,
            },
        }
    }

    /// The thread setting, as asked.
    pub fn thread_setting(&self) -> Threads {
        self.threads
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
        let tensor = to_tensor(input).map_err(err("building the input tensor"))?;
        let pooled = self.states.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut state = match pooled {
            Some(s) => s,
            None => self.plan.spawn().map_err(err("starting a run"))?,
        };
        let index = self.tuner.as_ref().map_or(0, |t| lock(t).current());
        let start = std::time::Instant::now();
        let outputs = self
            .on_executor(index, || state.run(tvec!(tensor.into_tvalue())))
            .map_err(err("running the network"))?;
        if let Some(tuner) = &self.tuner {
            let choice = lock(tuner).record(index, start.elapsed().as_secs_f64());
            if let Some(choice) = choice {
                log::info!("{}: running {choice}", m.name);
            }
        }
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(state);
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

impl Extractor {
    /// Runs `f` (one picture) with this extractor's executor. On a pool, the whole picture
    /// runs on one of its threads: each fused op then splits its rows where it stands and the
    /// other threads steal shares when they are free, so a busy machine (a parked worker)
    /// costs no hand-over and no wait. Called from outside the pool, every op would hand its
    /// work over and sleep until it came back: measured beside a busy loop on the other core,
    /// that made 2 threads slower than 1.
    fn on_executor<R: Send>(&self, index: usize, f: impl FnOnce() -> R + Send) -> R {
        let executor = &self.executors[index];
        let scoped = || multithread_tract_scope(executor.clone(), f);
        match executor {
            Executor::MultiThread(pool) => pool.install(scoped),
            _ => scoped(),
        }
    }

    /// Where the time goes: runs `input` `runs` times and sums the time per operator kind
    /// (tract's op names, e.g. `Conv`, `DepthWise`, `OptMatMul`), largest first, in ms per run.
    pub fn profile(&self, input: &InputTensor, runs: usize) -> Result<Vec<OpTime>, ModelError> {
        let m = &self.model.manifest;
        let err = |what: &str| tract_error(&m.name, what);
        let tensor = to_tensor(input).map_err(err("building the input tensor"))?;
        let mut totals: std::collections::HashMap<String, (f64, usize)> = Default::default();
        let runs = runs.max(1);
        // On the count running now; the tuner is not told (the profile's timing is its own).
        let index = self.tuner.as_ref().map_or(0, |t| lock(t).current());
        for _ in 0..runs {
            let mut state = self.plan.spawn().map_err(err("starting a run"))?;
            self.on_executor(index, || {
                state.run_plan_with_eval(
                    tvec!(tensor.clone().into_tvalue()),
                    |ctx, st, node, inputs| {
                        let start = std::time::Instant::now();
                        let out = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
                        let entry = totals.entry(node.op().name().to_string()).or_default();
                        entry.0 += start.elapsed().as_secs_f64() * 1e3;
                        entry.1 += 1;
                        out
                    },
                )
            })
            .map_err(err("running the network"))?;
        }
        let mut ops: Vec<OpTime> = totals
            .into_iter()
            .map(|(op, (ms, n))| OpTime {
                op,
                ms: ms / runs as f64,
                nodes: n / runs,
            })
            .collect();
        ops.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(ops)
    }
}

/// The tuner's lock; a panic while it was held left no half-made choice (each `record` leaves
/// it consistent), so a poisoned lock is used as it is.
fn lock(tuner: &std::sync::Mutex<Tuner>) -> std::sync::MutexGuard<'_, Tuner> {
    tuner.lock().unwrap_or_else(|p| p.into_inner())
}

/// Time spent in one kind of operator per run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpTime {
    pub op: String,
    pub ms: f64,
    /// Nodes of this kind in the optimised graph.
    pub nodes: usize,
}

pub(super) fn to_tensor(input: &InputTensor) -> TractResult<Tensor> {
    match &input.data {
        TensorData::U8(v) => Tensor::from_shape(&input.shape, v),
        TensorData::F32(v) => Tensor::from_shape(&input.shape, v),
    }
}

/// Wraps a tract error with the model's name and the step that failed.
pub(super) fn tract_error(name: &str, what: &str) -> impl FnOnce(anyhow::Error) -> ModelError {
    let (name, what) = (name.to_string(), what.to_string());
    move |source| ModelError::Tract { name, what, source }
}

/// Fixes the graph's input to the manifest's type and shape, so tract can optimise for it.
pub(super) fn fix_input(graph: &mut InferenceModel, m: &Manifest) -> TractResult<()> {
    let ix = input_index(graph, &m.input.name)?;
    let fact = match m.input.dtype {
        crate::model::manifest::DType::U8 => u8::fact(m.input.shape),
        crate::model::manifest::DType::F32 => f32::fact(m.input.shape),
    };
    graph.set_input_fact(ix, fact.into())
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
