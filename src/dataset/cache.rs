//! The embedding cache: embeddings keyed by (model sha256, picture content hash, variant), so
//! retraining after new captures only runs the network on new pictures, and renaming or moving
//! a picture costs nothing.
//!
//! One file per model and preprocessing version: `<dir>/<model-sha256[..16]>-<dim>-p<N>.emb`
//! (a change to decoding or resizing changes the embeddings, so it must not reuse old ones),
//! in a small binary format:
//! magic `ETLEMB2\n`, dim (u32 LE), count (u32 LE), then per entry: 32-byte content sha256,
//! one variant byte, dim f32 LE, and a check: the first 8 bytes of the sha256 of the entry's
//! bytes before it. Training trusts these numbers as it trusts the network, so an entry whose
//! check fails or that holds a non-finite number (a flipped bit on an SD card, a NaN written
//! by anything) is dropped with one warning naming the file, and its picture is embedded
//! again; the other entries stay usable. Written through [`crate::atomic_file`], so a crash
//! never leaves a half-written cache; a file that is unreadable as a whole (cut short, another
//! width, the unchecked format `ETLEMB1` of older versions) is ignored and rewritten, as it is
//! only a cache.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"ETLEMB2\n";
/// The format before entries carried a check: ignored (and rewritten) without a warning.
const OLD_MAGIC: &[u8; 8] = b"ETLEMB1\n";
/// Content sha256 and variant byte, before the floats.
const KEY_LEN: usize = 33;
/// Bytes of the sha256 of an entry kept as its check.
const CHECK_LEN: usize = 8;

/// Which picture an embedding was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The picture as it is.
    Plain = 0,
    /// Mirrored left-right (flip augmentation).
    Flipped = 1,
}

/// Cache key: the sha256 of the picture file's bytes, and the variant.
pub type Key = ([u8; 32], Variant);

/// Embeddings for one model, loaded in memory.
#[derive(Debug)]
pub struct EmbeddingCache {
    path: PathBuf,
    dim: usize,
    entries: HashMap<Key, Vec<f32>>,
    dirty: bool,
}

impl EmbeddingCache {
    /// Opens (or starts) the cache of model `model_sha256` with `dim`-wide embeddings in `dir`.
    pub fn open(dir: &Path, model_sha256: &str, dim: usize) -> EmbeddingCache {
        let prefix = &model_sha256[..model_sha256.len().min(16)];
        let version = crate::preprocess::PREPROCESS_VERSION;
        let path = dir.join(format!("{prefix}-{dim}-p{version}.emb"));
        let mut dirty = false;
        let entries = match std::fs::read(&path) {
            Ok(bytes) if bytes.starts_with(OLD_MAGIC) => {
                log::info!(
                    "{}: embedding cache of an older edge-tl, rebuilding it",
                    path.display()
                );
                HashMap::new()
            }
            Ok(bytes) => match parse(&bytes, dim) {
                Some(Parsed { entries, dropped }) => {
                    if dropped > 0 {
                        log::warn!(
                            "{}: {dropped} of {} embedding cache entries are damaged (check \
                             mismatch or a non-finite number) and were dropped; their pictures \
                             are embedded again",
                            path.display(),
                            dropped + entries.len()
                        );
                        // Rewrite the file without them even if their pictures are gone.
                        dirty = true;
                    }
                    entries
                }
                None => {
                    log::warn!(
                        "{}: unreadable embedding cache, starting afresh",
                        path.display()
                    );
                    HashMap::new()
                }
            },
            Err(_) => HashMap::new(),
        };
        EmbeddingCache {
            path,
            dim,
            entries,
            dirty,
        }
    }

    /// The cached embedding, if any.
    pub fn get(&self, key: &Key) -> Option<&[f32]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// Adds an embedding (ignored if its width is not the cache's, or if it holds a non-finite
    /// number, which reading the cache would refuse anyway).
    pub fn insert(&mut self, key: Key, embedding: Vec<f32>) {
        if embedding.len() == self.dim && embedding.iter().all(|v| v.is_finite()) {
            self.entries.insert(key, embedding);
            self.dirty = true;
        }
    }

    /// Number of cached embeddings.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the cache if anything was added or dropped: temporary file, then rename.
    pub fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let dir = crate::atomic_file::parent_dir(&self.path);
        std::fs::create_dir_all(&dir)?;
        // Older versions named their temporary files `.emb-*`; the cache folder is edge-tl's,
        // so such a name here can only be a killed save's.
        crate::atomic_file::clean_legacy_leftovers(&dir, ".emb-");
        crate::atomic_file::write_with(&self.path, |out| {
            out.write_all(MAGIC)?;
            out.write_all(&(self.dim as u32).to_le_bytes())?;
            out.write_all(&(self.entries.len() as u32).to_le_bytes())?;
            let mut entry = Vec::with_capacity(KEY_LEN + 4 * self.dim);
            for ((hash, variant), emb) in &self.entries {
                entry.clear();
                entry.extend_from_slice(hash);
                entry.push(*variant as u8);
                for v in emb {
                    entry.extend_from_slice(&v.to_le_bytes());
                }
                out.write_all(&entry)?;
                out.write_all(&check(&entry))?;
            }
            Ok(())
        })?;
        self.dirty = false;
        Ok(())
    }
}

/// The check stored after an entry: the start of the sha256 of its key and floats.
fn check(entry: &[u8]) -> [u8; CHECK_LEN] {
    let digest = Sha256::digest(entry);
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&digest[..CHECK_LEN]);
    out
}

/// The entries of a cache file, and how many were dropped as damaged.
struct Parsed {
    entries: HashMap<Key, Vec<f32>>,
    dropped: usize,
}

/// `None` when the file as a whole is not a cache of this width (another format, cut short).
fn parse(bytes: &[u8], dim: usize) -> Option<Parsed> {
    let mut r = bytes;
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).ok()?;
    if &magic != MAGIC {
        return None;
    }
    let mut word = [0u8; 4];
    r.read_exact(&mut word).ok()?;
    if u32::from_le_bytes(word) as usize != dim {
        return None;
    }
    r.read_exact(&mut word).ok()?;
    let count = u32::from_le_bytes(word) as usize;
    let entry = KEY_LEN + 4 * dim + CHECK_LEN;
    if r.len() != count.checked_mul(entry)? {
        return None;
    }
    let mut parsed = Parsed {
        entries: HashMap::with_capacity(count),
        dropped: 0,
    };
    for chunk in r.chunks_exact(entry) {
        match parse_entry(chunk) {
            Some((key, emb)) => {
                parsed.entries.insert(key, emb);
            }
            None => parsed.dropped += 1,
        }
    }
    Some(parsed)
}

/// One entry, if its check matches and every number is finite.
fn parse_entry(chunk: &[u8]) -> Option<(Key, Vec<f32>)> {
    let (body, stored) = chunk.split_at(chunk.len() - CHECK_LEN);
    if check(body).as_slice() != stored {
        return None;
    }
    let hash: [u8; 32] = body[..32].try_into().ok()?;
    let variant = match body[32] {
        0 => Variant::Plain,
        1 => Variant::Flipped,
        _ => return None,
    };
    let emb: Vec<f32> = body[KEY_LEN..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if !emb.iter().all(|v| v.is_finite()) {
        return None;
    }
    Some(((hash, variant), emb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EmbeddingCache::open(dir.path(), "ab".repeat(32).as_str(), 3);
        assert!(c.is_empty());
        c.insert(([7; 32], Variant::Plain), vec![1.0, 2.0, 3.0]);
        c.insert(([7; 32], Variant::Flipped), vec![4.0, 5.0, 6.0]);
        c.insert(([8; 32], Variant::Plain), vec![1.0]); // wrong width: ignored
        c.save().unwrap();
        let again = EmbeddingCache::open(dir.path(), "ab".repeat(32).as_str(), 3);
        assert_eq!(again.len(), 2);
        assert_eq!(
            again.get(&([7; 32], Variant::Flipped)),
            Some(&[4.0, 5.0, 6.0][..])
        );
        // a cache for another width, or a damaged file, is simply empty
        assert!(EmbeddingCache::open(dir.path(), "ab".repeat(32).as_str(), 4).is_empty());
        let bytes = std::fs::read(again.path()).unwrap();
        std::fs::write(again.path(), &bytes[..bytes.len() - 1]).unwrap();
        assert!(EmbeddingCache::open(dir.path(), "ab".repeat(32).as_str(), 3).is_empty());
        // only the cache file is in the folder: no temporary left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Where the entry of picture hash `[byte; 32]` starts in a cache file of width `dim`.
    fn entry_at(bytes: &[u8], byte: u8, dim: usize) -> usize {
        let len = KEY_LEN + 4 * dim + CHECK_LEN;
        // magic, dim and count come first
        (16..bytes.len())
            .step_by(len)
            .find(|&at| bytes[at..at + 32] == [byte; 32])
            .expect("the entry is in the file")
    }

    #[test]
    fn damaged_entries_are_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let model = "cd".repeat(32);
        let mut c = EmbeddingCache::open(dir.path(), &model, 3);
        for k in 1..=4u8 {
            c.insert(([k; 32], Variant::Plain), vec![f32::from(k), 0.5, -1.0]);
        }
        c.insert(([9; 32], Variant::Plain), vec![1.0, f32::NAN, 0.0]); // never cached
        assert_eq!(c.len(), 4);
        c.save().unwrap();
        let mut bytes = std::fs::read(c.path()).unwrap();

        // A NaN written over entry 1's second float, with its check made to fit: only the
        // finiteness check can catch it.
        let at = entry_at(&bytes, 1, 3);
        let float = at + KEY_LEN + 4;
        bytes[float..float + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        let body_end = at + KEY_LEN + 12;
        let fixed = check(&bytes[at..body_end]);
        bytes[body_end..body_end + CHECK_LEN].copy_from_slice(&fixed);
        // One flipped bit in entry 2's floats: a finite number, caught by the check.
        let at = entry_at(&bytes, 2, 3);
        bytes[at + KEY_LEN + 1] ^= 0x04;
        // A NaN over entry 3's first float, check left as it was.
        let at = entry_at(&bytes, 3, 3);
        bytes[at + KEY_LEN..at + KEY_LEN + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        std::fs::write(c.path(), &bytes).unwrap();

        let mut again = EmbeddingCache::open(dir.path(), &model, 3);
        assert_eq!(again.get(&([1; 32], Variant::Plain)), None);
        assert_eq!(again.get(&([2; 32], Variant::Plain)), None);
        assert_eq!(again.get(&([3; 32], Variant::Plain)), None);
        assert_eq!(
            again.get(&([4; 32], Variant::Plain)),
            Some(&[4.0, 0.5, -1.0][..])
        );
        assert_eq!(again.len(), 1);
        // Saved without the damaged entries, although nothing was added.
        again.save().unwrap();
        let len = std::fs::metadata(again.path()).unwrap().len() as usize;
        assert_eq!(len, 16 + KEY_LEN + 4 * 3 + CHECK_LEN);
        assert_eq!(EmbeddingCache::open(dir.path(), &model, 3).len(), 1);
    }

    #[test]
    fn a_cache_of_the_old_format_is_ignored_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let model = "ef".repeat(32);
        let path = EmbeddingCache::open(dir.path(), &model, 2)
            .path()
            .to_path_buf();
        let mut old = OLD_MAGIC.to_vec();
        old.extend_from_slice(&2u32.to_le_bytes());
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&[5; 32]);
        old.push(0);
        old.extend_from_slice(&1f32.to_le_bytes());
        old.extend_from_slice(&2f32.to_le_bytes());
        std::fs::write(&path, &old).unwrap();
        let mut c = EmbeddingCache::open(dir.path(), &model, 2);
        assert!(c.is_empty());
        c.insert(([5; 32], Variant::Plain), vec![1.0, 2.0]);
        c.save().unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(MAGIC));
        let again = EmbeddingCache::open(dir.path(), &model, 2);
        assert_eq!(again.get(&([5; 32], Variant::Plain)), Some(&[1.0, 2.0][..]));
    }

    #[test]
    fn saving_cleans_dead_leftovers_and_follows_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let [dead, live, fresh] = crate::atomic_file::test_leftovers::plant(dir.path());
        let mut c = EmbeddingCache::open(dir.path(), &"01".repeat(32), 1);
        c.insert(([1; 32], Variant::Plain), vec![1.0]);
        c.save().unwrap();
        assert!(!dead.exists() && live.exists() && fresh.exists());
        let mode = std::fs::metadata(c.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !crate::atomic_file::test_umask());
    }
}
