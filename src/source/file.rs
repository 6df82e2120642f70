//! `file:RECORDING`: a recorded MJPEG stream (multipart as IP cameras serve it, or JPEGs
//! simply concatenated, as `ffmpeg -c:v copy -f mjpeg` writes them).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::jpeg_stream::{JpegFrames, StreamError};
use super::{FrameData, FrameSource, RawFrame, SourceError};

pub struct RecordingSource {
    path: PathBuf,
    frames: JpegFrames<BufReader<File>>,
    looping: bool,
    index: u64,
    /// Frames read in the current pass (a loop over a recording with none would spin).
    in_pass: u64,
}

impl RecordingSource {
    pub fn open(path: &Path, looping: bool) -> Result<RecordingSource, SourceError> {
        Ok(RecordingSource {
            path: path.to_path_buf(),
            frames: Self::reader(path)?,
            looping,
            index: 0,
            in_pass: 0,
        })
    }

    fn reader(path: &Path) -> Result<JpegFrames<BufReader<File>>, SourceError> {
        let file = File::open(path).map_err(|source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(JpegFrames::new(BufReader::new(file)))
    }
}

impl FrameSource for RecordingSource {
    fn next_frame(&mut self) -> Result<Option<RawFrame>, SourceError> {
        loop {
            let frame = match self.frames.next_frame() {
                Ok(f) => f,
                Err(StreamError::Truncated(n)) => {
                    log::warn!(
                        "{}: the last frame is cut short ({n} bytes); ignored",
                        self.path.display()
                    );
                    None
                }
                Err(StreamError::Io(source)) => {
                    return Err(SourceError::Io {
                        path: self.path.clone(),
                        source,
                    })
                }
                Err(e) => {
                    return Err(SourceError::Io {
                        path: self.path.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })
                }
            };
            match frame {
                Some(bytes) => {
                    let index = self.index;
                    self.index += 1;
                    self.in_pass += 1;
                    return Ok(Some(RawFrame {
                        index,
                        captured: SystemTime::now(),
                        name: None,
                        data: FrameData::Encoded(bytes),
                    }));
                }
                None if self.in_pass == 0 => {
                    return Err(SourceError::EmptyRecording {
                        path: self.path.clone(),
                    })
                }
                None if self.looping => {
                    self.frames = Self::reader(&self.path)?;
                    self.in_pass = 0;
                }
                None => return Ok(None),
            }
        }
    }

    fn is_live(&self) -> bool {
        false
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("recording {}", self.path.display())
    }
}
