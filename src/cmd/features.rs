//! `edge-tl features`: a layer's feature maps for one picture, as a grid PNG.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::args::ModelArg;
use edge_tl::atomic_file::save_png;
use edge_tl::feature_grid::render;
use edge_tl::model::layers::Layers;
use edge_tl::preprocess;
use edge_tl::settings::bounds::{self, flag};

#[derive(Debug, Args)]
pub struct Flags {
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
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = flag::<usize>(bounds::MAX_CHANNELS))]
    max_channels: usize,
    #[command(flatten)]
    model: ModelArg,
}

/// Smallest tile width in the PNG: a 7x7 map becomes 56x56 pixels.
const MIN_TILE: u32 = 56;

pub fn run(args: Flags) -> anyhow::Result<ExitCode> {
    let model = super::resolve_model(args.model.model.as_deref(), None)?;
    let layers =
        Layers::open(&model).with_context(|| format!("reading {}", model.path.display()))?;
    if args.layer == "list" {
        println!(
            "{:>5}  {:<5} {:>16}  name",
            "layer", "op", "channels x h x w"
        );
        for l in layers.list() {
            let [c, h, w] = l.shape;
            println!(
                "{:>5}  {:<5} {:>16}  {}",
                l.index,
                l.op,
                format!("{c} x {h} x {w}"),
                l.name
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let photo = args
        .photo
        .context("give a picture: edge-tl features PHOTO --layer N --out maps.png")?;
    let layer = layers.find(&args.layer)?;
    let frame = preprocess::decode_file(&photo)?;
    let input = preprocess::to_input(&frame, &model.manifest);
    let maps = layers
        .activations(layer, &input)
        .with_context(|| format!("computing layer {} on {}", layer.index, photo.display()))?;
    let (img, grid) = render(&maps, args.max_channels, MIN_TILE);
    save_png(&img, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let [c, h, w] = layer.shape;
    println!(
        "wrote {}: layer {} {} ({}), {} of {c} channels of {h}x{w}, {}x{} grid",
        args.out.display(),
        layer.index,
        layer.name,
        layer.op,
        grid.channels_shown,
        grid.columns,
        grid.rows
    );
    Ok(ExitCode::SUCCESS)
}
