//! How edge-tl sees a folder of pictures: its entries that are not hidden, in name order. One
//! definition for datasets, folder replays (`dir:`) and capture counts, below both
//! [`crate::dataset`] and [`crate::source`].

use std::path::{Path, PathBuf};

/// A dot file or folder (`.edge-tl-cache`, `.DS_Store`, temporary files).
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// The entries of a folder that are not hidden, in name order: how datasets, folder replays
/// (`dir:`) and capture counts all see a folder.
pub fn visible_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !is_hidden(p))
        .collect();
    entries.sort();
    Ok(entries)
}
