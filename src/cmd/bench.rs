//! `edge-tl bench`: load time, start-up to first prediction, per-picture extractor latency
//! (median, p90), training time for 200 cached embeddings, and peak RSS, on real photos.
//! `scripts/bench.py` runs this and onnxruntime on the same tensors and prints the ratio.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::args::ModelArg;
use edge_tl::dataset::{embed_dataset, Dataset, EmbedOptions};
use edge_tl::head::train::{train, HeadKind, TrainParams};
use edge_tl::head::{Backbone, LogisticParams};
use edge_tl::metrics::percentile;
use edge_tl::model::{Extractor, Outputs, Threads};
use edge_tl::preprocess::{decode_file, to_input};
use edge_tl::settings::bounds::{self, flag};

#[derive(Serialize)]
struct Report {
    model: String,
    model_path: PathBuf,
    pictures: usize,
    rounds: usize,
    /// `1`, `2`... or `auto`: the `--threads` asked for.
    threads_setting: String,
    /// Threads per picture at the end (with `auto`, the count it had chosen).
    threads: usize,
    /// Whose kernels ran the convolutions: `avx512`, `avx2`, `neon`, `portable` or `tract`.
    kernels: String,
    /// The CPU's vector features (`avx2 fma`...), which decide the default kernels.
    cpu_flags: String,
    /// Convolutions on edge-tl's fused kernels (0 with `EDGE_TL_KERNELS=tract`).
    fused_convolutions: usize,
    /// QDQ pairs folded into a fused convolution, and left alone (int8 files).
    fused_grids: (usize, usize),
    load_ms: f64,
    first_prediction_ms: f64,
    extract_ms_p50: f64,
    extract_ms_p90: f64,
    preprocess_ms_p50: f64,
    train_samples: usize,
    train_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<Vec<edge_tl::model::extractor::OpTime>>,
    #[serde(rename = "loop")]
    camera_loop: Option<super::bench_loop::LoopReport>,
    peak_rss_mib: Option<f64>,
}

/// What `edge-tl bench` measures on.
#[derive(Debug, Args)]
pub struct Flags {
    /// Pictures to run [default: the shared test photos, $EDGE_TL_SHARED/models/testdata]
    #[arg(long, value_name = "DIR")]
    photos: Option<PathBuf>,
    /// Timed runs per picture set (after one warm-up pass)
    #[arg(long, default_value_t = 3, value_parser = flag::<usize>(bounds::ROUNDS))]
    rounds: usize,
    /// Dataset for the training-time measurement [default: $EDGE_TL_SHARED/data/catsdogs/train]
    #[arg(long, value_name = "DIR")]
    train_data: Option<PathBuf>,
    /// Recorded MJPEG stream for the camera-loop measurement [default: the photos as a
    /// 640x480 recording]
    #[arg(long, value_name = "FILE")]
    stream: Option<PathBuf>,
    /// Frames to run through the camera loop (0 = skip that measurement)
    #[arg(long, default_value_t = 60, value_name = "N", value_parser = flag::<u64>(bounds::LOOP_FRAMES))]
    loop_frames: u64,
    /// Skip the training measurement (as `scripts/arm-bench.sh` does under qemu)
    #[arg(long)]
    no_train: bool,
    /// Also print where the extractor's time goes, per operator kind
    #[arg(long)]
    profile: bool,
    /// Print one JSON object
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    model: ModelArg,
    /// Threads the backbone uses for each picture, or `auto` (as `run` by default: from 1 up
    /// to every core, whichever measures fastest)
    #[arg(long, short = 't', env = "EDGE_TL_THREADS", default_value = "1", value_name = "N|auto",
          value_parser = bounds::threads_flag)]
    threads: Threads,
}

pub fn run(args: Flags) -> anyhow::Result<ExitCode> {
    let Flags {
        photos,
        rounds,
        train_data,
        json,
        ..
    } = args;
    let start = Instant::now();
    let model = super::resolve_spec(Some(
        args.model
            .model
            .as_deref()
            .unwrap_or(edge_tl::model::manifest::DEFAULT_MODEL),
    ))
    .context("choosing the backbone (--model)")?;
    let mut extractor = Extractor::load(&model, Outputs::Embedding)
        .with_context(|| format!("loading {}", model.path.display()))?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    extractor.set_threads(args.threads);
    let photos = photos.unwrap_or_else(|| super::shared_dir().join("models/testdata"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&photos)
        .with_context(|| format!("reading {}", photos.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut inputs = Vec::new();
    let mut preprocess_ms = Vec::new();
    let mut first_prediction_ms = None;
    for f in &files {
        let t = Instant::now();
        let Ok(frame) = decode_file(f) else { continue };
        let input = to_input(&frame, &model.manifest);
        preprocess_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if first_prediction_ms.is_none() {
            extractor.run(&input)?;
            first_prediction_ms = Some(start.elapsed().as_secs_f64() * 1e3);
        }
        inputs.push(input);
    }
    anyhow::ensure!(
        !inputs.is_empty(),
        "no decodable pictures in {}",
        photos.display()
    );
    for input in &inputs {
        extractor.run(input)?; // warm-up
    }
    let mut extract_ms = Vec::new();
    for _ in 0..rounds {
        for input in &inputs {
            let t = Instant::now();
            extractor.run(input)?;
            extract_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    // Before the training measurement embeds a dataset on several threads at once.
    let threads_at_the_end = extractor.threads();
    let train_data = train_data.unwrap_or_else(|| super::shared_dir().join("data/catsdogs/train"));
    let opened = (!args.no_train).then(|| Dataset::open(&train_data));
    let (train_samples, train_ms) = match opened {
        None => (0, None),
        Some(Ok(ds)) => {
            let set = embed_dataset(
                &ds,
                &extractor,
                &EmbedOptions::default(),
                &super::progress("embedding"),
            )?;
            let backbone = Backbone::of(&model);
            let params = TrainParams {
                kind: HeadKind::Logistic(LogisticParams::default()),
                folds: 0,
                seed: 0,
                choose_alpha: false,
            };
            let t = Instant::now();
            train(&set, &train_data, backbone, &params)?;
            (set.samples.len(), Some(t.elapsed().as_secs_f64() * 1e3))
        }
        Some(Err(e)) => {
            eprintln!("no training measurement: {e:#}");
            (0, None)
        }
    };
    let profile = if args.profile {
        Some(extractor.profile(&inputs[0], rounds * 3)?)
    } else {
        None
    };
    let camera_loop = match args.loop_frames {
        0 => None,
        n => Some(super::bench_loop::measure(
            &model,
            args.stream.as_deref(),
            &files,
            n,
            args.threads,
        )?),
    };
    let report = Report {
        model: model.manifest.name.clone(),
        model_path: model.path.clone(),
        pictures: inputs.len(),
        rounds,
        threads_setting: match args.threads {
            Threads::Auto { .. } => "auto".to_string(),
            Threads::Fixed(n) => n.to_string(),
        },
        threads: threads_at_the_end,
        kernels: model.kernels.to_string(),
        cpu_flags: edge_tl::model::cpu_vector_flags(),
        fused_convolutions: extractor.fused_convolutions(),
        fused_grids: extractor.fused_grids(),
        load_ms,
        first_prediction_ms: first_prediction_ms.unwrap_or(f64::NAN),
        extract_ms_p50: percentile(&mut extract_ms, 0.5),
        extract_ms_p90: percentile(&mut extract_ms, 0.9),
        preprocess_ms_p50: percentile(&mut preprocess_ms, 0.5),
        train_samples,
        train_ms,
        camera_loop,
        profile,
        peak_rss_mib: peak_rss_mib(),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "model                 {} ({})",
            report.model,
            report.model_path.display()
        );
        println!(
            "kernels               {} on a CPU with {}; {} fused convolutions{} \
             (EDGE_TL_KERNELS=avx512|avx2|neon|portable|tract forces a path)",
            report.kernels,
            report.cpu_flags,
            report.fused_convolutions,
            match report.fused_grids {
                (0, 0) => String::new(),
                (folded, alone) => format!(", 8-bit grids: {folded} folded, {alone} alone"),
            }
        );
        println!("load                  {:.0} ms", report.load_ms);
        println!("start-up to 1st pred  {:.0} ms", report.first_prediction_ms);
        println!(
            "extract ({})  p50 {:.1} ms, p90 {:.1} ms over {} runs{}",
            args.threads,
            report.extract_ms_p50,
            report.extract_ms_p90,
            extract_ms.len(),
            match args.threads {
                Threads::Auto { .. } => format!("; on {} at the end", report.threads),
                Threads::Fixed(_) => String::new(),
            }
        );
        println!(
            "decode+resize         p50 {:.1} ms",
            report.preprocess_ms_p50
        );
        if let Some(t) = report.train_ms {
            println!(
                "train head            {t:.0} ms for {} samples",
                report.train_samples
            );
        }
        if let Some(l) = &report.camera_loop {
            println!(
                "camera loop           {:.1} frames/s over {} frames of {} ({} at the end)",
                l.fps,
                l.frames,
                l.stream,
                Threads::Fixed(l.threads)
            );
            println!(
                "  per stage p50       decode {:.1} ms, resize {:.1} ms, extract {:.1} ms, head {:.2} ms",
                l.decode_ms_p50, l.resize_ms_p50, l.extract_ms_p50, l.head_ms_p50
            );
        }
        if let Some(ops) = &report.profile {
            println!("extractor profile (ms per picture, by operator kind):");
            for o in ops.iter().filter(|o| o.ms >= 0.05) {
                println!("  {:<28} {:>7.2} ms  ({} nodes)", o.op, o.ms, o.nodes);
            }
        }
        if let Some(r) = report.peak_rss_mib {
            println!("peak RSS              {r:.0} MiB");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Peak resident set size of this process (Linux `VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
