//! `dir:FOLDER`: the pictures of a folder in name order, as frames. Replays a capture session
//! or a test set through the camera loop exactly as a camera would deliver it.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{FrameData, FrameSource, RawFrame, SourceError};

pub struct DirSource {
    root: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    looping: bool,
    index: u64,
}

impl DirSource {
    pub fn open(root: &Path, looping: bool) -> Result<DirSource, SourceError> {
        let files: Vec<PathBuf> = crate::dataset::visible_entries(root)
            .map_err(|source| SourceError::Io {
                path: root.to_path_buf(),
                source,
            })?
            .into_iter()
            .filter(|p| p.is_file())
            .collect();
        if files.is_empty() {
            return Err(SourceError::EmptyFolder {
                path: root.to_path_buf(),
            });
        }
        Ok(DirSource {
            root: root.to_path_buf(),
            files,
            next: 0,
            looping,
            index: 0,
        })
    }
}

impl FrameSource for DirSource {
    fn next_frame(&mut self) -> Result<Option<RawFrame>, SourceError> {
        if self.next == self.files.len() {
            if !self.looping {
                return Ok(None);
            }
            self.next = 0;
        }
        let path = &self.files[self.next];
        self.next += 1;
        // An unreadable file becomes an empty frame, so the decoder reports it by name and
        // the replay goes on, as `predict` does.
        let bytes = std::fs::read(path).unwrap_or_else(|e| {
            log::warn!("{}: {e}", path.display());
            Vec::new()
        });
        let index = self.index;
        self.index += 1;
        Ok(Some(RawFrame {
            index,
            captured: SystemTime::now(),
            name: Some(path.display().to_string()),
            data: FrameData::Encoded(bytes),
        }))
    }

    fn is_live(&self) -> bool {
        false
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} pictures in {}", self.files.len(), self.root.display())
    }
}
