//! Datasets in the ImageFolder layout: `<root>/<label>/<picture>`, the label is the folder
//! name, hidden files and folders are ignored, pictures are recognised by content. Walking a
//! dataset reads no pixels; [`embed`] turns it into embeddings, through the cache.

pub mod cache;
pub mod capture;
pub mod embed;
pub mod samples;

pub use crate::folder::visible_entries;
use std::path::{Path, PathBuf};

use crate::error::DatasetError;

pub use embed::{embed_dataset, EmbedOptions, EmbeddedSet, Sample};

/// A walked dataset: labels in name order and every candidate picture.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
    /// Label names, sorted.
    pub labels: Vec<String>,
    /// Pictures, sorted by label then file name.
    pub items: Vec<Item>,
}

/// One candidate picture (not yet decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub path: PathBuf,
    /// Index into [`Dataset::labels`].
    pub label: usize,
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    visible_entries(dir).map_err(|source| DatasetError::Read {
        path: dir.to_path_buf(),
        source,
    })
}

impl Dataset {
    /// Each of this dataset's labels as an index into `known` (matched by name), for testing
    /// a head or model trained on another folder; a label `known` lacks is an error naming it.
    pub fn label_indexes_in(&self, known: &[String]) -> Result<Vec<usize>, DatasetError> {
        self.labels
            .iter()
            .map(|l| {
                known
                    .iter()
                    .position(|k| k == l)
                    .ok_or_else(|| DatasetError::UnknownLabel {
                        path: self.root.join(l),
                        label: l.clone(),
                        known: known.join(", "),
                    })
            })
            .collect()
    }

    /// Decodes every picture: (label, frame) of the readable ones, and why the others are not.
    pub fn decode_all(
        &self,
    ) -> (
        Vec<(usize, crate::frame::Frame)>,
        Vec<crate::error::DecodeError>,
    ) {
        let mut decoded = Vec::new();
        let mut skipped = Vec::new();
        for item in &self.items {
            match crate::preprocess::decode_file(&item.path) {
                Ok(frame) => decoded.push((item.label, frame)),
                Err(e) => skipped.push(e),
            }
        }
        (decoded, skipped)
    }

    /// Walks `root`. Label folders without pictures are kept (training reports them).
    pub fn open(root: &Path) -> Result<Dataset, DatasetError> {
        let mut labels = Vec::new();
        let mut items = Vec::new();
        for dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
            let label = dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let ix = labels.len();
            labels.push(label);
            for path in sorted_entries(&dir)?.into_iter().filter(|p| p.is_file()) {
                items.push(Item { path, label: ix });
            }
        }
        if labels.is_empty() {
            return Err(DatasetError::NoLabels {
                path: root.to_path_buf(),
            });
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            labels,
            items,
        })
    }

    /// Number of pictures per label, in label order.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.labels.len()];
        for item in &self.items {
            counts[item.label] += 1;
        }
        counts
    }
}

/// Checks a label given by a user (capture, web page): it becomes a folder name.
pub fn validate_label(label: &str) -> Result<(), DatasetError> {
    let problem = if label.trim().is_empty() {
        Some("a label must not be empty")
    } else if label.contains(['/', '\\']) {
        Some("a label must not contain path separators (/ or \\)")
    } else if label == "." || label == ".." {
        Some("a label must not be . or ..")
    } else if label.starts_with('.') {
        Some("a label must not start with a dot (hidden folders are ignored)")
    } else if label.chars().any(char::is_control) {
        Some("a label must not contain control characters")
    } else {
        None
    };
    match problem {
        Some(p) => Err(DatasetError::InvalidLabel {
            label: label.to_string(),
            problem: p.to_string(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_labels_in_order_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        for (label, file) in [
            ("dog", "b.jpg"),
            ("cat", "a.jpg"),
            ("cat", ".hidden.jpg"),
            (".cache", "x"),
        ] {
            std::fs::create_dir_all(dir.path().join(label)).unwrap();
            std::fs::write(dir.path().join(label).join(file), b"x").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        std::fs::write(dir.path().join("labels.csv"), b"x").unwrap();
        let ds = Dataset::open(dir.path()).unwrap();
        assert_eq!(ds.labels, ["cat", "dog", "empty"]);
        assert_eq!(ds.counts(), [1, 1, 0]);
        assert!(ds.items[0].path.ends_with("cat/a.jpg"));
    }

    #[test]
    fn no_label_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Dataset::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no label folders"), "{err}");
    }

    #[test]
    fn labels_are_validated() {
        for bad in ["", "  ", "a/b", "..", ".x", "a\\b", "a\nb"] {
            assert!(validate_label(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["cat", "Golden Retriever", "señal-1"] {
            validate_label(good).unwrap();
        }
    }
}
