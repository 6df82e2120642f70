//! Command-line definitions (clap) and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Transfer learning on small devices: learn new classes from a few pictures, on the device.
#[derive(Debug, Parser)]
#[command(name = "edge-tl", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

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
    /// Threads the backbone uses for each picture [default: all cores]
    #[arg(long, short = 't', env = "EDGE_TL_THREADS", value_name = "N")]
    pub threads: Option<usize>,
}

impl ThreadsArg {
    /// The count asked for, else all cores.
    pub fn resolve(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// Embedding settings shared by train and eval.
#[derive(Debug, Clone, Args)]
pub struct EmbedArgs {
    /// Threads running the backbone [default: all cores]
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Folder of the embedding cache [default: <data>/.edge-tl-cache, or the user cache folder
    /// when the dataset is read-only]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Neither read nor write the embedding cache
    #[arg(long)]
    pub no_cache: bool,
}

/// A number from `lo` to `hi`: a value outside is refused with the flag named (clap adds it),
/// rather than quietly moved to the nearest bound.
fn within(lo: f64, hi: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s: &str| {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number"))?;
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!("must be from {lo} to {hi}"))
        }
    }
}

/// Fine-tuning settings, shared by `finetune` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct FinetuneArgs {
    /// Inverted-residual blocks trained besides the final 1x1 convolution
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub unfreeze: usize,
    /// Most passes over the training pictures
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub epochs: usize,
    /// Learning rate
    #[arg(long, default_value_t = 1e-4, value_name = "LR")]
    pub lr: f64,
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerArg,
    /// Learning-rate schedule over the epochs
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: ScheduleArg,
    /// Pictures per step
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub batch: usize,
    /// Augmented variants (random crop, flip) per training picture, besides the picture
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub augment: usize,
    /// Smallest share of a picture's area a random crop keeps
    #[arg(long, default_value_t = 0.35, value_name = "SHARE", value_parser = within(0.05, 1.0))]
    pub crop_area: f64,
    /// Share of each label held out for validation and early stopping (0: none)
    #[arg(long, default_value_t = 0.2, value_name = "FRACTION", value_parser = within(0.0, 0.9))]
    pub val_split: f64,
    /// Stop after this many epochs without a better validation accuracy
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub patience: usize,
    /// Weight decay
    #[arg(long, default_value_t = 1e-4, value_name = "W")]
    pub weight_decay: f64,
    /// Label smoothing of the training loss
    #[arg(long, default_value_t = 0.1, value_name = "SHARE", value_parser = within(0.0, 0.5))]
    pub label_smoothing: f64,
    /// Share of the fine-tuned weights in the exported model, the rest being the starting
    /// weights (pretrained blocks and the linear-probe classifier); 1 = as trained
    #[arg(long, default_value_t = 0.5, value_name = "SHARE", value_parser = within(0.0, 1.0))]
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

/// The HTTP service and MQTT publishing of `run`.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// Serve the live page and the HTTP API on ADDRESS:PORT (e.g. 127.0.0.1:8080)
    #[arg(long, env = "EDGE_TL_HTTP", value_name = "ADDR:PORT")]
    pub http: Option<std::net::SocketAddr>,
    /// Bearer token for the HTTP service (required unless it listens on loopback)
    #[arg(
        long,
        env = "EDGE_TL_HTTP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub http_token: Option<String>,
    /// Dataset folder the page's captures go to and trains from
    #[arg(
        long,
        short = 'd',
        env = "EDGE_TL_DATA",
        default_value = "dataset",
        value_name = "DIR"
    )]
    pub data: PathBuf,
    /// Publish results to this MQTT broker (mqtt://HOST[:PORT])
    #[arg(long, env = "EDGE_TL_MQTT", value_name = "URL")]
    pub mqtt: Option<String>,
    /// MQTT user name
    #[arg(long, env = "EDGE_TL_MQTT_USER", value_name = "USER")]
    pub mqtt_user: Option<String>,
    /// MQTT password
    #[arg(
        long,
        env = "EDGE_TL_MQTT_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub mqtt_password: Option<String>,
    /// This device's name in MQTT topics [default: the host name]
    #[arg(long, env = "EDGE_TL_DEVICE_ID", value_name = "ID")]
    pub device_id: Option<String>,
}

/// Where frames come from; shared by capture and run.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Frames from: v4l:/dev/videoN (a camera), dir:FOLDER (pictures in name order),
    /// file:RECORDING (an MJPEG stream on disk) or an http(s):// MJPEG stream
    #[arg(long, short = 's', env = "EDGE_TL_SOURCE", default_value = edge_tl::source::DEFAULT_SOURCE)]
    pub source: String,
    /// Camera pixel format: mjpeg or yuyv [default: MJPEG when offered]
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<edge_tl::source::PixelFormat>,
    /// Camera frame size [default: 640x480 when offered]
    #[arg(long, value_name = "WxH")]
    pub size: Option<edge_tl::source::Size>,
    /// Camera frame rate [default: the highest offered at that size]
    #[arg(long, value_name = "FPS")]
    pub fps: Option<f64>,
    /// Start a replay (dir:, file:) again after its last frame
    #[arg(long = "loop")]
    pub looping: bool,
    /// Deliver a replay's frames at this rate, like a live camera (stale frames are then
    /// dropped); without it a replay waits for each frame to be processed
    #[arg(long, value_name = "FPS")]
    pub replay_fps: Option<f64>,
}

// `run` carries many flags; the enum is parsed once per process, so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a settings file for `run --config`
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// List V4L2 cameras with their formats, sizes and frame rates
    Devices {
        /// One JSON array instead of text
        #[arg(long)]
        json: bool,
    },
    /// Save camera frames as training pictures: <data>/<label>/<timestamp>-<n>.jpg
    Capture {
        /// What the camera is looking at (becomes the label folder)
        #[arg(long, short = 'l')]
        label: String,
        /// Pictures to take
        #[arg(long, short = 'n', default_value_t = 20)]
        count: u64,
        /// Time between pictures (e.g. 500ms, 2s)
        #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// Seconds to count down before the first picture
        #[arg(long, default_value_t = 0)]
        countdown: u64,
        /// Dataset folder (one sub-folder per label)
        #[arg(long, short = 'd', value_name = "DIR", default_value = "dataset")]
        data: PathBuf,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Classify frames in real time; one JSON line per result on stdout
    Run {
        /// Head file from `edge-tl train` (reloaded when it changes) [default: the backbone's
        /// ImageNet classes]
        #[arg(long, value_name = "FILE")]
        head: Option<PathBuf>,
        /// Below this (smoothed) probability the label is "unknown"
        #[arg(long, value_name = "P")]
        threshold: Option<f32>,
        /// Average probabilities over this many frames (1 = no smoothing)
        #[arg(long, default_value_t = 1, value_name = "N")]
        smooth: usize,
        /// Print a result only when the label changes
        #[arg(long)]
        on_change: bool,
        /// Labels listed per result
        #[arg(long, default_value_t = 3)]
        top: usize,
        /// Stop after this many results
        #[arg(long, value_name = "N")]
        frames: Option<u64>,
        /// Do not reload the head when its file changes
        #[arg(long)]
        no_watch: bool,
        /// Settings file (TOML); flags and environment variables override it
        #[arg(long, short = 'c', env = "EDGE_TL_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        model: ModelArg,
        #[command(flatten)]
        threads: ThreadsArg,
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// List, inspect and install backbones
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// What the network sees: a layer's feature maps for one picture, as a grid PNG
    Features {
        /// The picture (not needed with --layer list)
        photo: Option<PathBuf>,
        /// Layer: its number or (part of) its name; `list` lists them [default: 0, the first
        /// convolution]
        #[arg(long, default_value = "0", value_name = "NAME|INDEX|list")]
        layer: String,
        /// Where to write the PNG
        #[arg(long, short = 'o', value_name = "FILE.png", default_value = "maps.png")]
        out: PathBuf,
        /// Channels shown (the first N)
        #[arg(long, default_value_t = 64, value_name = "N")]
        max_channels: usize,
        #[command(flatten)]
        model: ModelArg,
    },
    /// What the network sees: a picture optimised from noise until the network calls it a
    /// class (an ImageNet class, or a head's label with --head); needs `--features grad`
    Dream {
        /// The class: an ImageNet label (exact, or a unique part of it), or a head label
        #[arg(long = "class", value_name = "LABEL")]
        class: String,
        /// Gradient steps
        #[arg(long, default_value_t = 300, value_name = "N")]
        steps: usize,
        /// Weight of the total-variation penalty (smoothness) against the class log-probability
        #[arg(long, default_value_t = 0.001, value_name = "WEIGHT")]
        tv: f64,
        /// Adam step size, in pixel levels
        #[arg(long, default_value_t = 4.0, value_name = "LEVELS")]
        lr: f64,
        /// Shift the picture randomly by up to N pixels each step (0: none)
        #[arg(long, default_value_t = 4, value_name = "N")]
        jitter: usize,
        /// Seed of the starting noise and the jitter
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print the class probability every N steps
        #[arg(long, default_value_t = 25, value_name = "N")]
        every: usize,
        /// Where to write the PNG
        #[arg(
            long,
            short = 'o',
            default_value = "ideal.png",
            value_name = "FILE.png"
        )]
        out: PathBuf,
        #[command(flatten)]
        explain: ExplainArgs,
    },
    /// How easily the network is fooled: nudge pictures, within a pixel budget, until the
    /// network calls them the target class; needs `--features grad`
    Attack {
        /// Pictures to attack (JPEG, PNG, GIF, BMP, WebP)
        #[arg(required = true)]
        photos: Vec<PathBuf>,
        /// The class to aim for: an ImageNet label (exact, or a unique part), or a head label
        #[arg(long, value_name = "LABEL")]
        target: String,
        /// Largest change of any pixel, as a fraction of the range (8/255, 0.03)
        #[arg(long, default_value = "8/255", value_name = "FRACTION")]
        eps: String,
        /// Change per step in pixel levels [default: a quarter of the budget, at least 1]
        #[arg(long, value_name = "LEVELS")]
        step: Option<u8>,
        /// Most gradient steps per picture
        #[arg(long, default_value_t = 50, value_name = "N")]
        steps: usize,
        /// Stop once the target has this probability
        #[arg(long, default_value_t = 0.9, value_name = "P")]
        until: f32,
        /// The PNG to write; with several pictures, a folder for <name>.adv.png files
        /// [default: adv.png, or adv/]
        #[arg(long, short = 'o', value_name = "PATH")]
        out: Option<PathBuf>,
        #[command(flatten)]
        explain: ExplainArgs,
    },
    /// Fine-tune the backbone's last blocks and a new classifier on a workstation, and export
    /// an ONNX file the device runs with `--model FILE.onnx`; needs `--features grad`
    Finetune {
        /// Training pictures in <data>/<label>/ folders
        #[arg(long, short = 'd', value_name = "DIR")]
        data: PathBuf,
        /// The ONNX file to write (a manifest <name>.toml and <name>.labels.txt go beside it)
        #[arg(long, short = 'o', value_name = "FILE.onnx")]
        out: PathBuf,
        #[command(flatten)]
        train: FinetuneArgs,
        /// One JSON object with the epochs and the files written, instead of text
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArg,
    },
    /// Compare the on-device head (frozen features) with fine-tuning on the same train and
    /// test folders: accuracy, training time, model size, latency; needs `--features grad`
    Compare {
        /// Training pictures in <dir>/<label>/ folders
        #[arg(long, value_name = "DIR")]
        train: PathBuf,
        /// Test pictures in <dir>/<label>/ folders (labels named as in --train)
        #[arg(long, value_name = "DIR")]
        test: PathBuf,
        /// Keep the fine-tuned model here [default: a temporary folder]
        #[arg(long, value_name = "FILE.onnx")]
        out: Option<PathBuf>,
        #[command(flatten)]
        finetune: FinetuneArgs,
        /// One JSON object with `head` and `finetuned` entries, instead of the table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArg,
    },
    /// Name what is in pictures with the backbone's own ImageNet classifier (no head needed)
    Classify {
        /// Pictures (JPEG, PNG, GIF, BMP, WebP)
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How many classes to show per picture
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// One JSON object per picture instead of text
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArg,
        #[command(flatten)]
        threads: ThreadsArg,
    },
    /// Train a head on a dataset folder (<data>/<label>/*.jpg)
    Train {
        /// Dataset folder: one sub-folder per label
        #[arg(long, short = 'd', value_name = "DIR")]
        data: PathBuf,
        /// Where to write the head
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
        /// Kind of head
        #[arg(long, value_enum, default_value_t = HeadKindArg::Logistic)]
        head: HeadKindArg,
        /// L2 regularisation of the logistic head (scikit-learn's 1/C)
        #[arg(long, default_value_t = 1.0)]
        alpha: f64,
        /// Also learn from each picture mirrored left-right
        #[arg(long)]
        flip: bool,
        /// Cross-validation folds for the accuracy estimate (0 = none)
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Seed of the cross-validation split
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print a JSON summary instead of text
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArg,
        #[command(flatten)]
        embed: EmbedArgs,
    },
    /// Classify pictures with a trained head
    Predict {
        /// Head file written by `edge-tl train`; with a fine-tuned `--model FILE.onnx`, which
        /// carries its own classifier and labels, no head: every argument is a picture
        #[arg(value_name = "HEAD|PICTURE")]
        head: PathBuf,
        /// Pictures
        files: Vec<PathBuf>,
        /// How many labels to show per picture
        #[arg(long, default_value_t = 3)]
        top: usize,
        /// One JSON object per picture instead of text
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArg,
        #[command(flatten)]
        threads: ThreadsArg,
    },
    /// Measure a head on a labelled test folder (<testset>/<label>/*.jpg)
    Eval {
        /// Head file written by `edge-tl train`
        head: PathBuf,
        /// Test folder with the same label names as the training data
        testset: PathBuf,
        /// Print one JSON object (accuracy, top5_accuracy, n, per_class, confusion)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArg,
        #[command(flatten)]
        embed: EmbedArgs,
    },
    /// Measure speed and memory on real pictures (see the README for the onnxruntime peer)
    Bench {
        /// Pictures to run [default: the shared test photos]
        #[arg(long, value_name = "DIR")]
        photos: Option<PathBuf>,
        /// Timed runs per picture set (after one warm-up pass)
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Dataset for the training-time measurement [default: shared catsdogs/train]
        #[arg(long, value_name = "DIR")]
        train_data: Option<PathBuf>,
        /// Recorded MJPEG stream for the camera-loop measurement [default: the photos as a
        /// 640x480 recording]
        #[arg(long, value_name = "FILE")]
        stream: Option<PathBuf>,
        /// Frames to run through the camera loop (0 = skip that measurement)
        #[arg(long, default_value_t = 60, value_name = "N")]
        loop_frames: u64,
        /// Also print where the extractor's time goes, per operator kind
        #[arg(long)]
        profile: bool,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArg,
        #[command(flatten)]
        threads: ThreadsArg,
    },
    /// Write the input tensors edge-tl feeds the network, for comparison with other runtimes
    DumpInputs {
        /// Output folder: one <name>.bin (raw tensor bytes) per picture, plus index.json
        #[arg(long, short = 'o', value_name = "DIR")]
        out: PathBuf,
        /// Pictures
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also write the embeddings and logits tract computes (tract.json)
        #[arg(long)]
        with_outputs: bool,
        #[command(flatten)]
        model: ModelArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and check a settings file; name the exact key and problem if it is wrong
    Check {
        /// The file, e.g. /etc/edge-tl/config.toml
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Known backbones: name, size, embedding width, installed or not
    List {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Download (or copy) a backbone, check its sha256 and install it
    Pull {
        /// Name from `edge-tl models list`
        name: String,
        /// An http(s) address or a local file to install from [default: the manifest's URLs]
        #[arg(long, value_name = "URL|FILE")]
        from: Option<String>,
        /// Folder to install into [default: first of $EDGE_TL_MODELS, else the user data folder]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HeadKindArg {
    /// Multinomial logistic regression (linfa-logistic) on standardised features
    Logistic,
    /// Nearest class mean (works from one picture per label)
    Centroid,
}
