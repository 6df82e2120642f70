//! `edge-tl features`: a layer's feature maps for one picture, as a grid PNG.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use edge_tl::atomic_file::save_png;
use edge_tl::feature_grid::render;
use edge_tl::model::layers::Layers;
use edge_tl::preprocess;

pub struct FeaturesArgs {
    pub photo: Option<PathBuf>,
    pub layer: String,
    pub out: PathBuf,
    pub max_channels: usize,
    pub model: Option<String>,
}

/// Smallest tile width in the PNG: a 7x7 map becomes 56x56 pixels.
const MIN_TILE: u32 = 56;

pub fn run(args: FeaturesArgs) -> anyhow::Result<ExitCode> {
    let model = super::resolve_model(args.model.as_deref(), None)?;
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
