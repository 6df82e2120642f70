//! The head file: JSON with a format tag and version, the labels, the backbone (name + sha256 +
//! preprocessing), and the classifier. Written to a temporary file in the same folder and
//! renamed, so a crash or a full disk never leaves a half-written head where a running camera
//! loop would pick it up. The same checks run on save and on load, so a head that would
//! predict NaN or name two classes alike is neither written nor used.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Classifier, Head};
use crate::error::HeadError;
use crate::model::store::ResolvedModel;

/// Value of the `format` field.
pub const FORMAT: &str = "edge-tl-head";
/// Version written by this edge-tl for a head of the whole frame; read back, like
/// [`REGION_VERSION`]. Other versions are refused with a message.
pub const VERSION: u32 = 1;
/// Version written for a head taught on a region of the frame: an edge-tl that knows no
/// regions refuses it rather than classify the whole frame with it.
pub const REGION_VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Envelope<H> {
    format: String,
    version: u32,
    head: H,
}

/// Writes `head` to `path` atomically (see [`crate::atomic_file`] for names and modes). A head
/// that [`load`] would refuse is refused here, before anything is written, so training can
/// never leave a head that `predict` or a running loop cannot use.
pub fn save(head: &Head, path: &Path) -> Result<(), HeadError> {
    check_head(head).map_err(|problem| HeadError::Inconsistent {
        path: path.to_path_buf(),
        problem,
    })?;
    let write_err = |source| HeadError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(crate::atomic_file::parent_dir(path)).map_err(write_err)?;
    let envelope = Envelope {
        format: FORMAT.to_string(),
        version: if head.region.is_some() {
            REGION_VERSION
        } else {
            VERSION
        },
        head,
    };
    crate::atomic_file::write_with(path, |w| {
        serde_json::to_writer(&mut *w, &envelope).map_err(std::io::Error::other)?;
        w.write_all(b"\n")?;
        // On disk before the rename: a running loop swaps in a head as soon as it sees one.
        w.flush()?;
        w.get_ref().sync_all()
    })
    .map_err(write_err)
}

/// Reads and checks a head file (shapes, finite numbers, distinct labels); `predict`, `eval`,
/// `run` and the hot swap of a running loop ([`crate::live::head_watch`]) all load through here.
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
    if envelope.version != VERSION && envelope.version != REGION_VERSION {
        return Err(HeadError::Version {
            path: path.to_path_buf(),
            found: envelope.version,
            supported: REGION_VERSION,
        });
    }
    let head: Head = serde_json::from_value(envelope.head).map_err(parse_err)?;
    if head.region.is_some() != (envelope.version == REGION_VERSION) {
        return Err(HeadError::Inconsistent {
            path: path.to_path_buf(),
            problem: format!(
                "version {} with{} a region (a region is in version {REGION_VERSION} only)",
                envelope.version,
                if head.region.is_some() { "" } else { "out" }
            ),
        });
    }
    check_head(&head).map_err(|problem| HeadError::Inconsistent {
        path: path.to_path_buf(),
        problem,
    })?;
    Ok(head)
}

/// Why a head would predict nonsense, naming the field: the shapes must agree with the labels
/// and the embedding width; every number must be finite (JSON has no infinity: serde_json
/// writes one as `null`, which no head can be read from, and reads `1e39` as an f32 infinity,
/// which makes every probability NaN); a spread must not be negative (0 is a constant
/// dimension, which the scaler maps to 0); and labels must be non-empty and distinct (two
/// classes under one name cannot be told apart in any result).
fn check_head(head: &Head) -> Result<(), String> {
    let (classes, dim) = (head.labels.len(), head.backbone.embedding_dim);
    if classes < 2 {
        return Err(format!("{classes} labels; a head needs at least 2"));
    }
    for (i, label) in head.labels.iter().enumerate() {
        if label.trim().is_empty() {
            return Err(format!("labels[{i}] is empty"));
        }
        if let Some(j) = head.labels[..i].iter().position(|l| l == label) {
            return Err(format!(
                "label {label:?} appears twice (labels[{j}] and labels[{i}])"
            ));
        }
    }
    if dim == 0 {
        return Err("the embedding width is 0".to_string());
    }
    if let Some(r) = &head.region {
        r.check().map_err(|e| format!("region {e}"))?;
    }
    match &head.classifier {
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
            check_rows("weights", &model.weights, classes, dim)?;
            check_finite("bias", &model.bias)?;
            check_finite("scaler.mean", &scaler.mean)?;
            check_finite("scaler.std", &scaler.std)?;
            if let Some(i) = scaler.std.iter().position(|&s| s < 0.0) {
                return Err(format!(
                    "scaler.std[{i}] is {}; a spread is never negative",
                    scaler.std[i]
                ));
            }
        }
        Classifier::Centroid { model } => {
            check_rows("centroids", &model.centroids, classes, dim)?;
            let t = model.temperature;
            if !(t.is_finite() && t > 0.0) {
                return Err(format!("temperature is {t}; it must be a positive number"));
            }
        }
    }
    Ok(())
}

/// `classes` rows of `dim` finite numbers.
fn check_rows(field: &str, rows: &[Vec<f32>], classes: usize, dim: usize) -> Result<(), String> {
    if rows.len() != classes || rows.iter().any(|r| r.len() != dim) {
        return Err(format!("{field} are not {classes} rows of {dim}"));
    }
    for (i, row) in rows.iter().enumerate() {
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(format!("{field}[{i}][{j}] is {}", row[j]));
        }
    }
    Ok(())
}

/// Every number finite.
fn check_finite(field: &str, values: &[f32]) -> Result<(), String> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(format!("{field}[{i}] is {}", values[i])),
        None => Ok(()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic_file::{test_leftovers, test_umask};
    use crate::head::{CentroidModel, LinearModel, Scaler};
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn head_with(classifier: Classifier) -> Head {
        crate::head::test_head(["cat", "dog"], classifier)
    }

    /// A good logistic head; a std of 0 (a constant dimension) is fine.
    fn head() -> Head {
        head_with(Classifier::Logistic {
            scaler: Scaler {
                mean: vec![0.1, 1.0, 1.0],
                std: vec![0.5, 2.0, 0.0],
            },
            model: LinearModel {
                weights: vec![vec![1.0, -2.0, 3.0], vec![0.5, 0.25, -1.0]],
                bias: vec![0.1, -0.2],
                alpha: 1.0,
                solver: crate::head::logistic::Solver::Lbfgs,
            },
        })
    }

    fn centroid_head() -> Head {
        head_with(Classifier::Centroid {
            model: CentroidModel::fit(&[vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 1.0]], &[0, 1], 2),
        })
    }

    /// Saves `good` as `dir/name`, then changes the head in its JSON with `edit` and writes it
    /// back as it is, the way a damaged or hand-made file would look.
    fn edited(
        dir: &Path,
        name: &str,
        good: Head,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> PathBuf {
        let path = dir.join(name);
        save(&good, &path).unwrap();
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut v["head"]);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        path
    }

    fn refused(path: &Path, problem: &str) {
        let err = load(path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}: the head is inconsistent: {problem}", path.display())
        );
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn non_finite_or_inconsistent_heads_are_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = edited(d, "good.head", head(), |_| {});
        assert_eq!(load(&good).unwrap(), head());
        // 1e39 is a valid JSON number that overflows an f32 to infinity.
        let p = edited(d, "w.head", head(), |h| {
            h["classifier"]["model"]["weights"][1][2] = serde_json::json!(1e39)
        });
        refused(&p, "weights[1][2] is inf");
        let p = edited(d, "b.head", head(), |h| {
            h["classifier"]["model"]["bias"][0] = serde_json::json!(1e39)
        });
        refused(&p, "bias[0] is inf");
        let p = edited(d, "m.head", head(), |h| {
            h["classifier"]["scaler"]["mean"][2] = serde_json::json!(-1e40)
        });
        refused(&p, "scaler.mean[2] is -inf");
        let p = edited(d, "s.head", head(), |h| {
            h["classifier"]["scaler"]["std"][1] = serde_json::json!(1e39)
        });
        refused(&p, "scaler.std[1] is inf");
        let p = edited(d, "n.head", head(), |h| {
            h["classifier"]["scaler"]["std"][0] = serde_json::json!(-0.5)
        });
        refused(&p, "scaler.std[0] is -0.5; a spread is never negative");
        let p = edited(d, "c.head", centroid_head(), |h| {
            h["classifier"]["model"]["centroids"][0][1] = serde_json::json!(1e39)
        });
        refused(&p, "centroids[0][1] is inf");
        let p = edited(d, "t.head", centroid_head(), |h| {
            h["classifier"]["model"]["temperature"] = serde_json::json!(-1.0)
        });
        refused(&p, "temperature is -1; it must be a positive number");
        let p = edited(d, "l.head", head(), |h| {
            h["labels"] = serde_json::json!(["cat", "cat"])
        });
        refused(&p, "label \"cat\" appears twice (labels[0] and labels[1])");
        let p = edited(d, "e.head", head(), |h| {
            h["labels"] = serde_json::json!(["cat", " "])
        });
        refused(&p, "labels[1] is empty");
    }

    #[test]
    fn a_head_with_a_region_is_a_version_2_file_and_its_region_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let region: crate::region::Region = "0.5,0.25,0.4,0.5".parse().unwrap();
        let with = Head {
            region: Some(region),
            ..head()
        };
        let p = d.join("r.head");
        save(&with, &p).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["version"], 2);
        assert_eq!(load(&p).unwrap(), with);
        // Without a region: version 1, as before regions, and no `region` key.
        let p = d.join("plain.head");
        save(&head(), &p).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["version"], 1);
        assert!(v["head"].get("region").is_none());
        let p = edited(d, "past.head", with.clone(), |h| {
            h["region"]["w"] = serde_json::json!(0.9)
        });
        refused(
            &p,
            "region 0.5,0.25,0.9,0.5: the region reaches past the frame (x + w and y + h must be at most 1)",
        );
        // A region in a version-1 file (which an edge-tl without regions would ignore).
        let p = d.join("v1.head");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("r.head")).unwrap()).unwrap();
        v["version"] = serde_json::json!(1);
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        refused(
            &p,
            "version 1 with a region (a region is in version 2 only)",
        );
        v["version"] = serde_json::json!(3);
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(load(&p).unwrap_err().to_string().contains(
            "head format version 3 is not supported (this edge-tl reads versions 1 to 2)"
        ));
    }

    #[test]
    fn heads_that_would_predict_nonsense_are_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.head");
        let mut nan_std = head();
        if let Classifier::Logistic { scaler, .. } = &mut nan_std.classifier {
            scaler.std[1] = f32::NAN;
        }
        let err = save(&nan_std, &path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: the head is inconsistent: scaler.std[1] is NaN",
                path.display()
            )
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "neither the head nor a temporary file is written"
        );

        // A good head is replaced by neither an infinite one nor one with a label twice.
        save(&head(), &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let mut inf = head();
        if let Classifier::Logistic { model, .. } = &mut inf.classifier {
            model.weights[1][2] = f32::INFINITY;
        }
        let err = save(&inf, &path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: the head is inconsistent: weights[1][2] is inf",
                path.display()
            )
        );
        let mut twice = head();
        twice.labels = vec!["cat".into(), "cat".into()];
        let err = save(&twice, &path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: the head is inconsistent: label \"cat\" appears twice (labels[0] and labels[1])",
                path.display()
            )
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn saving_follows_the_umask_keeps_a_replaced_mode_and_cleans_dead_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let [dead, live, fresh] = test_leftovers::plant(dir.path());
        let path = dir.path().join("h.head");
        save(&head(), &path).unwrap();
        assert!(!dead.exists(), "a dead process's leftover is removed");
        assert!(live.exists(), "this process's temporary file is kept");
        assert!(fresh.exists(), "a recently changed file is kept");
        assert_eq!(mode(&path), 0o666 & !test_umask());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        save(&centroid_head(), &path).unwrap();
        assert_eq!(mode(&path), 0o640);
        assert_eq!(load(&path).unwrap(), centroid_head());
    }
}
