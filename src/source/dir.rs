//! `dir:FOLDER`: the pictures of a folder in name order, as frames. Replays a capture session
//! or a test set through the camera loop exactly as a camera would deliver it.
//!
//! A looping replay of a folder in which nothing decodes would otherwise hand the loop the same
//! broken files thousands of times a second, each with its warning: after a whole pass without
//! a picture that decodes, the source says so once and waits before the next pass (1 s,
//! doubling to 30 s), until one decodes again. To know, a looping replay decodes its pictures
//! here too, but only until one has decoded; from then on only the loop does. The decisions
//! are in `Passes`; the reading and the waiting in `DirSource`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{FrameData, FrameSource, RawFrame, SourceError};
use crate::error::DecodeError;

/// The wait after the first pass over a looping folder in which nothing decoded; it doubles
/// with every such pass in a row, up to `MAX_WAIT`.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between passes over a folder in which nothing decodes: a picture fixed or
/// replaced there is replayed within this time.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub struct DirSource {
    root: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    looping: bool,
    index: u64,
    passes: Passes,
    /// Waits between passes in which nothing decoded; a parameter so tests do not sleep.
    sleep: Box<dyn FnMut(Duration) + Send>,
}

impl DirSource {
    pub fn open(root: &Path, looping: bool) -> Result<DirSource, SourceError> {
        let files: Vec<PathBuf> = crate::folder::visible_entries(root)
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
            passes: Passes::default(),
            sleep: Box::new(std::thread::sleep),
        })
    }

    /// The picture at `path` as a frame, or `None` when it is passed over: it cannot be read
    /// (said here with the reason, as no frame could carry it to the decoder), or, after a
    /// whole pass in which nothing decoded, it still does not decode (said already).
    fn take(&mut self, path: &Path) -> Option<RawFrame> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(source) => {
                let e = DecodeError::Read {
                    path: path.to_path_buf(),
                    source,
                };
                if self.passes.quiet() {
                    log::debug!("{}; frame skipped", crate::error::chain(&e));
                } else {
                    log::warn!("{}; frame skipped", crate::error::chain(&e));
                }
                self.passes.picture(false);
                return None;
            }
        };
        let frame = RawFrame {
            index: self.index,
            captured: SystemTime::now(),
            name: Some(path.display().to_string()),
            data: FrameData::Encoded(bytes),
        };
        // Only a looping replay needs to know, and only until a picture has decoded: then
        // the loop's own decoding is the only one.
        let check = self.looping && self.passes.checking();
        let decodes = !check || frame.decode().is_ok();
        if self.passes.picture(decodes) {
            log::warn!(
                "{} decodes; replaying {} again",
                path.display(),
                self.root.display()
            );
        }
        if !decodes && self.passes.quiet() {
            return None;
        }
        self.index += 1;
        Some(frame)
    }
}

impl FrameSource for DirSource {
    fn next_frame(&mut self) -> Result<Option<RawFrame>, SourceError> {
        loop {
            if self.next == self.files.len() {
                if !self.looping {
                    return Ok(None);
                }
                self.next = 0;
                if let PassEnd::Wait { wait, first } = self.passes.end_of_pass() {
                    if first {
                        log::warn!(
                            "{}: none of its {} pictures decode; waiting {} s before trying \
                             again (longer each time, up to {} s, until one decodes)",
                            self.root.display(),
                            self.files.len(),
                            wait.as_secs(),
                            MAX_WAIT.as_secs()
                        );
                    } else {
                        log::debug!(
                            "{}: still nothing decodes; waiting {} s",
                            self.root.display(),
                            wait.as_secs()
                        );
                    }
                    // Blocks the capture thread as a camera that delivers nothing would; a stop
                    // request does not wait for it (the feed leaves a busy capture thread).
                    (self.sleep)(wait);
                }
            }
            let path = self.files[self.next].clone();
            self.next += 1;
            if let Some(frame) = self.take(&path) {
                return Ok(Some(frame));
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
        format!("{} pictures in {}", self.files.len(), self.root.display())
    }
}

/// What a looping replay knows about its folder, pass by pass: the decisions behind the
/// backoff, without files or a clock, so they are tested directly.
#[derive(Debug, Default)]
struct Passes {
    /// A picture has decoded since the last pass in which none did: frames are handed over
    /// without decoding them here first.
    proven: bool,
    /// A picture decoded (or was handed over unchecked) in the current pass.
    decoded: bool,
    /// Passes in a row in which nothing decoded.
    failed: u32,
}

/// What to do when a pass over the folder is over.
#[derive(Debug, PartialEq)]
enum PassEnd {
    /// Something decoded: start the next pass at once.
    Again,
    /// Nothing decoded: wait this long first. `first` is the first such pass in a row, the
    /// one to tell about.
    Wait { wait: Duration, first: bool },
}

impl Passes {
    /// Whether a picture must be decoded here to know whether it decodes.
    fn checking(&self) -> bool {
        !self.proven
    }

    /// Whether problems have been told about already: after a pass in which nothing decoded,
    /// the same broken files are passed over without a word until one decodes.
    fn quiet(&self) -> bool {
        self.failed > 0
    }

    /// One picture of the pass: it was read and decodes (`true`), or not. True when it is the
    /// first to decode after passes in which none did.
    fn picture(&mut self, decodes: bool) -> bool {
        if !decodes {
            return false;
        }
        let recovered = self.failed > 0;
        self.proven = true;
        self.decoded = true;
        self.failed = 0;
        recovered
    }

    /// The last picture of a pass has been seen.
    fn end_of_pass(&mut self) -> PassEnd {
        if std::mem::take(&mut self.decoded) {
            return PassEnd::Again;
        }
        // Also after every file became unreadable: check again from now on.
        self.proven = false;
        self.failed = self.failed.saturating_add(1);
        let doublings = (self.failed - 1).min(16);
        PassEnd::Wait {
            wait: (FIRST_WAIT * (1u32 << doublings)).min(MAX_WAIT),
            first: self.failed == 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn png() -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(4, 3)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn passes_without_a_decodable_picture_wait_longer_each_time_up_to_30_s() {
        let mut p = Passes::default();
        let mut waits = Vec::new();
        for _ in 0..8 {
            assert!(p.checking());
            assert!(!p.picture(false));
            assert!(!p.picture(false));
            match p.end_of_pass() {
                PassEnd::Wait { wait, first } => waits.push((wait.as_secs(), first)),
                PassEnd::Again => panic!("nothing decoded"),
            }
        }
        assert_eq!(
            waits,
            [
                (1, true),
                (2, false),
                (4, false),
                (8, false),
                (16, false),
                (30, false),
                (30, false),
                (30, false)
            ]
        );
        assert!(p.quiet());
    }

    #[test]
    fn a_picture_that_decodes_resets_the_wait_and_stops_the_checking() {
        let mut p = Passes::default();
        assert!(!p.quiet(), "the first pass reports every file");
        p.picture(false);
        assert_eq!(
            p.end_of_pass(),
            PassEnd::Wait {
                wait: secs(1),
                first: true
            }
        );
        p.picture(false);
        p.end_of_pass();
        assert!(p.picture(true), "the first to decode again is told about");
        assert!(!p.checking() && !p.quiet());
        assert!(!p.picture(true));
        assert!(!p.picture(false), "a broken file among good ones");
        assert_eq!(p.end_of_pass(), PassEnd::Again);
        // Everything became unreadable: told about once more, from the first wait.
        p.picture(false);
        assert_eq!(
            p.end_of_pass(),
            PassEnd::Wait {
                wait: secs(1),
                first: true
            }
        );
        assert!(p.checking());
    }

    /// A folder of broken files, looping: the first pass hands every file over (the loop names
    /// each reason), then the source waits 1, 2, 4 s without handing any over again, until a
    /// picture is fixed and comes out.
    #[test]
    fn a_looping_folder_of_broken_files_backs_off_until_one_decodes() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.jpg", "b.jpg"] {
            std::fs::write(dir.path().join(name), b"not a picture").unwrap();
        }
        let waits: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let mut source = DirSource::open(dir.path(), true).unwrap();
        source.sleep = {
            let (waits, fixed) = (waits.clone(), dir.path().join("b.jpg"));
            Box::new(move |wait: Duration| {
                let mut w = waits.lock().unwrap();
                w.push(wait);
                if w.len() == 3 {
                    std::fs::write(&fixed, png()).unwrap();
                }
            })
        };
        let names: Vec<String> = (0..3)
            .map(|_| source.next_frame().unwrap().unwrap().name.unwrap())
            .collect();
        assert!(names[0].ends_with("a.jpg") && names[1].ends_with("b.jpg"));
        assert!(names[2].ends_with("b.jpg"), "{names:?}");
        assert_eq!(*waits.lock().unwrap(), [secs(1), secs(2), secs(4)]);
        // Decodes now, so the next pass starts at once and hands over every file again.
        let next = source.next_frame().unwrap().unwrap().name.unwrap();
        assert!(next.ends_with("a.jpg"), "{next}");
        assert_eq!(waits.lock().unwrap().len(), 3);
    }

    /// A file that went away after the folder was listed is passed over (its reason is
    /// logged), not handed on as an empty picture.
    #[test]
    fn an_unreadable_file_is_not_an_empty_frame() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), png()).unwrap();
        std::fs::write(dir.path().join("b.png"), png()).unwrap();
        let mut source = DirSource::open(dir.path(), false).unwrap();
        std::fs::remove_file(dir.path().join("a.png")).unwrap();
        let frame = source.next_frame().unwrap().unwrap();
        assert!(frame.name.as_deref().unwrap().ends_with("b.png"));
        assert!(frame.decode().is_ok());
        assert!(source.next_frame().unwrap().is_none());
    }
}
