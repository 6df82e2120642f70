//! Managing the pictures of one label folder from the page: list them, show one, delete or
//! move some to another label. Requests name a label and file names; both are checked to be a
//! label folder and a plain visible file in it, so no request reaches a file outside the
//! dataset (a name with a separator, `..` or a leading dot is refused before any file access).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::capture::{label_dir, CaptureError};
use super::{validate_label, visible_entries};
use crate::error::DatasetError;

/// A picture of a label folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleFile {
    pub name: String,
    pub bytes: u64,
}

/// Why a request on samples failed.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error(transparent)]
    Label(#[from] DatasetError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("{name:?} is not a file name (no separators, no leading dot)")]
    BadName { name: String },
    #[error("{}: no such picture", path.display())]
    Missing { path: PathBuf },
    #[error("the pictures are already under {label:?}: choose another label to move them to")]
    SameLabel { label: String },
    #[error("{}: cannot {what}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A label folder's pictures (visible regular files), by name.
pub fn list(data: &Path, label: &str) -> Result<Vec<SampleFile>, SampleError> {
    validate_label(label)?;
    let dir = data.join(label);
    let Ok(entries) = visible_entries(&dir) else {
        return Ok(Vec::new());
    };
    Ok(entries
        .into_iter()
        .filter_map(|p| {
            let meta = std::fs::metadata(&p).ok().filter(|m| m.is_file())?;
            Some(SampleFile {
                name: p.file_name()?.to_string_lossy().into_owned(),
                bytes: meta.len(),
            })
        })
        .collect())
}

/// The path of picture `name` of `label`, checked to be a file there.
pub fn path_of(data: &Path, label: &str, name: &str) -> Result<PathBuf, SampleError> {
    validate_label(label)?;
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control);
    if bad {
        return Err(SampleError::BadName { name: name.into() });
    }
    let path = data.join(label).join(name);
    if !path.is_file() {
        return Err(SampleError::Missing { path });
    }
    Ok(path)
}

/// The paths of `names` of `label`, each checked, each once.
fn paths_of(data: &Path, label: &str, names: &[String]) -> Result<Vec<PathBuf>, SampleError> {
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .map(|n| path_of(data, label, n))
        .collect()
}

/// A label folder left empty goes, so training does not stop at an empty label (fails, and
/// is left alone, when anything is still in it).
fn drop_if_empty(data: &Path, label: &str) {
    let _ = std::fs::remove_dir(data.join(label));
}

/// Deletes pictures of `label`; returns how many went. Every name is checked before the first
/// is removed, so a bad name removes nothing; a folder left empty goes.
pub fn delete(data: &Path, label: &str, names: &[String]) -> Result<usize, SampleError> {
    let paths = paths_of(data, label, names)?;
    for path in &paths {
        std::fs::remove_file(path).map_err(|source| SampleError::Io {
            what: "delete",
            path: path.clone(),
            source,
        })?;
    }
    drop_if_empty(data, label);
    Ok(paths.len())
}

/// Moves pictures of `label` into `to` (created), never replacing a file there; returns their
/// new names. Every name is checked before the first is moved.
pub fn relabel(
    data: &Path,
    label: &str,
    names: &[String],
    to: &str,
) -> Result<Vec<String>, SampleError> {
    let paths = paths_of(data, label, names)?;
    if to == label {
        return Err(SampleError::SameLabel { label: to.into() });
    }
    let dir = label_dir(data, to)?;
    let mut moved = Vec::new();
    for path in &paths {
        let file = Path::new(path.file_name().unwrap_or_default());
        let stem = file.file_stem().unwrap_or_default().to_string_lossy();
        let ext = file.extension().unwrap_or_default().to_string_lossy();
        let new =
            crate::atomic_file::move_noclobber(path, &dir, &stem, &ext).map_err(|source| {
                SampleError::Io {
                    what: "move",
                    path: path.clone(),
                    source,
                }
            })?;
        moved.push(new.file_name().unwrap_or_default().to_string_lossy().into());
    }
    drop_if_empty(data, label);
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_moves_and_deletes_only_inside_the_label_folder() {
        let data = tempfile::tempdir().unwrap();
        let d = data.path();
        std::fs::create_dir_all(d.join("cat")).unwrap();
        std::fs::create_dir_all(d.join("dog")).unwrap();
        for n in ["a.jpg", "b.jpg", ".hidden.jpg"] {
            std::fs::write(d.join("cat").join(n), n).unwrap();
        }
        std::fs::write(d.join("dog/a.jpg"), "dog a").unwrap();
        std::fs::write(d.join("secret.txt"), "no").unwrap();
        let names =
            |l: &str| -> Vec<String> { list(d, l).unwrap().into_iter().map(|s| s.name).collect() };
        assert_eq!(names("cat"), ["a.jpg", "b.jpg"]);
        assert_eq!(list(d, "cat").unwrap()[0].bytes, 5);
        assert!(names("bird").is_empty());

        for bad in ["../secret.txt", ".hidden.jpg", "", "a/b"] {
            assert!(
                matches!(path_of(d, "cat", bad), Err(SampleError::BadName { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            path_of(d, "..", "secret.txt"),
            Err(SampleError::Label(_))
        ));
        assert!(matches!(
            path_of(d, "cat", "c.jpg"),
            Err(SampleError::Missing { .. })
        ));

        // One bad name: nothing moves.
        assert!(relabel(d, "cat", &["a.jpg".into(), "nope.jpg".into()], "dog").is_err());
        assert_eq!(names("cat"), ["a.jpg", "b.jpg"]);
        let moved = relabel(d, "cat", &["a.jpg".into()], "dog").unwrap();
        assert_eq!(moved, ["a-1.jpg"], "dog's own a.jpg stays");
        assert_eq!(
            std::fs::read_to_string(d.join("dog/a.jpg")).unwrap(),
            "dog a"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("dog/a-1.jpg")).unwrap(),
            "a.jpg"
        );
        assert!(matches!(
            relabel(d, "cat", &["b.jpg".into()], "cat"),
            Err(SampleError::SameLabel { .. })
        ));
        // A name twice is one picture.
        assert_eq!(
            delete(d, "cat", &["b.jpg".into(), "b.jpg".into()]).unwrap(),
            1
        );
        assert!(names("cat").is_empty());
        assert!(d.join("cat").exists(), "its hidden file keeps the folder");
        std::fs::remove_file(d.join("cat/.hidden.jpg")).unwrap();
        assert_eq!(
            relabel(d, "dog", &["a.jpg".into(), "a-1.jpg".into()], "cat")
                .unwrap()
                .len(),
            2
        );
        assert!(!d.join("dog").exists(), "a label folder left empty goes");
        assert!(d.join("secret.txt").exists());
    }
}
