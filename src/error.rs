//! The library's error types: one enum per area, each keeping its source error so the
//! command layer can print the whole chain (`{:#}`) with the file, model or setting named.

use std::path::PathBuf;

/// Why an image file (or camera frame) could not be turned into an RGB picture.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{path}: cannot read the file")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the file is empty (0 bytes)")]
    Empty { path: PathBuf },
    #[error("{path}: not an image (unknown format; JPEG, PNG, GIF, BMP and WebP are supported)")]
    UnknownFormat { path: PathBuf },
    #[error(
        "{path}: {width}x{height} pixels is larger than the {max_pixels}-pixel limit \
         (a decompression bomb guard); downscale the picture first"
    )]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("{path}: truncated JPEG (no end-of-image marker); the file was cut short")]
    TruncatedJpeg { path: PathBuf },
    #[error("{path}: the picture has no pixels ({width}x{height})")]
    NoPixels {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error("{path}: corrupt or unsupported image data")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

impl DecodeError {
    /// The file (or frame name) the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            DecodeError::Read { path, .. }
            | DecodeError::Empty { path }
            | DecodeError::UnknownFormat { path }
            | DecodeError::TooLarge { path, .. }
            | DecodeError::TruncatedJpeg { path }
            | DecodeError::NoPixels { path, .. }
            | DecodeError::Corrupt { path, .. } => path,
        }
    }

    /// The reason alone, without the path: for per-file summaries.
    pub fn reason(&self) -> String {
        let full = self.to_string();
        let prefix = format!("{}: ", self.path().display());
        let reason = full.strip_prefix(&prefix).unwrap_or(&full).to_string();
        match std::error::Error::source(self) {
            Some(src) => format!("{reason}: {src}"),
            None => reason,
        }
    }
}

/// Problems with model descriptions (manifests), model files and running them.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model {name:?}; known models: {known}. Use `edge-tl models list`, or pass a path to an .onnx file or a manifest .toml")]
    Unknown { name: String, known: String },
    #[error("manifest {origin}")]
    Manifest {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("manifest {origin}: {problem}")]
    InvalidManifest { origin: String, problem: String },
    #[error(
        "model {name} is not installed (looked for {file} in {searched}); install it with \
         `edge-tl models pull {name} --from FILE|URL` or set EDGE_TL_MODELS to the folder holding it"
    )]
    NotInstalled {
        name: String,
        file: String,
        searched: String,
    },
    #[error(
        "{path}: sha256 {actual} does not match the manifest of {name} ({expected}); the file is \
         damaged or a different model: pull it again"
    )]
    HashMismatch {
        path: PathBuf,
        name: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{path}: no manifest describes this model file (sha256 {sha256}); put a manifest beside it \
         as {sidecar} (see models/*.toml for the format)"
    )]
    NoManifestForFile {
        path: PathBuf,
        sha256: String,
        sidecar: PathBuf,
    },
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model {name}: {what}")]
    Tract {
        name: String,
        what: String,
        #[source]
        source: anyhow::Error,
    },
    #[error("model {name}: labels file {path}: expected {expected} labels, found {found}")]
    Labels {
        name: String,
        path: String,
        expected: usize,
        found: usize,
    },
    #[error("model {name} has no classifier output (logits) in its manifest, so it cannot name ImageNet classes; train a head with `edge-tl train`")]
    NoLogits { name: String },
}

/// Problems reading an ONNX file someone brings (`models import`); each names the flag that
/// settles it.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: not a readable ONNX model")]
    NotOnnx {
        path: String,
        #[source]
        source: anyhow::Error,
    },
    #[error("{path}: no input takes one RGB picture (rank 4 with 3 channels first or last); the graph's inputs: {inputs}. edge-tl feeds RGB pictures to an image classifier")]
    NoImageInput { path: String, inputs: String },
    #[error("{path}: several inputs could take the picture ({inputs}); name it with --input NAME")]
    SeveralImageInputs { path: String, inputs: String },
    #[error("{path}: no input named {name:?}; the graph's inputs: {inputs}")]
    UnknownInput {
        path: String,
        name: String,
        inputs: String,
    },
    #[error("{path}: input {input}: edge-tl feeds uint8 (raw pixels) or float32 inputs")]
    InputType { path: String, input: String },
    #[error("{path}: input {input} leaves its height or width open; give the size the network was trained at with --size N (or HxW)")]
    OpenSize { path: String, input: String },
    #[error("{path}: input {input} has a fixed batch other than 1; export the model with batch 1 (or an open batch)")]
    Batch { path: String, input: String },
    #[error("{path}: input {input} takes float pixels, and the file does not say which value range it was trained on; name it with --normalize, one of: {choices} (the model's training code or model card says which)")]
    NeedsNormalize {
        path: String,
        input: String,
        choices: &'static str,
    },
    #[error("{path}: input {input} takes raw uint8 pixels, so the graph normalises them itself: leave out --normalize")]
    NormalizeU8 { path: String, input: String },
    #[error("{path}: found no pooled features (the output of a global pool after the last feature map); the graph's outputs: {outputs}. Name the penultimate tensor with --embedding NAME")]
    NoEmbedding { path: String, outputs: String },
    #[error("{path}: several tensors could be the features a head learns from: {candidates}; name one with --embedding NAME")]
    SeveralEmbeddings { path: String, candidates: String },
    #[error("{path}: no tensor named {name:?} with a known shape (for {flag}); tensor names are those of the ONNX graph (e.g. as Netron shows them)")]
    UnknownTensor {
        path: String,
        name: String,
        flag: &'static str,
    },
    #[error("{path}: tract cannot run it ({what})")]
    Tract {
        path: String,
        what: &'static str,
        #[source]
        source: anyhow::Error,
    },
    #[error("the manifest made from it does not check")]
    Manifest(#[source] ModelError),
}

/// Problems downloading or installing a model file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("downloading {url}")]
    Http {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("downloading {url}: the server answered HTTP {status}; check the address")]
    Status { url: String, status: u16 },
    #[error("downloading {url}: the connection ended after {got} bytes{expected}; nothing was installed, try again")]
    Incomplete {
        url: String,
        got: u64,
        expected: String,
    },
    /// No byte for the stall timeout: a slow link keeps sending, this one stopped.
    #[error("downloading {url}: no data for {seconds} s after {got}{of} bytes; the server stalled, nothing was installed, try again")]
    Stalled {
        url: String,
        seconds: u64,
        got: u64,
        /// ` of N` when the size is known.
        of: String,
    },
    /// The server's Content-Length is larger than the manifest's size: refused before reading.
    #[error("downloading {url}: the server announces {announced} bytes but the manifest says {expected}; this is not the model's file, nothing was installed")]
    AnnouncedTooLong {
        url: String,
        announced: u64,
        expected: u64,
    },
    /// More bytes than the manifest's size arrived (an endless or wrong source); reading stopped
    /// one byte past the size.
    #[error("{from}: more than the manifest's {expected} bytes arrived (stopped after {got}); this is not the model's file, nothing was installed")]
    TooLong {
        from: String,
        expected: u64,
        got: u64,
    },
    #[error("{from}: sha256 {actual} does not match the manifest of {name} ({expected}); nothing was installed")]
    HashMismatch {
        from: String,
        name: String,
        expected: String,
        actual: String,
    },
    #[error("model {name} has no download address in its manifest; pass one with --from URL or a local file with --from FILE")]
    NoUrl { name: String },
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Problems with a dataset folder (`<root>/<label>/<image>`).
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: cannot read the dataset folder")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: no label folders; a dataset holds one folder per label (<data>/<label>/*.jpg)"
    )]
    NoLabels { path: PathBuf },
    #[error("{path}: only one label ({label}); training needs at least two label folders")]
    OneLabel { path: PathBuf, label: String },
    #[error("{path}: label {label:?} has no usable image{why}")]
    EmptyLabel {
        path: PathBuf,
        label: String,
        why: String,
    },
    #[error("invalid label {label:?}: {problem}")]
    InvalidLabel { label: String, problem: String },
    #[error("{path}: label {label:?} is not known to the head (it knows: {known})")]
    UnknownLabel {
        path: PathBuf,
        label: String,
        known: String,
    },
}

/// Problems training, saving or loading a classifier head.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("{path}: cannot read the head file")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an edge-tl head file")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: head format version {found} is not supported (this edge-tl reads versions 1 to {supported}); retrain with `edge-tl train`")]
    Version {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "{path}: this head was trained on backbone {head_model} (sha256 {head_sha}), but the \
         model in use is {model} (sha256 {model_sha}); pass --model {head_model} or retrain"
    )]
    BackboneMismatch {
        path: PathBuf,
        head_model: String,
        head_sha: String,
        model: String,
        model_sha: String,
    },
    #[error("{path}: the head is inconsistent: {problem}")]
    Inconsistent { path: PathBuf, problem: String },
    #[error("{what}: {problem}")]
    InvalidParams { what: &'static str, problem: String },
    #[error("training the logistic head failed: {0}")]
    Training(String),
    #[error("{path}: cannot write the head file")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a head could not be trained from a dataset.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The backbone failed while embedding the pictures.
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Head(#[from] HeadError),
}

/// An error and its causes on one line ("a: b: c"), for log messages in the library where
/// there is no anyhow context to print them.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
