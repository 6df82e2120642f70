#!/usr/bin/env bash
# Does tract-tflite run the upstream Coral .tflite files? Builds a throwaway crate (outside
# this repository, so the device build does not carry tract-tflite) that loads each file,
# feeds the shared test photos (whole picture resized to HxW, bilinear, raw uint8) and prints
# the ImageNet top-1, to compare with `edge-tl classify --model <onnx twin>`.
# usage: scripts/try_tract_tflite.sh   (set CARGO_TARGET_DIR to reuse an existing tract build)
set -euo pipefail
shared="${EDGE_TL_SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
crate="$(mktemp -d)/try-tract-tflite"
mkdir -p "$crate/src"
cat > "$crate/Cargo.toml" <<'TOML'
[package]
name = "try-tract-tflite"
version = "0.1.0"
edition = "2021"
[dependencies]
tract-tflite = "0.23.9"
image = { version = "0.25", default-features = false, features = ["jpeg", "png", "bmp"] }
[profile.dev]
debug = false
opt-level = 1
[profile.dev.package."*"]
opt-level = 3
TOML
cat > "$crate/src/main.rs" <<'RUST'
use tract_tflite::prelude::*;

fn top1(path: &str, size: usize, photos: &[String]) -> TractResult<()> {
    let model = tract_tflite::tflite().model_for_path(path)?.into_optimized()?;
    let dt = model.input_fact(0)?.datum_type;
    let model = model.into_runnable()?;
    for photo in photos {
        let img = image::open(photo)?.to_rgb8();
        let img = image::imageops::resize(&img, size as u32, size as u32, image::imageops::FilterType::Triangle);
        let mut t = Tensor::from_shape(&[1, size, size, 3], img.as_raw())?;
        // The input is quantized uint8 (QU8): same bytes, quantized type.
        unsafe { t.set_datum_type(dt) };
        let out = model.run(tvec!(t.into_tvalue()))?;
        let scores = out[0].cast_to::<f32>()?;
        let scores = scores.to_plain_array_view::<f32>()?;
        let best = scores.iter().enumerate().fold((0, f32::MIN), |a, (i, &p)| if p > a.1 { (i, p) } else { a });
        println!("  {photo}: top-1 {}", best.0);
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (path, size) = (&args[1], args[2].parse::<usize>().unwrap());
    println!("{path}");
    if let Err(e) = top1(path, size, &args[3..]) {
        println!("  FAILS: {}", e.root_cause());
    }
}
RUST
(cd "$crate" && cargo build --quiet)
bin="${CARGO_TARGET_DIR:-$crate/target}/debug/try-tract-tflite"
photos=("$shared"/models/testdata/*)
"$bin" "$shared/models/mobilenet_v2_1.0_224_quant.tflite" 224 "${photos[@]}"
"$bin" "$shared/models/mobilenet_v1_0.75_192_quant.tflite" 192 "${photos[@]}"
