//! The review queue: frames `run` was unsure of (and now and then an ordinary one), kept
//! beside the dataset in `<data>/.review/` for a person to label from the page. Each entry is
//! a picture `<id>.jpg` and its record `<id>.json` (prediction, time, why it was kept, its
//! embedding); the record is written last, so an entry exists only once both are whole, and a
//! picture without a record (a write cut by a crash) is removed when the queue opens.
//!
//! The queue is bounded by a number of entries and by bytes on disk: the oldest entries make
//! room before a new one is written, so the folder never holds more than the bound (the only
//! other files there are the temporary file of the write under way, which counts against the
//! bound too, and the leftovers of a killed process, which count until they are cleaned). A
//! frame whose embedding is nearly that of a queued one (cosine at or above
//! [`ReviewSettings::duplicate`]) is skipped, so one scene in front of the camera does not
//! flood the queue.
//!
//! Labelling moves an entry's picture into `<data>/<label>/`, never replacing a file there.

pub mod select;
pub mod tap;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::dataset::capture::{label_dir, sample_jpeg, timestamp_stem, CaptureError};
pub use select::{Reason, SelectSettings, Selector};
pub use tap::{Candidate, ReviewTap, ReviewWriter};

/// The queue's folder inside the dataset folder (hidden, so it is never taken for a label).
pub const REVIEW_DIR: &str = ".review";
/// The file whose lock says which process keeps the queue.
const LOCK_FILE: &str = ".lock";

/// Bounds of the queue and what it keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewSettings {
    /// Entries kept at most (0 = no review queue).
    pub keep: usize,
    /// Bytes on disk at most (pictures and records together).
    pub max_bytes: u64,
    /// Embedding cosine at or above which a frame counts as a copy of a queued one.
    pub duplicate: f32,
    pub select: SelectSettings,
    /// A pause inside every write (after half the picture, and between picture and record),
    /// so a test can kill the process mid-write; zero in use (`EDGE_TL_TEST_REVIEW_PAUSE_MS`).
    #[doc(hidden)]
    pub write_pause: std::time::Duration,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        ReviewSettings {
            keep: 200,
            max_bytes: 64 << 20,
            duplicate: 0.9,
            select: SelectSettings::default(),
            write_pause: std::time::Duration::ZERO,
        }
    }
}

/// What is known of a queued frame (its `<id>.json`, less the embedding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `<capture time>-<n>`, also the picture's file stem.
    pub id: String,
    /// The camera, when `run` has several.
    pub camera: Option<String>,
    /// Capture time, RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// The frame's best label and its probability.
    pub label: String,
    pub prob: f32,
    /// The second-best label and its probability, when the head has two or more labels.
    pub second: Option<String>,
    pub second_prob: Option<f32>,
    pub reason: Reason,
    /// Bytes of the picture, checked when the queue opens.
    pub jpeg_bytes: u64,
}

impl Entry {
    /// Best minus second-best probability: small is uncertain.
    pub fn margin(&self) -> f32 {
        self.prob - self.second_prob.unwrap_or(0.0)
    }
}

/// The record as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    version: u32,
    #[serde(flatten)]
    entry: Entry,
    embedding: Vec<f32>,
}

const RECORD_VERSION: u32 = 1;

/// Why the queue cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{}: cannot use the review folder", path.display())]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot write", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(
        "{}: another edge-tl keeps this review queue (two services on one data folder); \
         give each its own `data`",
        path.display()
    )]
    Busy { path: PathBuf },
}

/// What labelling or discarding did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Done {
    /// Entries handled: for a label, the path each picture now has inside the data folder.
    pub done: Vec<(String, PathBuf)>,
    /// Ids no longer (or never) in the queue: already labelled, discarded or made room for.
    pub missing: Vec<String>,
    /// Ids that could not be moved, with why; they stay queued.
    pub failed: Vec<(String, String)>,
}

/// A queued entry with its picture's and record's size and its embedding (unit length).
struct Queued {
    entry: Entry,
    bytes: u64,
    unit: Vec<f32>,
}

struct State {
    /// Oldest first.
    queued: Vec<Queued>,
    /// Embeddings of entries lately labelled or discarded (at most `keep`, newest last): the
    /// camera still sees that scene, and a person who has just dealt with it does not want it
    /// back. In memory only.
    handled: std::collections::VecDeque<Vec<f32>>,
    /// Ids being written now (counted in `used` and against `keep` already).
    writing: Vec<String>,
    /// Bytes of queued entries plus leftovers of killed writes found at open.
    used: u64,
}

/// The queue of one dataset folder; shared by the cameras that capture into it.
pub struct ReviewQueue {
    dir: PathBuf,
    data: PathBuf,
    settings: ReviewSettings,
    state: Mutex<State>,
    /// Held open with an exclusive lock: one process keeps a folder's queue.
    _lock: std::fs::File,
}

impl std::fmt::Debug for ReviewQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewQueue")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ReviewQueue {
    /// Opens (creating) `<data>/.review`, keeping the whole entries that fit the bounds and
    /// removing the rest: pictures without a record, records without a picture or that do not
    /// read, the oldest entries beyond the bounds (all with a warning naming the file).
    pub fn open(data: &Path, settings: ReviewSettings) -> Result<ReviewQueue, ReviewError> {
        let dir = data.join(REVIEW_DIR);
        let folder = |source| ReviewError::Folder {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(folder)?;
        let lock = lock_folder(&dir)?;
        // The folder is the queue's own and this process holds its lock: what temporary files
        // dead processes left go now, not after the usual wait.
        crate::atomic_file::clean_dead_leftovers_now(&dir);
        let mut queued = Vec::new();
        let mut pictures = Vec::new();
        let mut leftovers = 0;
        for e in std::fs::read_dir(&dir).map_err(folder)?.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            if name == LOCK_FILE {
                continue;
            } else if name.starts_with('.') {
                leftovers += size;
            } else if let Some(id) = name.strip_suffix(".json") {
                match read_record(&dir, id) {
                    Ok(q) => queued.push(q),
                    Err(why) => {
                        log::warn!("{}: {why}; removed from the review queue", path.display());
                        let _ = std::fs::remove_file(&path);
                        let _ = std::fs::remove_file(dir.join(format!("{id}.jpg")));
                    }
                }
            } else if let Some(id) = name.strip_suffix(".jpg") {
                pictures.push(id.to_string());
            } else {
                log::warn!(
                    "{}: not a review queue file; left alone, and counted against its bound",
                    path.display()
                );
                leftovers += size;
            }
        }
        for id in pictures {
            if !queued.iter().any(|q: &Queued| q.entry.id == id) {
                let path = dir.join(format!("{id}.jpg"));
                if path.exists() {
                    log::warn!(
                        "{}: a review picture without its record (a write was cut short); removed",
                        path.display()
                    );
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        queued.sort_by(|a, b| a.entry.id.cmp(&b.entry.id));
        let used = leftovers + queued.iter().map(|q| q.bytes).sum::<u64>();
        let queue = ReviewQueue {
            dir,
            data: data.to_path_buf(),
            settings,
            state: Mutex::new(State {
                queued,
                used,
                handled: Default::default(),
                writing: Vec::new(),
            }),
            _lock: lock,
        };
        {
            let mut state = queue.state.lock().unwrap();
            queue.make_room(&mut state, 0);
        }
        Ok(queue)
    }

    pub fn settings(&self) -> &ReviewSettings {
        &self.settings
    }

    /// The queue's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entries, most uncertain first (smallest margin between the best two), then oldest.
    pub fn list(&self) -> Vec<Entry> {
        let state = self.state.lock().unwrap();
        let mut entries: Vec<Entry> = state.queued.iter().map(|q| q.entry.clone()).collect();
        entries.sort_by(|a, b| a.margin().total_cmp(&b.margin()).then(a.id.cmp(&b.id)));
        entries
    }

    /// Bytes the queue uses on disk.
    pub fn used(&self) -> u64 {
        self.state.lock().unwrap().used
    }

    /// The picture of a queued entry, `None` for an id not in the queue.
    pub fn picture(&self, id: &str) -> Option<PathBuf> {
        let state = self.state.lock().unwrap();
        state
            .queued
            .iter()
            .any(|q| q.entry.id == id)
            .then(|| self.dir.join(format!("{id}.jpg")))
    }

    /// Queues a frame unless it is a near copy of a queued one; returns the new entry's id.
    /// The frame is decoded first, so a damaged frame is refused rather than queued.
    pub fn offer(&self, c: &Candidate) -> Result<Option<String>, ReviewError> {
        if self.settings.keep == 0 {
            return Ok(None);
        }
        let unit = unit(&c.embedding);
        {
            let state = self.state.lock().unwrap();
            let copy =
                |u: &Vec<f32>| u.len() == unit.len() && dot(u, &unit) >= self.settings.duplicate;
            if state
                .queued
                .iter()
                .map(|q| &q.unit)
                .chain(&state.handled)
                .any(copy)
            {
                return Ok(None);
            }
        }
        let jpeg = sample_jpeg(&c.frame)?;
        let mut state = self.state.lock().unwrap();
        let stem = timestamp_stem(c.frame.captured);
        let mut n = 0;
        let id = loop {
            let id = format!("{stem}-{n}");
            if !state.queued.iter().any(|q| q.entry.id == id)
                && !state.writing.contains(&id)
                && !self.dir.join(format!("{id}.jpg")).exists()
            {
                break id;
            }
            n += 1;
        };
        let entry = Entry {
            id: id.clone(),
            camera: c.camera.clone(),
            ts: humantime::format_rfc3339_millis(c.frame.captured).to_string(),
            label: c.best.0.clone(),
            prob: c.best.1,
            second: c.second.as_ref().map(|s| s.0.clone()),
            second_prob: c.second.as_ref().map(|s| s.1),
            reason: c.reason,
            jpeg_bytes: jpeg.len() as u64,
        };
        let record = serde_json::to_vec(&Record {
            version: RECORD_VERSION,
            entry: entry.clone(),
            embedding: c.embedding.clone(),
        })
        .expect("a record serialises");
        let bytes = jpeg.len() as u64 + record.len() as u64;
        if bytes > self.settings.max_bytes {
            log::warn!(
                "a review frame of {bytes} bytes is larger than the whole queue's bound of {} \
                 bytes; not kept (raise [review] megabytes)",
                self.settings.max_bytes
            );
            return Ok(None);
        }
        self.make_room(&mut state, bytes);
        if state.used + bytes > self.settings.max_bytes {
            // What is left is not the queue's (files of a live writer, or foreign files).
            log::warn!(
                "{}: {} bytes that are no review entries leave no room for a frame of {bytes}; \
                 not kept",
                self.dir.display(),
                state.used
            );
            return Ok(None);
        }
        // Counted (and the name taken) before the first byte is written, so the bounds hold
        // during the write too; the lock is not held while writing, so the page's requests
        // never wait on a slow card.
        state.used += bytes;
        state.writing.push(id.clone());
        drop(state);
        let jpg = self.dir.join(format!("{id}.jpg"));
        let json = self.dir.join(format!("{id}.json"));
        let pause = self.settings.write_pause;
        let written = write_new(&self.dir, &jpg, &jpeg, pause).and_then(|()| {
            std::thread::sleep(pause);
            write_new(&self.dir, &json, &record, pause).inspect_err(|_| {
                let _ = std::fs::remove_file(&jpg);
            })
        });
        let mut state = self.state.lock().unwrap();
        state.writing.retain(|w| *w != id);
        if let Err(e) = written {
            state.used -= bytes;
            return Err(e);
        }
        state.queued.push(Queued { entry, bytes, unit });
        Ok(Some(id))
    }

    /// Moves the pictures of `ids` into `<data>/<label>/` (created when one is still queued; a
    /// file already there is never replaced) and takes them off the queue. An entry whose
    /// picture is gone is dropped and counted `missing`; one that cannot be moved is `failed`,
    /// stays queued, and the others go on.
    pub fn assign(&self, ids: &[String], label: &str) -> Result<Done, ReviewError> {
        crate::dataset::validate_label(label).map_err(CaptureError::from)?;
        let mut state = self.state.lock().unwrap();
        let mut done = Done::default();
        let mut dir = None;
        for id in ids {
            let Some(i) = state.queued.iter().position(|q| &q.entry.id == id) else {
                done.missing.push(id.clone());
                continue;
            };
            let dir = match &dir {
                Some(d) => d,
                None => dir.insert(label_dir(&self.data, label)?),
            };
            let from = self.dir.join(format!("{id}.jpg"));
            let to = match crate::atomic_file::move_noclobber(&from, dir, id, "jpg") {
                Ok(to) => to,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    log::warn!("{}: gone; dropped from the review queue", from.display());
                    let q = state.queued.remove(i);
                    state.used -= q.bytes;
                    let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
                    done.missing.push(id.clone());
                    continue;
                }
                Err(e) => {
                    done.failed
                        .push((id.clone(), format!("{}: {e}", dir.display())));
                    continue;
                }
            };
            let q = state.queued.remove(i);
            state.used -= q.bytes;
            self.handled(&mut state, q.unit);
            let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
            let inside = to.strip_prefix(&self.data).unwrap_or(&to).to_path_buf();
            done.done.push((id.clone(), inside));
        }
        Ok(done)
    }

    /// Takes `ids` off the queue, removing their files.
    pub fn discard(&self, ids: &[String]) -> Done {
        let mut state = self.state.lock().unwrap();
        let mut done = Done::default();
        for id in ids {
            match state.queued.iter().position(|q| &q.entry.id == id) {
                Some(i) => {
                    let q = state.queued.remove(i);
                    self.remove_files(&q);
                    state.used -= q.bytes;
                    self.handled(&mut state, q.unit);
                    done.done.push((id.clone(), PathBuf::new()));
                }
                None => done.missing.push(id.clone()),
            }
        }
        done
    }

    /// Remembers a labelled or discarded entry's embedding, forgetting the oldest beyond `keep`.
    fn handled(&self, state: &mut State, unit: Vec<f32>) {
        state.handled.push_back(unit);
        while state.handled.len() > self.settings.keep {
            state.handled.pop_front();
        }
    }

    /// Removes the oldest entries until one of `bytes` more fits both bounds.
    fn make_room(&self, state: &mut State, bytes: u64) {
        let s = &self.settings;
        let adding = usize::from(bytes > 0) + state.writing.len();
        while !state.queued.is_empty()
            && (state.queued.len() + adding > s.keep || state.used + bytes > s.max_bytes)
        {
            let q = state.queued.remove(0);
            self.remove_files(&q);
            state.used -= q.bytes;
        }
    }

    /// The record goes first, so a crash in between leaves a picture without a record, which
    /// the next open removes.
    fn remove_files(&self, q: &Queued) {
        let id = &q.entry.id;
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.json")));
        let _ = std::fs::remove_file(self.dir.join(format!("{id}.jpg")));
    }
}

/// Takes the folder's lock (`flock`, released when the process ends however it ends).
fn lock_folder(dir: &Path) -> Result<std::fs::File, ReviewError> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ReviewError::Folder {
            path: path.clone(),
            source,
        })?;
    // SAFETY: flock on a file descriptor this function owns; no memory is shared.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(ReviewError::Busy {
            path: dir.to_path_buf(),
        });
    }
    Ok(file)
}

/// Writes `bytes` to the new file `path` atomically (through a temporary file in `dir`).
fn write_new(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    pause: std::time::Duration,
) -> Result<(), ReviewError> {
    let err = |source| ReviewError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = crate::atomic_file::temp_file_in(dir).map_err(err)?;
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    tmp.write_all(first).map_err(err)?;
    if !pause.is_zero() {
        tmp.flush().map_err(err)?;
        std::thread::sleep(pause);
    }
    tmp.write_all(rest).map_err(err)?;
    // On the card before the rename: a picture filed under a label from here is a hard link
    // to this very file, and must survive a power cut.
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist_noclobber(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// Reads and checks an entry: the record parses, names itself, and its picture is there, of
/// the recorded size, starting and ending as a JPEG does.
fn read_record(dir: &Path, id: &str) -> Result<Queued, String> {
    let json = dir.join(format!("{id}.json"));
    let text = std::fs::read(&json).map_err(|e| format!("cannot read: {e}"))?;
    let record: Record =
        serde_json::from_slice(&text).map_err(|e| format!("not a review record: {e}"))?;
    if record.version != RECORD_VERSION {
        return Err(format!(
            "record version {} (this edge-tl reads {RECORD_VERSION})",
            record.version
        ));
    }
    if record.entry.id != id {
        return Err(format!(
            "the record names another entry, {:?}",
            record.entry.id
        ));
    }
    let jpg = dir.join(format!("{id}.jpg"));
    let picture = std::fs::read(&jpg).map_err(|e| format!("its picture cannot be read: {e}"))?;
    let whole = picture.len() as u64 == record.entry.jpeg_bytes
        && picture.starts_with(&[0xFF, 0xD8])
        && picture.ends_with(&[0xFF, 0xD9]);
    if !whole {
        return Err("its picture is not the whole JPEG that was recorded".into());
    }
    Ok(Queued {
        bytes: picture.len() as u64 + text.len() as u64,
        unit: unit(&record.embedding),
        entry: record.entry,
    })
}

fn unit(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests;
