//! The head file: JSON with a format tag and version, the labels, the backbone (name + sha256 +
//! preprocessing), and the classifier. Written to a temporary file in the same folder and
//! renamed, so a crash or a full disk never leaves a half-written head where a running camera
//! loop would pick it up.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Classifier, Head};
use crate::error::HeadError;
use crate::model::store::ResolvedModel;

/// Value of the `format` field.
pub const FORMAT: &str = "edge-tl-head";
/// Version written by this edge-tl; older or newer versions are refused with a message.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Envelope<H> {
    format: String,
    version: u32,
    head: H,
}

/// Writes `head` to `path` atomically.
pub fn save(head: &Head, path: &Path) -> Result<(), HeadError> {
    let write_err = |source| HeadError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".head-")
        .tempfile_in(dir)
        .map_err(write_err)?;
    let envelope = Envelope {
        format: FORMAT.to_string(),
        version: VERSION,
        head,
    };
    serde_json::to_writer(tmp.as_file_mut(), &envelope)
        .map_err(|e| write_err(std::io::Error::other(e)))?;
    tmp.as_file_mut().write_all(b"\n").map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}

/// Reads and checks a head file.
pub fn load(path: &Path) -> Result<Head, HeadError> {
    let bytes = std::fs::read(path).map_err(|source| HeadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_err = |source| HeadError::Parse {
        path: path.to_path_buf(),
        source,
    };
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(parse_err)?;
    if envelope.format != FORMAT {
        return Err(HeadError::Inconsistent {
            path: path.to_path_buf(),
            problem: format!("format is {:?}, expected {FORMAT:?}", envelope.format),
        });
    }
    if envelope.version != VERSION {
        return Err(HeadError::Version {
            path: path.to_path_buf(),
            found: envelope.version,
            supported: VERSION,
        });
    }
    let head: Head = serde_json::from_value(envelope.head).map_err(parse_err)?;
    check_shapes(&head).map_err(|problem| HeadError::Inconsistent {
        path: path.to_path_buf(),
        problem,
    })?;
    Ok(head)
}

fn check_shapes(head: &Head) -> Result<(), String> {
    let (classes, dim) = (head.labels.len(), head.backbone.embedding_dim);
    if classes < 2 {
        return Err(format!("{classes} labels; a head needs at least 2"));
    }
    let rows: Vec<&Vec<f32>> = match &head.classifier {
        Classifier::Logistic { scaler, model } => {
            if scaler.dim() != dim || scaler.std.len() != dim {
                return Err(format!(
                    "scaler width {} != embedding width {dim}",
                    scaler.dim()
                ));
            }
            if model.bias.len() != classes {
                return Err(format!("{} biases for {classes} labels", model.bias.len()));
            }
            model.weights.iter().collect()
        }
        Classifier::Centroid { model } => model.centroids.iter().collect(),
    };
    if rows.len() != classes || rows.iter().any(|r| r.len() != dim) {
        return Err(format!("weights are not {classes} rows of {dim}"));
    }
    Ok(())
}

/// The first 12 characters of a hash for messages; by characters, since a damaged head file
/// may hold any text there.
fn short_hash(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// Refuses a head trained on a different backbone than `model`.
pub fn check_backbone(head: &Head, model: &ResolvedModel, path: &Path) -> Result<(), HeadError> {
    if head.backbone.sha256 != model.sha256 {
        return Err(HeadError::BackboneMismatch {
            path: path.to_path_buf(),
            head_model: head.backbone.name.clone(),
            head_sha: short_hash(&head.backbone.sha256),
            model: model.manifest.name.clone(),
            model_sha: short_hash(&model.sha256),
        });
    }
    Ok(())
}
