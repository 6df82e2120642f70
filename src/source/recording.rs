//! Making camera-like recordings from photos: each photo decoded, cropped and resized to fill
//! the frame size, encoded as a JPEG as a webcam would send it. Tests and the benchmark
//! replay these through the `file:` and `dir:` sources.

use std::path::Path;

use image::imageops::FilterType;

use super::Size;
use crate::error::DecodeError;

/// One photo as a camera frame of `size` (JPEG quality 90).
pub fn camera_frame(photo: &Path, size: Size) -> Result<Vec<u8>, DecodeError> {
    let frame = crate::preprocess::decode_file(photo)?;
    let filled = image::DynamicImage::ImageRgb8(frame.image).resize_to_fill(
        size.width,
        size.height,
        FilterType::Triangle,
    );
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&filled.to_rgb8())
        .map_err(|source| DecodeError::Corrupt {
            path: photo.to_path_buf(),
            source,
        })?;
    Ok(out)
}
