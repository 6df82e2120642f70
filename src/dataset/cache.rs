//! The embedding cache: embeddings keyed by (model sha256, picture content hash, variant), so
//! retraining after new captures only runs the network on new pictures, and renaming or moving
//! a picture costs nothing.
//!
//! One file per model and preprocessing version: `<dir>/<model-sha256[..16]>-<dim>-p<N>.emb`
//! (a change to decoding or resizing changes the embeddings, so it must not reuse old ones),
//! in a small binary format:
//! magic `ETLEMB1\n`, dim (u32 LE), count (u32 LE), then per entry: 32-byte content sha256,
//! one variant byte, dim f32 LE. Written to a temporary file and renamed, so a crash never
//! leaves a half-written cache; an unreadable cache is ignored (it is only a cache).

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"ETLEMB1\n";

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
        let entries = match std::fs::read(&path) {
            Ok(bytes) => parse(&bytes, dim).unwrap_or_else(|| {
                log::warn!(
                    "{}: unreadable embedding cache, starting afresh",
                    path.display()
                );
                HashMap::new()
            }),
            Err(_) => HashMap::new(),
        };
        EmbeddingCache {
            path,
            dim,
            entries,
            dirty: false,
        }
    }

    /// The cached embedding, if any.
    pub fn get(&self, key: &Key) -> Option<&[f32]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// Adds an embedding (ignored if its width is not the cache's).
    pub fn insert(&mut self, key: Key, embedding: Vec<f32>) {
        if embedding.len() == self.dim {
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

    /// Writes the cache if anything was added: temporary file, then rename.
    pub fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::Builder::new().prefix(".emb-").tempfile_in(dir)?;
        {
            let mut out = BufWriter::new(tmp.as_file());
            out.write_all(MAGIC)?;
            out.write_all(&(self.dim as u32).to_le_bytes())?;
            out.write_all(&(self.entries.len() as u32).to_le_bytes())?;
            for ((hash, variant), emb) in &self.entries {
                out.write_all(hash)?;
                out.write_all(&[*variant as u8])?;
                for v in emb {
                    out.write_all(&v.to_le_bytes())?;
                }
            }
            out.flush()?;
        }
        tmp.persist(&self.path).map_err(|e| e.error)?;
        self.dirty = false;
        Ok(())
    }
}

fn parse(bytes: &[u8], dim: usize) -> Option<HashMap<Key, Vec<f32>>> {
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
    let entry = 33 + 4 * dim;
    if r.len() != count.checked_mul(entry)? {
        return None;
    }
    let mut entries = HashMap::with_capacity(count);
    for chunk in r.chunks_exact(entry) {
        let hash: [u8; 32] = chunk[..32].try_into().ok()?;
        let variant = match chunk[32] {
            0 => Variant::Plain,
            1 => Variant::Flipped,
            _ => return None,
        };
        let emb = chunk[33..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        entries.insert((hash, variant), emb);
    }
    Some(entries)
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
}
