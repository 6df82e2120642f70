//! Model descriptions: one small TOML file per backbone (see `models/*.toml`), saying where
//! the weights come from, how to check them and how to feed and read the network.
//!
//! The manifests in `models/` are compiled into the binary, so `edge-tl models list` works on a
//! device that has only the binary. A model file can also carry its own manifest beside it
//! (`model.onnx` + `model.toml`), which is how fine-tuned exports describe themselves.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// One backbone: identity, integrity and interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Short name used with `--model` (e.g. `mobilenet-v2-int8`).
    pub name: String,
    /// One line for `models list`.
    #[serde(default)]
    pub description: String,
    /// File name of the ONNX weights in a model folder.
    pub file: String,
    /// Lower-case hex sha256 of that file; a file that does not match is refused.
    pub sha256: String,
    /// Size of the file in bytes (for `models list` and download progress).
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Download addresses of the ONNX file, tried in order by `models pull`.
    #[serde(default)]
    pub urls: Vec<String>,
    /// The public file this ONNX file was converted from, if any.
    #[serde(default)]
    pub upstream: Option<Upstream>,
    /// What the network takes.
    pub input: InputSpec,
    /// How a picture becomes that input.
    pub preprocess: PreprocessSpec,
    /// The penultimate features the device learns from.
    pub embedding: OutputSpec,
    /// The backbone's own classifier (ImageNet), if the file keeps it.
    #[serde(default)]
    pub logits: Option<LogitsSpec>,
}

/// Where a converted model's original lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub file: String,
    pub url: String,
    pub sha256: String,
}

/// The network input: one image, fixed size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input tensor name in the graph.
    pub name: String,
    /// Four dimensions, batch first; batch must be 1.
    pub shape: [usize; 4],
    pub layout: Layout,
    pub dtype: DType,
}

/// Axis order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// batch, height, width, channels (TFLite-style).
    Nhwc,
    /// batch, channels, height, width (PyTorch-style).
    Nchw,
}

/// Element type of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// Raw 0..255 pixels; the graph normalises itself.
    U8,
    /// Floats, normalised as `preprocess.normalize` says.
    F32,
}

/// How pixels are brought to the input size and value range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSpec {
    pub resize: ResizeMode,
    pub filter: ResizeFilter,
    pub normalize: Normalize,
}

/// Geometry of the resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// The whole picture to HxW, aspect ratio not kept (what the Coral models were trained with).
    Stretch,
    /// Scale the shorter side to the input size, then cut the centre.
    CenterCrop,
}

/// Interpolation used by the resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeFilter {
    Bilinear,
    Nearest,
}

/// Value range of the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// Pixels as they are (0..255); only valid with `dtype = "u8"` or as plain floats 0..255.
    Raw,
    /// `(pixel / 255 - mean) / std` per channel, RGB order.
    MeanStd { mean: [f32; 3], std: [f32; 3] },
}

/// A named output and its width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub output: String,
    pub dim: usize,
}

/// The backbone's classifier output and the labels file naming each logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogitsSpec {
    pub output: String,
    /// File name of the labels (one per line, line i names logit i), looked up in the model
    /// folder first, then among the labels compiled into edge-tl.
    pub labels: String,
}

/// The manifests shipped in `models/`, compiled in.
const BUILTIN: &[(&str, &str)] = &[
    (
        "models/mobilenet-v2-int8.toml",
        include_str!("../../models/mobilenet-v2-int8.toml"),
    ),
    (
        "models/mobilenet-v2-f32.toml",
        include_str!("../../models/mobilenet-v2-f32.toml"),
    ),
    (
        "models/mobilenet-v2-qop.toml",
        include_str!("../../models/mobilenet-v2-qop.toml"),
    ),
    (
        "models/mobilenet-v1-int8.toml",
        include_str!("../../models/mobilenet-v1-int8.toml"),
    ),
    (
        "models/efficientnet-lite0-f32.toml",
        include_str!("../../models/efficientnet-lite0-f32.toml"),
    ),
    (
        "models/efficientnet-lite0-int8.toml",
        include_str!("../../models/efficientnet-lite0-int8.toml"),
    ),
    (
        "models/efficientnet-lite2-f32.toml",
        include_str!("../../models/efficientnet-lite2-f32.toml"),
    ),
    (
        "models/efficientnet-lite2-int8.toml",
        include_str!("../../models/efficientnet-lite2-int8.toml"),
    ),
];

/// Labels files compiled in, so a manifest can name them without shipping them.
pub const BUILTIN_LABELS: &[(&str, &str)] = &[
    (
        "imagenet_labels.txt",
        include_str!("../../models/imagenet_labels.txt"),
    ),
    // The EfficientNet-Lite classifiers have no background class.
    (
        "imagenet_labels_1000.txt",
        include_str!("../../models/imagenet_labels_1000.txt"),
    ),
];

/// Name of the model used when `--model` is not given: the quantization-aware-trained
/// MobileNetV2 with its int8 weights stored as float32. It is the same network as the int8
/// QDQ file, and tract runs it 2-3x faster than the QDQ graph (whose activation fake-quant
/// pairs tract executes as separate ops); see docs/performance.md.
pub const DEFAULT_MODEL: &str = "mobilenet-v2-f32";

impl Manifest {
    /// Parses and checks a manifest; `origin` names it in errors (a path or `models/x.toml`).
    pub fn parse(text: &str, origin: &str) -> Result<Manifest, ModelError> {
        let manifest: Manifest = toml::from_str(text).map_err(|source| ModelError::Manifest {
            origin: origin.to_string(),
            source,
        })?;
        manifest.validate(origin)?;
        Ok(manifest)
    }

    fn validate(&self, origin: &str) -> Result<(), ModelError> {
        let bad = |problem: String| {
            Err(ModelError::InvalidManifest {
                origin: origin.to_string(),
                problem,
            })
        };
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            return bad(format!(
                "name {:?} must be non-empty, without slashes",
                self.name
            ));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad(format!("sha256 {:?} is not 64 hex digits", self.sha256));
        }
        if self.file.is_empty() || self.file.contains(['/', '\\']) {
            return bad(format!("file {:?} must be a bare file name", self.file));
        }
        let [n, a, b, c] = self.input.shape;
        if n != 1 {
            return bad(format!("input.shape batch is {n}; it must be 1"));
        }
        let channels = match self.input.layout {
            Layout::Nhwc => c,
            Layout::Nchw => a,
        };
        if channels != 3 {
            return bad(format!(
                "input.shape {:?} has {channels} channels for layout {:?}; edge-tl feeds RGB (3)",
                self.input.shape, self.input.layout
            ));
        }
        if [a, b, c].contains(&0) {
            return bad("input.shape has a zero dimension".to_string());
        }
        if self.input.dtype == DType::U8 && self.preprocess.normalize != Normalize::Raw {
            return bad("preprocess.normalize must be \"raw\" for a u8 input".to_string());
        }
        if self.embedding.dim == 0 {
            return bad("embedding.dim must be > 0".to_string());
        }
        Ok(())
    }

    /// Every manifest compiled into this binary, in `models list` order.
    pub fn builtin() -> Vec<Manifest> {
        BUILTIN
            .iter()
            .map(|(origin, text)| {
                Manifest::parse(text, origin).expect("built-in manifests are checked by tests")
            })
            .collect()
    }

    /// Input height and width in pixels.
    pub fn input_size(&self) -> (u32, u32) {
        let [_, a, b, c] = self.input.shape;
        match self.input.layout {
            Layout::Nhwc => (a as u32, b as u32),
            Layout::Nchw => (b as u32, c as u32),
        }
    }

    /// Serialises the manifest (for sidecar files written by exports).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a manifest always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifests_parse_and_have_unique_names() {
        let all = Manifest::builtin();
        assert_eq!(all.len(), BUILTIN.len());
        let mut names: Vec<_> = all.iter().map(|m| m.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(all.iter().any(|m| m.name == DEFAULT_MODEL));
    }

    #[test]
    fn manifest_round_trips_through_toml() {
        let m = &Manifest::builtin()[0];
        let again = Manifest::parse(&m.to_toml(), "round trip").unwrap();
        assert_eq!(m, &again);
    }

    #[test]
    fn unknown_key_is_named() {
        let text = format!("{}\nbogus = 1\n", BUILTIN[0].1);
        let err = crate::error::chain(&Manifest::parse(&text, "x.toml").unwrap_err());
        assert!(err.contains("x.toml") && err.contains("bogus"), "{err}");
    }

    #[test]
    fn bad_sha_and_batch_are_refused() {
        let text = BUILTIN[0].1.replace(
            "416d445e91fcbb8d7e031cb3aaa301a5e948c7d502d3e1d1b0c8a4462a09365c",
            "abc",
        );
        let err = Manifest::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        let text = BUILTIN[0].1.replace("[1, 224, 224, 3]", "[2, 224, 224, 3]");
        let err = Manifest::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("batch is 2"), "{err}");
    }

    #[test]
    fn input_size_follows_layout() {
        let v1 = Manifest::builtin()
            .into_iter()
            .find(|m| m.name == "mobilenet-v1-int8")
            .unwrap();
        assert_eq!(v1.input_size(), (192, 192));
    }
}
