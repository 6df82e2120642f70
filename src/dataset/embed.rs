//! Dataset -> embeddings: read each picture once, hash it, take its embedding from the cache or
//! decode, preprocess and run the backbone on it (on several threads), and collect the pictures
//! that could not be used with the reason, so a run goes on with the rest.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::cache::{EmbeddingCache, Key, Variant};
use super::{Dataset, Item};
use crate::error::{DecodeError, ModelError};
use crate::model::extractor::Extractor;
use crate::preprocess;
use crate::progress::Progress;
use crate::region::Region;

/// Settings for [`embed_dataset`].
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// Also embed each picture mirrored left-right (flip augmentation for training).
    pub flip: bool,
    /// Worker threads running the backbone.
    pub jobs: usize,
    /// Cache folder; `None` = `<dataset>/.edge-tl-cache` when writable, else the user cache.
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write the cache.
    pub no_cache: bool,
    /// Embed only this region of each picture (a head taught on part of the frame).
    pub region: Option<Region>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            flip: false,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cache_dir: None,
            no_cache: false,
            region: None,
        }
    }
}

/// One usable picture and its embedding(s).
#[derive(Debug, Clone)]
pub struct Sample {
    pub path: PathBuf,
    /// Index into [`EmbeddedSet::labels`].
    pub label: usize,
    pub embedding: Vec<f32>,
    /// Embedding of the mirrored picture, when flip augmentation was asked for.
    pub flipped: Option<Vec<f32>>,
}

/// A dataset turned into embeddings.
#[derive(Debug, Clone)]
pub struct EmbeddedSet {
    pub labels: Vec<String>,
    pub samples: Vec<Sample>,
    /// Pictures that could not be used, with why.
    pub skipped: Vec<(usize, Arc<DecodeError>)>,
    /// How many embeddings came from the cache and how many were computed.
    pub cached: usize,
    pub computed: usize,
}

impl EmbeddedSet {
    /// Usable pictures per label, in label order.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.labels.len()];
        for s in &self.samples {
            counts[s.label] += 1;
        }
        counts
    }
}

/// The default cache folder for a dataset.
pub fn default_cache_dir(root: &Path) -> PathBuf {
    // A dataset without write permission bits is treated as read-only even for root, who
    // could write there anyway: shared photo folders are not edge-tl's to change.
    let read_only = std::fs::metadata(root).is_ok_and(|m| m.permissions().readonly());
    let beside = root.join(".edge-tl-cache");
    if !read_only && std::fs::create_dir_all(&beside).is_ok() && writable(&beside) {
        return beside;
    }
    directories::ProjectDirs::from("", "", "edge-tl")
        .map(|p| p.cache_dir().join("embeddings"))
        .unwrap_or_else(|| std::env::temp_dir().join("edge-tl-embeddings"))
}

fn writable(dir: &Path) -> bool {
    tempfile::tempfile_in(dir).is_ok()
}

enum Outcome {
    Done {
        embedding: Vec<f32>,
        flipped: Option<Vec<f32>>,
        new: Vec<(Key, Vec<f32>)>,
    },
    Skipped(DecodeError),
}

/// Embeds every picture of `dataset`. Decode failures are collected in `skipped`; a failure of
/// the network itself stops the run.
pub fn embed_dataset(
    dataset: &Dataset,
    extractor: &Extractor,
    options: &EmbedOptions,
    progress: &dyn Progress,
) -> Result<EmbeddedSet, ModelError> {
    let model = extractor.model();
    let mut cache = (!options.no_cache).then(|| {
        let dir = options
            .cache_dir
            .clone()
            .unwrap_or_else(|| default_cache_dir(&dataset.root));
        EmbeddingCache::open(&dir, &model.sha256, model.manifest.embedding.dim)
    });
    progress.set_total(dataset.items.len() as u64);
    let jobs = options.jobs.max(1).min(dataset.items.len().max(1));
    let results: Mutex<Vec<Option<Result<Outcome, ModelError>>>> =
        Mutex::new((0..dataset.items.len()).map(|_| None).collect());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = dataset.items.get(i) else {
                    break;
                };
                let outcome = embed_one(item, extractor, cache.as_ref(), options);
                let failed = outcome.is_err();
                results.lock().expect("no worker panics")[i] = Some(outcome);
                progress.advance(1);
                if failed {
                    break;
                }
            });
        }
    });
    progress.finish();
    let mut set = EmbeddedSet {
        labels: dataset.labels.clone(),
        samples: Vec::new(),
        skipped: Vec::new(),
        cached: 0,
        computed: 0,
    };
    for (item, result) in dataset
        .items
        .iter()
        .zip(results.into_inner().expect("no worker panics"))
    {
        let Some(result) = result else { continue };
        match result? {
            Outcome::Skipped(e) => set.skipped.push((item.label, Arc::new(e))),
            Outcome::Done {
                embedding,
                flipped,
                new,
            } => {
                let wanted = 1 + usize::from(options.flip);
                set.computed += new.len();
                set.cached += wanted - new.len();
                if let Some(cache) = cache.as_mut() {
                    for (k, v) in new {
                        cache.insert(k, v);
                    }
                }
                set.samples.push(Sample {
                    path: item.path.clone(),
                    label: item.label,
                    embedding,
                    flipped,
                });
            }
        }
    }
    if let Some(cache) = cache.as_mut() {
        if let Err(e) = cache.save() {
            log::warn!(
                "could not save the embedding cache {}: {e}",
                cache.path().display()
            );
        }
    }
    Ok(set)
}

fn embed_one(
    item: &Item,
    extractor: &Extractor,
    cache: Option<&EmbeddingCache>,
    options: &EmbedOptions,
) -> Result<Outcome, ModelError> {
    let (flip, region) = (options.flip, options.region.as_ref());
    let bytes = match std::fs::read(&item.path) {
        Ok(b) => b,
        Err(source) => {
            return Ok(Outcome::Skipped(DecodeError::Read {
                path: item.path.clone(),
                source,
            }))
        }
    };
    // A region's embeddings are another picture's: keyed by the bytes and the region.
    let hash: [u8; 32] = match region {
        None => Sha256::digest(&bytes).into(),
        Some(r) => Sha256::new()
            .chain_update(&bytes)
            .chain_update(b"region")
            .chain_update(r.key_bytes())
            .finalize()
            .into(),
    };
    let lookup = |v: Variant| cache.and_then(|c| c.get(&(hash, v))).map(<[f32]>::to_vec);
    let (plain, mirrored) = (lookup(Variant::Plain), lookup(Variant::Flipped));
    if let Some(plain) = &plain {
        if !flip || mirrored.is_some() {
            return Ok(Outcome::Done {
                embedding: plain.clone(),
                flipped: mirrored.filter(|_| flip),
                new: Vec::new(),
            });
        }
    }
    let frame = match preprocess::decode_bytes(&bytes, &item.path) {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::Skipped(e)),
    };
    let frame = match region {
        Some(r) => r.crop(&frame),
        None => frame,
    };
    let mut new = Vec::new();
    let embedding = match plain {
        Some(e) => e,
        None => {
            let e = extractor
                .run(&preprocess::to_input(&frame, extractor.manifest()))?
                .embedding;
            new.push(((hash, Variant::Plain), e.clone()));
            e
        }
    };
    let flipped = if flip {
        Some(match mirrored {
            Some(e) => e,
            None => {
                let e = extractor
                    .run(&preprocess::to_input(
                        &frame.flipped(),
                        extractor.manifest(),
                    ))?
                    .embedding;
                new.push(((hash, Variant::Flipped), e.clone()));
                e
            }
        })
    } else {
        None
    };
    Ok(Outcome::Done {
        embedding,
        flipped,
        new,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn read_only_dataset_gets_no_cache_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir(&root).unwrap();
        assert_eq!(default_cache_dir(&root), root.join(".edge-tl-cache"));
        std::fs::remove_dir(root.join(".edge-tl-cache")).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o555)).unwrap();
        assert_ne!(default_cache_dir(&root), root.join(".edge-tl-cache"));
        assert!(!root.join(".edge-tl-cache").exists());
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
