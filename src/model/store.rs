//! Where model files live and how a `--model` argument becomes a checked file (`models pull`
//! installs them: [`super::pull`]).
//!
//! Lookup order for a model name ([`ModelDirs`]): the folders the commands were given
//! (`$EDGE_TL_MODELS`, a folder or several separated by `:`), then the user data folder (`$XDG_DATA_HOME/edge-tl/models`, usually
//! `~/.local/share/edge-tl/models`), then the service's `/var/lib/edge-tl/models`.
//! A `--model` that is a path to an `.onnx` or `.toml` file is used as it is.
//! Every file is hashed on load and refused when its sha256 differs from its manifest.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::ModelError;
use crate::model::kernels::Kernels;
use crate::model::manifest::{Manifest, BUILTIN_LABELS, DEFAULT_MODEL};

/// Folder of the systemd service's models.
pub const SERVICE_MODELS_DIR: &str = "/var/lib/edge-tl/models";

/// A model whose file was found and checked against its manifest.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub manifest: Manifest,
    /// The ONNX file.
    pub path: PathBuf,
    /// Its sha256, as checked.
    pub sha256: String,
    /// The backbone classifier's labels, when the manifest has logits.
    pub labels: Option<Vec<String>>,
    /// Whose kernels run it (the best this CPU has, [`Kernels::default`], unless the caller
    /// chooses otherwise).
    pub kernels: Kernels,
}

/// Folders searched for model files, in order: the ones the user named (`$EDGE_TL_MODELS`,
/// read by the commands), then the user data folder, then the service's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDirs(Vec<PathBuf>);

impl ModelDirs {
    /// `first` (in order), then the user's and the service's folders.
    pub fn new(first: impl IntoIterator<Item = PathBuf>) -> ModelDirs {
        let mut dirs: Vec<PathBuf> = first
            .into_iter()
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        dirs.extend(user_models_dir());
        dirs.push(PathBuf::from(SERVICE_MODELS_DIR));
        ModelDirs(dirs)
    }

    /// The folders, in search order.
    pub fn search(&self) -> &[PathBuf] {
        &self.0
    }

    /// Where `models pull` installs: the first folder.
    pub fn install_dir(&self) -> PathBuf {
        self.0
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from(SERVICE_MODELS_DIR))
    }

    /// Where the file of a named model is installed, if anywhere (not hashed).
    pub fn find_installed(&self, manifest: &Manifest) -> Option<PathBuf> {
        self.0
            .iter()
            .map(|d| d.join(&manifest.file))
            .find(|p| p.is_file())
    }
}

/// `$XDG_DATA_HOME/edge-tl/models` (or the platform's equivalent).
pub fn user_models_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "edge-tl").map(|p| p.data_dir().join("models"))
}

/// Finds the built-in manifest with this name.
pub fn manifest_by_name(name: &str) -> Result<Manifest, ModelError> {
    let all = Manifest::builtin();
    all.iter()
        .find(|m| m.name == name)
        .cloned()
        .ok_or_else(|| ModelError::Unknown {
            name: name.to_string(),
            known: all
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Turns a `--model` argument (name, `.onnx` path or manifest path; `None` = default) into a
/// checked model; names are looked up in `dirs`.
pub fn resolve(spec: Option<&str>, dirs: &ModelDirs) -> Result<ResolvedModel, ModelError> {
    let spec = spec.unwrap_or(DEFAULT_MODEL);
    let as_path = Path::new(spec);
    let looks_like_path = spec.ends_with(".onnx") || spec.ends_with(".toml") || as_path.is_file();
    if !looks_like_path {
        let manifest = manifest_by_name(spec)?;
        let path = dirs
            .find_installed(&manifest)
            .ok_or_else(|| ModelError::NotInstalled {
                name: manifest.name.clone(),
                file: manifest.file.clone(),
                searched: dirs
                    .search()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        return checked(manifest, path);
    }
    if spec.ends_with(".toml") {
        let text = std::fs::read_to_string(as_path).map_err(|source| ModelError::Read {
            path: as_path.to_path_buf(),
            source,
        })?;
        let manifest = Manifest::parse(&text, spec)?;
        let dir = as_path.parent().unwrap_or(Path::new("."));
        let path = dir.join(&manifest.file);
        return checked(manifest, path);
    }
    let sidecar = as_path.with_extension("toml");
    if sidecar.is_file() {
        let text = std::fs::read_to_string(&sidecar).map_err(|source| ModelError::Read {
            path: sidecar.clone(),
            source,
        })?;
        let manifest = Manifest::parse(&text, &sidecar.display().to_string())?;
        return checked(manifest, as_path.to_path_buf());
    }
    let sha256 = sha256_file(as_path).map_err(|source| ModelError::Read {
        path: as_path.to_path_buf(),
        source,
    })?;
    match Manifest::builtin().into_iter().find(|m| m.sha256 == sha256) {
        Some(manifest) => finish(manifest, as_path.to_path_buf(), sha256),
        None => Err(ModelError::NoManifestForFile {
            path: as_path.to_path_buf(),
            sha256,
            sidecar,
        }),
    }
}

/// Hashes `path` and refuses it unless it matches the manifest.
fn checked(manifest: Manifest, path: PathBuf) -> Result<ResolvedModel, ModelError> {
    let sha256 = sha256_file(&path).map_err(|source| ModelError::Read {
        path: path.clone(),
        source,
    })?;
    if sha256 != manifest.sha256 {
        return Err(ModelError::HashMismatch {
            path,
            name: manifest.name.clone(),
            expected: manifest.sha256.clone(),
            actual: sha256,
        });
    }
    finish(manifest, path, sha256)
}

/// The model of a file whose sha256 the caller has just computed and put in `manifest` (a
/// manifest made from the file itself, as `models import` does); loads its labels.
pub fn finish(
    manifest: Manifest,
    path: PathBuf,
    sha256: String,
) -> Result<ResolvedModel, ModelError> {
    let labels = match &manifest.logits {
        None => None,
        Some(logits) => Some(load_labels(&manifest.name, &logits.labels, &path)?),
    };
    Ok(ResolvedModel {
        manifest,
        path,
        sha256,
        labels,
        kernels: Kernels::default(),
    })
}

/// Labels from the model's folder, else the compiled-in copy of that file.
fn load_labels(name: &str, file: &str, model_path: &Path) -> Result<Vec<String>, ModelError> {
    let beside = model_path.parent().map(|d| d.join(file));
    let text = match beside.filter(|p| p.is_file()) {
        Some(p) => {
            std::fs::read_to_string(&p).map_err(|source| ModelError::Read { path: p, source })?
        }
        None => BUILTIN_LABELS
            .iter()
            .find(|(n, _)| *n == file)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| ModelError::InvalidManifest {
                origin: name.to_string(),
                problem: format!(
                    "labels file {file} is neither beside {} nor built in",
                    model_path.display()
                ),
            })?,
    };
    Ok(text.lines().map(str::to_string).collect())
}

/// Lower-case hex sha256 of a file, read in chunks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_known_models() {
        let err = resolve(Some("nope"), &ModelDirs::new([]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown model \"nope\""), "{err}");
        assert!(err.contains("mobilenet-v2-int8"), "{err}");
    }

    #[test]
    fn unknown_onnx_file_asks_for_a_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mine.onnx");
        std::fs::write(&p, b"not really onnx").unwrap();
        let err = resolve(Some(p.to_str().unwrap()), &ModelDirs::new([]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no manifest describes") && err.contains("mine.toml"),
            "{err}"
        );
    }
}
