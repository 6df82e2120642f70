//! Writing files (feature-map grids, dreamed and adversarial pictures, fine-tuned models and
//! their manifests) so that a crash or a full disk never leaves a half-written file under the
//! name the user asked for: a temporary file in the same folder, then a rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::{EncodableLayout, ImageBuffer, PixelWithColorType};

/// Writes what `fill` writes to `path`, atomically.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".edge-tl-")
        .suffix(".part")
        .tempfile_in(&dir)?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    // Temporary files are created private (0600); the result is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes bytes to `path`, atomically.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// Writes a PNG atomically.
pub fn save_png<P>(img: &ImageBuffer<P, Vec<P::Subpixel>>, path: &Path) -> std::io::Result<()>
where
    P: PixelWithColorType,
    [P::Subpixel]: EncodableLayout,
{
    write_with(path, |w| {
        img.write_to(w, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })
}
