//! Writing PNGs (feature-map grids, dreamed and adversarial pictures) so that a crash or a
//! full disk never leaves a half-written file under the name the user asked for.

use std::path::{Path, PathBuf};

use image::{EncodableLayout, ImageBuffer, PixelWithColorType};

/// Writes a PNG atomically (temporary file in the same folder, then rename).
pub fn save_png<P>(img: &ImageBuffer<P, Vec<P::Subpixel>>, path: &Path) -> std::io::Result<()>
where
    P: PixelWithColorType,
    [P::Subpixel]: EncodableLayout,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".edge-tl-")
        .suffix(".png.part")
        .tempfile_in(&dir)?;
    img.write_to(
        &mut std::io::BufWriter::new(tmp.as_file_mut()),
        image::ImageFormat::Png,
    )
    .map_err(std::io::Error::other)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
