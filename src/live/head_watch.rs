//! Noticing that the head file was replaced (by `edge-tl train` writing a new one, which is
//! an atomic rename) so the camera loop can swap it in without a restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::HeadError;
use crate::head::{file as head_file, Head};

/// What identifies one version of the file: modification time and length (and inode, which
/// a rename always changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn version(path: &Path) -> Option<Version> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Version {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// Polls a head file for new versions.
#[derive(Debug)]
pub struct HeadWatcher {
    path: PathBuf,
    seen: Option<Version>,
    every: Duration,
    last_check: Instant,
}

impl HeadWatcher {
    /// Watches `path`, taking its current version as the one already loaded. Checks at most
    /// every `every`.
    pub fn new(path: &Path, every: Duration) -> Self {
        HeadWatcher {
            path: path.to_path_buf(),
            seen: version(path),
            every,
            last_check: Instant::now(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new version of the head, loaded, if the file changed since the last call. A file
    /// that cannot be loaded is returned as the error once (then not again until it changes).
    pub fn poll(&mut self) -> Option<Result<Head, HeadError>> {
        if self.last_check.elapsed() < self.every {
            return None;
        }
        self.last_check = Instant::now();
        let now = version(&self.path)?;
        if self.seen == Some(now) {
            return None;
        }
        self.seen = Some(now);
        Some(head_file::load(&self.path))
    }
}
