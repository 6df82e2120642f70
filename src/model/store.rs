//! Where model files live, how a `--model` argument becomes a checked file, and `models pull`.
//!
//! Lookup order for a model name ([`ModelDirs`]): the folders the commands were given
//! (`$EDGE_TL_MODELS`, a folder or several separated by `:`), then the user data folder (`$XDG_DATA_HOME/edge-tl/models`, usually
//! `~/.local/share/edge-tl/models`), then the service's `/var/lib/edge-tl/models`.
//! A `--model` that is a path to an `.onnx` or `.toml` file is used as it is.
//! Every file is hashed on load and refused when its sha256 differs from its manifest.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{ModelError, StoreError};
use crate::model::kernels::Kernels;
use crate::model::manifest::{Manifest, BUILTIN_LABELS, DEFAULT_MODEL};
use crate::progress::Progress;

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
    /// Whose kernels run it ([`Kernels::Fused`] unless the caller chooses otherwise).
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

fn finish(manifest: Manifest, path: PathBuf, sha256: String) -> Result<ResolvedModel, ModelError> {
    let labels = match &manifest.logits {
        None => None,
        Some(logits) => Some(load_labels(&manifest.name, &logits.labels, &path)?),
    };
    Ok(ResolvedModel {
        manifest,
        path,
        sha256,
        labels,
        kernels: Kernels::Fused,
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

/// Installs the model file of `manifest` into `dest_dir`, from `from` (an `http(s)://` address
/// or a local file) or else from the manifest's own addresses. The bytes go to a temporary file
/// in `dest_dir`, are hashed on the way, and only a file with the right sha256 is renamed into
/// place: an interrupted or wrong download leaves nothing behind.
pub fn pull(
    manifest: &Manifest,
    from: Option<&str>,
    dest_dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf, StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    std::fs::create_dir_all(dest_dir).map_err(io(dest_dir))?;
    let sources: Vec<String> = match from {
        Some(f) => vec![f.to_string()],
        None if manifest.urls.is_empty() => {
            return Err(StoreError::NoUrl {
                name: manifest.name.clone(),
            })
        }
        None => manifest.urls.clone(),
    };
    let mut last_err = None;
    for source in &sources {
        let mut tmp = tempfile::Builder::new()
            .prefix(".pull-")
            .suffix(".part")
            .tempfile_in(dest_dir)
            .map_err(io(dest_dir))?;
        let result = if source.starts_with("http://") || source.starts_with("https://") {
            download(source, manifest.bytes, tmp.as_file_mut(), progress)
        } else {
            copy_local(Path::new(source), tmp.as_file_mut(), progress)
        };
        let sha256 = match result {
            Ok(sha) => sha,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        if sha256 != manifest.sha256 {
            last_err = Some(StoreError::HashMismatch {
                from: source.clone(),
                name: manifest.name.clone(),
                expected: manifest.sha256.clone(),
                actual: sha256,
            });
            continue;
        }
        tmp.as_file().sync_all().map_err(io(tmp.path()))?;
        let dest = dest_dir.join(&manifest.file);
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        progress.finish();
        return Ok(dest);
    }
    progress.finish();
    Err(last_err.expect("at least one source was tried"))
}

/// Streams `url` into `out`, returning the sha256 of what arrived.
fn download(
    url: &str,
    expected_len: Option<u64>,
    out: &mut File,
    progress: &dyn Progress,
) -> Result<String, StoreError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(std::time::Duration::from_secs(20)))
        .timeout_recv_body(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| StoreError::Http {
        url: url.to_string(),
        source: Box::new(e),
    })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(StoreError::Status {
            url: url.to_string(),
            status,
        });
    }
    let body = response.body_mut();
    let announced = body.content_length().or(expected_len);
    if let Some(len) = announced {
        progress.set_total(len);
    }
    let mut reader = body.with_config().limit(u64::MAX).reader();
    let mut got = 0;
    let sha =
        copy_hashing(&mut reader, out, progress, &mut got).map_err(|e| StoreError::Incomplete {
            url: url.to_string(),
            got,
            expected: format!(" ({e})"),
        })?;
    if let Some(len) = body_len_check(announced, got) {
        return Err(StoreError::Incomplete {
            url: url.to_string(),
            got,
            expected: format!(" of {len}"),
        });
    }
    Ok(sha)
}

/// `Some(expected)` when fewer bytes arrived than announced.
fn body_len_check(announced: Option<u64>, got: u64) -> Option<u64> {
    announced.filter(|&len| got < len)
}

fn copy_local(path: &Path, out: &mut File, progress: &dyn Progress) -> Result<String, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    if let Ok(meta) = file.metadata() {
        progress.set_total(meta.len());
    }
    copy_hashing(&mut file, out, progress, &mut 0).map_err(io)
}

/// Copies everything, hashing it and counting the bytes in `copied` (also when it fails);
/// returns the sha256 in hex.
fn copy_hashing(
    src: &mut impl Read,
    out: &mut File,
    progress: &dyn Progress,
    copied: &mut u64,
) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        *copied += n as u64;
        progress.advance(n as u64);
    }
    out.flush()?;
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

    #[test]
    fn local_pull_checks_hash_and_leaves_nothing_on_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"hello").unwrap();
        let mut m = Manifest::builtin().remove(0);
        let dest = dir.path().join("models");
        let err = pull(
            &m,
            Some(src.to_str().unwrap()),
            &dest,
            &crate::progress::Silent,
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
        m.sha256 = sha256_file(&src).unwrap();
        let path = pull(
            &m,
            Some(src.to_str().unwrap()),
            &dest,
            &crate::progress::Silent,
        )
        .unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    }

    #[test]
    fn short_body_is_detected() {
        assert_eq!(body_len_check(Some(10), 4), Some(10));
        assert_eq!(body_len_check(Some(10), 10), None);
        assert_eq!(body_len_check(None, 4), None);
    }
}
