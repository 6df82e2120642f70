//! One picture through the whole chain: frame -> input tensor -> embedding -> probabilities,
//! with the time each stage took. `predict`, `classify` and the camera loop all go through
//! here, so they cannot disagree.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{DecodeError, HeadError, ModelError};
use crate::frame::Frame;
use crate::head::{file as head_file, Head};
use crate::model::{Extractor, Outputs, ResolvedModel};
use crate::predict::{softmax, top_k, Ranked};
use crate::preprocess;

/// Why one picture could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Milliseconds spent per stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimes {
    pub decode: f64,
    pub resize: f64,
    pub extract: f64,
    pub head: f64,
}

/// The answer for one picture.
#[derive(Debug, Clone)]
pub struct Classified {
    /// Probabilities over [`Pipeline::labels`].
    pub probs: Vec<f32>,
    pub embedding: Vec<f32>,
    pub times: StageTimes,
}

/// Backbone plus, optionally, a trained head.
#[derive(Debug)]
pub struct Pipeline {
    /// Shared by the pipelines of several cameras: one backbone in memory for all of them.
    extractor: Arc<Extractor>,
    head: Option<Head>,
    head_path: Option<PathBuf>,
}

impl Pipeline {
    /// Backbone only: answers with the backbone's own (ImageNet) classes.
    pub fn backbone(model: &ResolvedModel) -> Result<Pipeline, ModelError> {
        Ok(Pipeline {
            extractor: Arc::new(Extractor::load(model, Outputs::EmbeddingAndLogits)?),
            head: None,
            head_path: None,
        })
    }

    /// Backbone plus the head in `head_path`, refused if trained on another backbone.
    pub fn with_head(
        model: &ResolvedModel,
        head: Head,
        head_path: &Path,
    ) -> Result<Pipeline, PipelineHeadError> {
        head_file::check_backbone(&head, model, head_path)?;
        Ok(Pipeline {
            extractor: Arc::new(Extractor::load(model, Outputs::Embedding)?),
            head: Some(head),
            head_path: Some(head_path.to_path_buf()),
        })
    }

    /// The labels probabilities refer to.
    pub fn labels(&self) -> &[String] {
        match (&self.head, &self.extractor.model().labels) {
            (Some(h), _) => &h.labels,
            (None, Some(l)) => l,
            (None, None) => &[],
        }
    }

    /// The extractor (for embedding-only work).
    pub fn extractor(&self) -> &Extractor {
        &self.extractor
    }

    /// Threads the backbone uses per picture; see [`Extractor::set_threads`]. Set before the
    /// backbone is [shared](Pipeline::share): a shared one keeps its threads.
    pub fn set_threads(&mut self, threads: impl Into<crate::model::Threads>) {
        match Arc::get_mut(&mut self.extractor) {
            Some(extractor) => extractor.set_threads(threads),
            None => debug_assert!(false, "threads are set before the backbone is shared"),
        }
    }

    /// A pipeline on the same backbone (no second copy in memory) with its own head, or
    /// with none (the backbone's classes, when it was loaded with its logits).
    pub fn share(&self, head: Option<(Head, &Path)>) -> Result<Pipeline, HeadError> {
        let mut shared = Pipeline {
            extractor: self.extractor.clone(),
            head: None,
            head_path: None,
        };
        if let Some((head, path)) = head {
            shared.replace_head(head, path)?;
        }
        Ok(shared)
    }

    /// The head in use, if any, and where it was loaded from.
    pub fn head(&self) -> Option<(&Head, &Path)> {
        self.head.as_ref().zip(self.head_path.as_deref())
    }

    /// Swaps in a new head (the camera loop does this when the head file changes).
    pub fn replace_head(&mut self, head: Head, path: &Path) -> Result<(), HeadError> {
        head_file::check_backbone(&head, self.extractor.model(), path)?;
        self.head = Some(head);
        self.head_path = Some(path.to_path_buf());
        Ok(())
    }

    /// Decodes and classifies one file.
    pub fn classify_file(&self, path: &Path) -> Result<Classified, PipelineError> {
        let start = Instant::now();
        let frame = preprocess::decode_file(path)?;
        let decode = ms(start);
        let mut out = self.classify_frame(&frame)?;
        out.times.decode = decode;
        Ok(out)
    }

    /// Classifies a decoded frame.
    pub fn classify_frame(&self, frame: &Frame) -> Result<Classified, ModelError> {
        let t = Instant::now();
        let region = self.head.as_ref().and_then(|h| h.region.as_ref());
        let input = preprocess::to_input_in(frame, region, self.extractor.manifest());
        let resize = ms(t);
        let t = Instant::now();
        let features = self.extractor.run(&input)?;
        let extract = ms(t);
        let t = Instant::now();
        let probs = match (&self.head, &features.logits) {
            (Some(h), _) => h.predict(&features.embedding),
            (None, Some(logits)) => softmax(logits),
            (None, None) => Vec::new(),
        };
        let head = ms(t);
        Ok(Classified {
            probs,
            embedding: features.embedding,
            times: StageTimes {
                decode: 0.0,
                resize,
                extract,
                head,
            },
        })
    }

    /// The `k` best labels of a result.
    pub fn top(&self, classified: &Classified, k: usize) -> Vec<Ranked> {
        top_k(&classified.probs, self.labels(), k)
    }
}

/// Why a pipeline with a head could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PipelineHeadError {
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
