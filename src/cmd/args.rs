//! Flag groups that several commands share (clap `Args`), each turned into the library's
//! settings here. Numeric flags are checked by [`bounds::flag`] against the same ranges as the
//! settings file's keys, so a value out of range is refused with the flag named.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};

use edge_tl::dataset::EmbedOptions;
use edge_tl::model::Threads;
use edge_tl::settings::bounds::{self, flag};
use edge_tl::settings::{RunLayer, RunSettings, Secret};
use edge_tl::source::{PixelFormat, Size, SourceSpec};

/// The backbone to use; shared by every command that runs the network.
#[derive(Debug, Clone, Args)]
pub struct ModelArg {
    /// Backbone: a name from `edge-tl models list`, or a path to an .onnx file or a manifest
    /// .toml [default: the head's backbone, else mobilenet-v2-f32]
    #[arg(long, short = 'm', env = "EDGE_TL_MODEL", value_name = "NAME|PATH")]
    pub model: Option<String>,
}

/// Threads per picture, for commands that run pictures one after another.
#[derive(Debug, Clone, Args)]
pub struct ThreadsArg {
    /// Threads the backbone uses for each picture, or `auto`: from 1 up to every core,
    /// whichever measures fastest [default: auto]
    #[arg(long, short = 't', env = "EDGE_TL_THREADS", value_name = "N|auto",
          value_parser = bounds::threads_flag)]
    pub threads: Option<Threads>,
}

impl ThreadsArg {
    /// The count asked for, else measured.
    pub fn resolve(&self) -> Threads {
        self.threads.unwrap_or_else(Threads::auto)
    }
}

/// Embedding settings shared by train and eval.
#[derive(Debug, Clone, Args)]
pub struct EmbedArgs {
    /// Threads running the backbone [default: all cores]
    #[arg(long, short = 'j', value_name = "N", value_parser = flag::<usize>(bounds::JOBS))]
    pub jobs: Option<usize>,
    /// Folder of the embedding cache [default: <data>/.edge-tl-cache, or the user cache folder
    /// when the dataset is read-only]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Neither read nor write the embedding cache
    #[arg(long)]
    pub no_cache: bool,
}

impl EmbedArgs {
    /// The library's embedding options; `flip` also embeds mirrored copies.
    pub fn options(&self, flip: bool) -> EmbedOptions {
        let defaults = EmbedOptions::default();
        EmbedOptions {
            flip,
            cache_dir: self.cache_dir.clone(),
            no_cache: self.no_cache,
            jobs: self.jobs.unwrap_or(defaults.jobs),
            region: None,
        }
    }
}

/// Where frames come from; shared by capture and run. Every value is optional so that `run`
/// can tell a flag from a default and lay the settings file between them.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Frames from: v4l:/dev/videoN (a camera), dir:FOLDER (pictures in name order),
    /// file:RECORDING (an MJPEG stream on disk), an http(s):// MJPEG stream or an
    /// rtsp://[USER[:PASSWORD]@]HOST[:PORT]/PATH camera sending H.264
    /// [default: v4l:/dev/video0]
    // Parsed after clap, not by it: clap would repeat a refused value, password and all.
    #[arg(long, short = 's', env = "EDGE_TL_SOURCE", value_name = "SOURCE")]
    pub source: Option<String>,
    /// Camera pixel format: mjpeg or yuyv [default: MJPEG when offered]
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<PixelFormat>,
    /// Camera frame size [default: 640x480 when offered]
    #[arg(long, value_name = "WxH")]
    pub size: Option<Size>,
    /// Camera frame rate [default: the highest offered at that size]
    #[arg(long, value_name = "FPS", value_parser = flag::<f64>(bounds::FPS))]
    pub fps: Option<f64>,
    /// Start a replay (dir:, file:) again after its last frame
    #[arg(long = "loop")]
    pub looping: bool,
    /// Deliver a replay's frames at this rate, like a live camera (stale frames are then
    /// dropped); without it a replay waits for each frame to be processed
    #[arg(long, value_name = "FPS", value_parser = flag::<f64>(bounds::FPS))]
    pub replay_fps: Option<f64>,
    /// Password for an rtsp:// source whose URL names only the user; visible in ps: prefer
    /// EDGE_TL_SOURCE_PASSWORD or --source-password-file
    #[arg(
        long,
        env = "EDGE_TL_SOURCE_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub source_password: Option<String>,
    /// File holding the rtsp:// source's password, read once at start
    #[arg(long, value_name = "FILE", conflicts_with = "source_password")]
    pub source_password_file: Option<PathBuf>,
}

/// Fine-tuning settings, shared by `finetune` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct FinetuneArgs {
    /// Inverted-residual blocks trained besides the final 1x1 convolution
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = flag::<usize>(bounds::UNFREEZE))]
    pub unfreeze: usize,
    /// Most passes over the training pictures
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = flag::<usize>(bounds::EPOCHS))]
    pub epochs: usize,
    /// Learning rate
    #[arg(long, default_value_t = 1e-4, value_name = "LR", value_parser = flag::<f64>(bounds::LEARNING_RATE))]
    pub lr: f64,
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerArg,
    /// Learning-rate schedule over the epochs
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: ScheduleArg,
    /// Pictures per step
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = flag::<usize>(bounds::BATCH))]
    pub batch: usize,
    /// Augmented variants (random crop, flip) per training picture, besides the picture
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = flag::<usize>(bounds::AUGMENT))]
    pub augment: usize,
    /// Smallest share of a picture's area a random crop keeps
    #[arg(long, default_value_t = 0.35, value_name = "SHARE", value_parser = flag::<f64>(bounds::CROP_AREA))]
    pub crop_area: f64,
    /// Share of each label held out for validation and early stopping (0: none)
    #[arg(long, default_value_t = 0.2, value_name = "FRACTION", value_parser = flag::<f64>(bounds::VAL_SPLIT))]
    pub val_split: f64,
    /// Stop after this many epochs without a better validation accuracy
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = flag::<usize>(bounds::PATIENCE))]
    pub patience: usize,
    /// Weight decay
    #[arg(long, default_value_t = 1e-4, value_name = "W", value_parser = flag::<f64>(bounds::WEIGHT_DECAY))]
    pub weight_decay: f64,
    /// Label smoothing of the training loss
    #[arg(long, default_value_t = 0.1, value_name = "SHARE", value_parser = flag::<f64>(bounds::LABEL_SMOOTHING))]
    pub label_smoothing: f64,
    /// Share of the fine-tuned weights in the exported model, the rest being the starting
    /// weights (pretrained blocks and the linear-probe classifier); 1 = as trained
    #[arg(long, default_value_t = 0.5, value_name = "SHARE", value_parser = flag::<f64>(bounds::MIX))]
    pub mix: f64,
    /// Export the epoch the validation split chose as it is, instead of training that many
    /// epochs again on every picture (validation ones included)
    #[arg(long)]
    pub no_refit: bool,
    /// Store the exported weights as int8 (one scale per output channel): a quarter of the
    /// file size, the same speed in tract, a rounding's cost in accuracy
    #[arg(long)]
    pub int8: bool,
    /// Seed of the split, the augmentation and the order: a run repeats exactly
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `--optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// Adam with decoupled weight decay
    Adam,
    /// SGD with momentum 0.9
    Sgd,
}

/// `--schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// Cosine decay to zero
    Cosine,
    Constant,
}

/// What `dream` and `attack` aim at and check against.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// Aim at this head's labels (the backbone's embedding through the head)
    #[arg(long, value_name = "FILE")]
    pub head: Option<PathBuf>,
    /// The model tract runs to check whether the picture fools the device too
    #[arg(long, default_value = "mobilenet-v2-int8", value_name = "NAME|PATH")]
    pub int8_model: String,
    /// One JSON object per picture instead of text
    #[arg(long)]
    pub json: bool,
    /// The float model the gradients are taken on [default: the head's backbone, else
    /// mobilenet-v2-f32]
    #[command(flatten)]
    pub model: ModelArg,
}

impl SourceArgs {
    /// What these flags say, as the top layer of `run`'s settings.
    pub fn layer(&self) -> anyhow::Result<RunLayer> {
        let source = match &self.source {
            Some(s) => Some(s.parse::<SourceSpec>().context("--source")?),
            None => None,
        };
        Ok(RunLayer {
            source,
            format: self.format,
            size: self.size,
            fps: self.fps,
            looping: self.looping.then_some(true),
            replay_fps: self.replay_fps,
            source_password: Secret::given(
                self.source_password.clone(),
                self.source_password_file.clone(),
                "--source-password-file".into(),
            ),
            ..RunLayer::default()
        })
    }

    /// Opens the source these flags name (the first camera when none is named), for commands
    /// that read no settings file.
    pub fn open(&self) -> anyhow::Result<Box<dyn edge_tl::source::FrameSource>> {
        let settings = RunSettings::resolve(self.layer()?)?;
        Ok(edge_tl::source::open(
            &settings.source,
            &settings.source_options,
        )?)
    }
}
