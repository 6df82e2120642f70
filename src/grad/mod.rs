//! The gradient engine: the backbone's float ONNX graph run in candle, a CPU tensor library
//! with reverse-mode autodiff, so gradients can flow to the input picture (`dream`, `attack`)
//! and to the weights (fine-tuning). tract, which runs everything on the device, computes no
//! gradients. Behind the `grad` cargo feature: the device build does not carry it.
//!
//! Why candle and not burn (both measured on this machine kind, see docs/design.md): candle builds
//! in a few minutes as a plain library, while burn's ONNX import generates Rust code from the
//! model in a build script and costs ~27 CPU-minutes, compiled twice; candle reads the very
//! ONNX file tract runs, through tract's own protobuf parser, so both engines see the same
//! weights. candle's grouped convolution is slow (one convolution per group), so depthwise
//! convolutions are written here as nine shifted multiply-adds, which candle differentiates.

mod conv;
pub mod head_layer;
pub mod net;

pub use head_layer::HeadLayer;
pub use net::{GradError, Net};

use candle_core::Tensor;

use crate::preprocess::{InputTensor, TensorData};

/// candle's CPU device (the only one edge-tl builds).
pub fn device() -> candle_core::Device {
    candle_core::Device::Cpu
}

/// A model input (uint8 NHWC, as the shipped MobileNets take) as the engine's pixel tensor:
/// (1, H, W, 3) f32 in 0..255.
pub fn pixels(input: &InputTensor) -> Result<Tensor, GradError> {
    let TensorData::U8(data) = &input.data else {
        return Err(GradError::Input(
            "the gradient engine takes models with a uint8 NHWC input".into(),
        ));
    };
    let values: Vec<f32> = data.iter().map(|&v| f32::from(v)).collect();
    Tensor::from_vec(values, input.shape.to_vec(), &device()).map_err(net::computing("pixels"))
}

/// The first picture of a (N, H, W, 3) pixel tensor as an image, rounded to whole levels.
pub fn to_image(pixels: &Tensor) -> Result<image::RgbImage, GradError> {
    let (_, h, w, _) = pixels.dims4().map_err(net::computing("image"))?;
    let values: Vec<u8> = pixels
        .get(0)
        .and_then(|p| p.flatten_all())
        .and_then(|p| p.to_vec1::<f32>())
        .map_err(net::computing("image"))?
        .into_iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    Ok(image::RgbImage::from_raw(w as u32, h as u32, values).expect("h * w * 3 values"))
}
