//! The one path from bytes to network input, shared by train, predict, eval, classify and the
//! camera loop: decode by content (not by file name), apply EXIF orientation, convert any colour
//! model to RGB, resize as the model's manifest says, and lay the pixels out as its input tensor.
//! Train/serve skew is the classic transfer-learning bug; keeping one path rules it out.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::error::DecodeError;
use crate::frame::Frame;
pub use crate::model::input::{InputTensor, TensorData};
use crate::model::manifest::{DType, Layout, Manifest, Normalize, ResizeFilter, ResizeMode};

/// Bumped whenever decoding or resizing changes what pixels reach the network: the embedding
/// cache is keyed by it. 2: SIMD resizing (fast_image_resize) replaced `image`'s.
pub const PREPROCESS_VERSION: u32 = 2;

/// Largest picture edge-tl will decode: 50 megapixels (a 12 MP camera gives 12). Larger
/// pictures are refused before any pixel buffer is allocated (decompression-bomb guard).
pub const MAX_PIXELS: u64 = 50_000_000;

/// Upper bound on what a decoder may allocate, in bytes.
pub const MAX_DECODER_ALLOC: u64 = 512 * 1024 * 1024;

/// Reads and decodes an image file. See [`decode_bytes`].
pub fn decode_file(path: &Path) -> Result<Frame, DecodeError> {
    let bytes = std::fs::read(path).map_err(|source| DecodeError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut frame = decode_bytes(&bytes, path)?;
    if let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) {
        frame.timestamp = modified;
    }
    Ok(frame)
}

/// Decodes an encoded picture (JPEG, PNG, GIF, BMP, WebP: recognised by content) into an
/// upright RGB frame. `name` is used in errors only.
pub fn decode_bytes(bytes: &[u8], name: &Path) -> Result<Frame, DecodeError> {
    let path = name.to_path_buf();
    if bytes.is_empty() {
        return Err(DecodeError::Empty { path });
    }
    let format = image::guess_format(bytes)
        .map_err(|_| DecodeError::UnknownFormat { path: path.clone() })?;
    if format == ImageFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        // A cut-short JPEG decodes "successfully" into a half-grey picture with some decoders;
        // training on that silently is worse than refusing it.
        return Err(DecodeError::TruncatedJpeg { path });
    }
    if format == ImageFormat::Jpeg {
        return decode_jpeg(bytes, path);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODER_ALLOC);
    reader.limits(limits);
    let corrupt = |source| DecodeError::Corrupt {
        path: path.clone(),
        source,
    };
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_size(&path, width, height)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    picture.apply_orientation(orientation);
    Ok(Frame::new(picture.to_rgb8()))
}

/// JPEG through zune-jpeg in strict mode: damaged entropy-coded data is an error here, where
/// a lenient decoder would fill the rest of the picture with grey and report success.
fn decode_jpeg(bytes: &[u8], path: PathBuf) -> Result<Frame, DecodeError> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    let corrupt = |e: zune_jpeg::errors::DecodeErrors| DecodeError::Corrupt {
        path: path.clone(),
        source: image::ImageError::Decoding(image::error::DecodingError::new(
            ImageFormat::Jpeg.into(),
            e.to_string(),
        )),
    };
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut probe = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    probe.decode_headers().map_err(corrupt)?;
    let (width, height) = probe.dimensions().unwrap_or((0, 0));
    let (width, height) = (width as u32, height as u32);
    check_size(&path, width, height)?;
    let gray = probe.input_colorspace() == Some(ColorSpace::Luma);
    let out = if gray {
        ColorSpace::Luma
    } else {
        ColorSpace::RGB
    };
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        ZCursor::new(bytes),
        options.jpeg_set_out_colorspace(out),
    );
    let pixels = decoder.decode().map_err(corrupt)?;
    let orientation = decoder
        .exif()
        .and_then(|exif| image::metadata::Orientation::from_exif_chunk(exif))
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let rgb = if gray {
        pixels.iter().flat_map(|&v| [v, v, v]).collect()
    } else {
        pixels
    };
    let image =
        image::RgbImage::from_raw(width, height, rgb).ok_or_else(|| DecodeError::NoPixels {
            path: path.clone(),
            width,
            height,
        })?;
    let mut picture = DynamicImage::ImageRgb8(image);
    picture.apply_orientation(orientation);
    Ok(Frame::new(picture.into_rgb8()))
}

/// Refuses empty pictures and pictures over [`MAX_PIXELS`], before pixels are allocated.
fn check_size(path: &Path, width: u32, height: u32) -> Result<(), DecodeError> {
    let path = path.to_path_buf();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DecodeError::TooLarge {
            path,
            width,
            height,
            max_pixels: MAX_PIXELS,
        });
    }
    if width == 0 || height == 0 {
        return Err(DecodeError::NoPixels {
            path,
            width,
            height,
        });
    }
    Ok(())
}

/// True when the JPEG stream ends with an EOI marker (0xFFD9), ignoring trailing padding.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let trimmed = bytes
        .iter()
        .rposition(|&b| b != 0x00 && !b.is_ascii_whitespace())
        .map(|end| &bytes[..=end])
        .unwrap_or(&[]);
    trimmed.ends_with(&[0xFF, 0xD9])
}

/// Resizes a frame to the model's input size the way the manifest says.
pub fn resize_for(frame: &Frame, manifest: &Manifest) -> image::RgbImage {
    use fast_image_resize::{images::Image, images::ImageRef, FilterType, PixelType, ResizeAlg};
    let (h, w) = manifest.input_size();
    let src = &frame.image;
    if src.width() == w && src.height() == h {
        return src.clone();
    }
    let alg = match manifest.preprocess.filter {
        ResizeFilter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
        ResizeFilter::Nearest => ResizeAlg::Nearest,
    };
    let mut options = fast_image_resize::ResizeOptions::new().resize_alg(alg);
    if manifest.preprocess.resize == ResizeMode::CenterCrop {
        options = options.fit_into_destination(None);
    }
    let mut dst = Image::new(w, h, PixelType::U8x3);
    // An RGB buffer of width * height * 3 bytes is always a valid U8x3 image (alignment 1).
    let view = ImageRef::new(src.width(), src.height(), src.as_raw(), PixelType::U8x3)
        .expect("an RgbImage is a U8x3 image");
    RESIZER
        .with_borrow_mut(|r| r.resize(&view, &mut dst, &options))
        .expect("same pixel type, non-empty sizes");
    image::RgbImage::from_raw(w, h, dst.into_vec()).expect("w * h * 3 bytes")
}

thread_local! {
    /// The resizer keeps its scratch buffers and chosen SIMD path between calls.
    static RESIZER: std::cell::RefCell<fast_image_resize::Resizer> =
        std::cell::RefCell::new(fast_image_resize::Resizer::new());
}

/// [`to_input`] of the frame's `region` (of the whole frame without one): what training,
/// `predict`, `eval` and `run` all feed the network.
pub fn to_input_in(
    frame: &Frame,
    region: Option<&crate::region::Region>,
    manifest: &Manifest,
) -> InputTensor {
    match region {
        Some(r) => to_input(&r.crop(frame), manifest),
        None => to_input(frame, manifest),
    }
}

/// Turns a frame into the model's input tensor: resize, then layout and value range.
pub fn to_input(frame: &Frame, manifest: &Manifest) -> InputTensor {
    let resized = resize_for(frame, manifest);
    let (h, w) = (resized.height() as usize, resized.width() as usize);
    let pixels = resized.as_raw();
    let shape = manifest.input.shape;
    let data = match manifest.input.dtype {
        DType::U8 => TensorData::U8(match manifest.input.layout {
            Layout::Nhwc => pixels.clone(),
            Layout::Nchw => planar(pixels, h, w, |_, v| v),
        }),
        DType::F32 => {
            let norm = |c: usize, v: u8| -> f32 {
                match &manifest.preprocess.normalize {
                    Normalize::Raw => f32::from(v),
                    Normalize::MeanStd { mean, std } => (f32::from(v) / 255.0 - mean[c]) / std[c],
                }
            };
            TensorData::F32(match manifest.input.layout {
                Layout::Nhwc => pixels
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| norm(i % 3, v))
                    .collect(),
                Layout::Nchw => planar(pixels, h, w, norm),
            })
        }
    };
    InputTensor { shape, data }
}

/// Interleaved RGB to three planes; `f(channel, value)` maps each element.
fn planar<T: Copy>(pixels: &[u8], h: usize, w: usize, f: impl Fn(usize, u8) -> T) -> Vec<T> {
    let mut out = Vec::with_capacity(h * w * 3);
    for c in 0..3 {
        out.extend(pixels.iter().skip(c).step_by(3).map(|&v| f(c, v)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn manifest() -> Manifest {
        Manifest::builtin().remove(0)
    }

    fn png_bytes(img: &DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_by_content_not_name() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(4, 3, Rgb([10, 20, 30])));
        let frame = decode_bytes(&png_bytes(&img), Path::new("looks_like.jpg")).unwrap();
        assert_eq!((frame.width(), frame.height()), (4, 3));
        assert_eq!(frame.image.get_pixel(0, 0), &Rgb([10, 20, 30]));
    }

    #[test]
    fn gray_and_alpha_become_rgb() {
        let gray = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(2, 2, image::Luma([77])));
        let frame = decode_bytes(&png_bytes(&gray), Path::new("g.png")).unwrap();
        assert_eq!(frame.image.get_pixel(1, 1), &Rgb([77, 77, 77]));
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            2,
            2,
            image::Rgba([1, 2, 3, 200]),
        ));
        let frame = decode_bytes(&png_bytes(&rgba), Path::new("a.png")).unwrap();
        assert_eq!(frame.image.get_pixel(0, 0), &Rgb([1, 2, 3]));
    }

    #[test]
    fn empty_text_and_truncated_are_named() {
        let p = Path::new("x.jpg");
        assert!(matches!(
            decode_bytes(&[], p),
            Err(DecodeError::Empty { .. })
        ));
        assert!(matches!(
            decode_bytes(b"hello, not a picture", p),
            Err(DecodeError::UnknownFormat { .. })
        ));
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(16, 16, Rgb([9, 9, 9])));
        let mut jpeg = Cursor::new(Vec::new());
        img.write_to(&mut jpeg, ImageFormat::Jpeg).unwrap();
        let jpeg = jpeg.into_inner();
        assert!(decode_bytes(&jpeg, p).is_ok());
        let err = decode_bytes(&jpeg[..jpeg.len() / 2], p).unwrap_err();
        assert!(matches!(err, DecodeError::TruncatedJpeg { .. }), "{err}");
        assert!(err.to_string().starts_with("x.jpg: truncated JPEG"));
    }

    #[test]
    fn u8_nhwc_tensor_is_the_resized_pixels() {
        let m = manifest();
        let frame = Frame::new(RgbImage::from_pixel(300, 200, Rgb([5, 6, 7])));
        let t = to_input(&frame, &m);
        assert_eq!(t.shape, [1, 224, 224, 3]);
        let TensorData::U8(v) = &t.data else {
            panic!("u8 expected")
        };
        assert_eq!(v.len(), 224 * 224 * 3);
        assert_eq!(&v[..6], &[5, 6, 7, 5, 6, 7]);
    }

    #[test]
    fn f32_nchw_mean_std_layout() {
        let mut m = manifest();
        m.input.layout = Layout::Nchw;
        m.input.shape = [1, 3, 2, 2];
        m.input.dtype = DType::F32;
        m.preprocess.normalize = Normalize::MeanStd {
            mean: [0.5, 0.5, 0.5],
            std: [0.5, 0.5, 0.5],
        };
        let frame = Frame::new(RgbImage::from_fn(2, 2, |x, _| {
            if x == 0 {
                Rgb([0, 255, 0])
            } else {
                Rgb([255, 0, 255])
            }
        }));
        let t = to_input(&frame, &m);
        let TensorData::F32(v) = &t.data else {
            panic!("f32 expected")
        };
        // plane R: [-1, 1, -1, 1], plane G: [1, -1, 1, -1]
        assert_eq!(&v[..4], &[-1.0, 1.0, -1.0, 1.0]);
        assert_eq!(&v[4..8], &[1.0, -1.0, 1.0, -1.0]);
    }

    #[test]
    fn center_crop_keeps_the_middle() {
        let mut m = manifest();
        m.preprocess.resize = ResizeMode::CenterCrop;
        m.preprocess.filter = ResizeFilter::Nearest;
        // 448x224: left quarter red, middle half green, right quarter blue
        let frame = Frame::new(RgbImage::from_fn(448, 224, |x, _| match x {
            0..=111 => Rgb([255, 0, 0]),
            112..=335 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        }));
        let out = resize_for(&frame, &m);
        assert_eq!((out.width(), out.height()), (224, 224));
        assert!(out.pixels().all(|p| *p == Rgb([0, 255, 0])));
    }
}
