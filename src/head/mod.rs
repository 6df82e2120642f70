//! The classifier head trained on the device: what it is, how it predicts, how it is stored
//! ([`file`]) and trained ([`train`]).

pub mod centroid;
pub mod curve;
pub mod file;
pub mod logistic;
pub mod scaler;
pub mod train;

use serde::{Deserialize, Serialize};

use crate::model::manifest::{InputSpec, PreprocessSpec};
use crate::predict::softmax;

pub use centroid::CentroidModel;
pub use logistic::{LinearModel, LogisticParams};
pub use scaler::Scaler;

/// The backbone a head was trained on: a head only makes sense on the same features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backbone {
    pub name: String,
    pub sha256: String,
    pub embedding_dim: usize,
    /// How pictures were fed to it, so a head records what training saw.
    pub input: InputSpec,
    pub preprocess: PreprocessSpec,
}

impl Backbone {
    /// The identity and input contract of a resolved model.
    pub fn of(model: &crate::model::ResolvedModel) -> Backbone {
        let m = &model.manifest;
        Backbone {
            name: m.name.clone(),
            sha256: model.sha256.clone(),
            embedding_dim: m.embedding.dim,
            input: m.input.clone(),
            preprocess: m.preprocess.clone(),
        }
    }
}

/// The decision rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Classifier {
    /// Multinomial logistic regression on standardised features.
    Logistic { scaler: Scaler, model: LinearModel },
    /// Nearest class mean (cosine).
    Centroid { model: CentroidModel },
}

/// What the head was trained on, for `predict`/`eval` summaries and the web page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Usable pictures per label, in label order.
    pub samples: Vec<usize>,
    /// Whether mirrored copies were added.
    pub flip: bool,
    /// k-fold cross-validated accuracy, when every label had enough pictures.
    pub cv_accuracy: Option<f64>,
    pub cv_folds: Option<usize>,
    /// Every alpha cross-validation tried for a logistic head, when it chose one (the one
    /// used is in the classifier); absent in heads whose alpha was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha_search: Option<Vec<train::AlphaScore>>,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Cross-validated accuracy on growing subsets of the pictures ("enough?"), when
    /// cross-validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_curve: Option<Vec<curve::CurvePoint>>,
}

/// A trained head: labels, the backbone it belongs to and the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub labels: Vec<String>,
    pub backbone: Backbone,
    pub classifier: Classifier,
    pub training: TrainingInfo,
    /// The part of the frame the head was taught on, and so looks at (the whole frame when
    /// absent). Written only when set, in a version-2 head file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<crate::region::Region>,
}

impl Head {
    /// Class probabilities (sum to 1, label order) for one embedding.
    pub fn predict(&self, embedding: &[f32]) -> Vec<f32> {
        softmax(&self.logits(embedding))
    }

    /// Class scores before softmax.
    pub fn logits(&self, embedding: &[f32]) -> Vec<f32> {
        self.classifier.logits(embedding)
    }
}

impl Classifier {
    /// Class scores before softmax for one raw embedding.
    pub fn logits(&self, embedding: &[f32]) -> Vec<f32> {
        match self {
            Classifier::Logistic { scaler, model } => model.logits(&scaler.apply(embedding)),
            Classifier::Centroid { model } => model.logits(embedding),
        }
    }
}

/// A two-label head on a 3-wide embedding around `classifier`, for unit tests.
#[cfg(test)]
pub(crate) fn test_head(labels: [&str; 2], classifier: Classifier) -> Head {
    let m = crate::model::store::manifest_by_name("mobilenet-v2-f32").unwrap();
    Head {
        labels: labels.map(String::from).to_vec(),
        backbone: Backbone {
            name: "t".into(),
            sha256: "00".repeat(32),
            embedding_dim: 3,
            input: m.input,
            preprocess: m.preprocess,
        },
        classifier,
        training: TrainingInfo {
            samples: vec![1, 1],
            flip: false,
            cv_accuracy: None,
            cv_folds: None,
            alpha_search: None,
            created: 0,
            learning_curve: None,
        },
        region: None,
    }
}
