//! Saving captured frames as training samples: `<data>/<label>/<timestamp>-<n>.jpg`, written
//! to a hidden temporary file in the label folder and renamed into place without ever
//! replacing an existing file, so an interrupted capture leaves only whole pictures. Pictures
//! get mode `0666` less the umask ([`crate::atomic_file`]).

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{DatasetError, DecodeError};
use crate::source::jpeg_stream::with_huffman_tables;
use crate::source::{FrameData, RawFrame};

/// JPEG quality for frames that arrive uncompressed.
pub const JPEG_QUALITY: u8 = 92;

/// Why a sample could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Label(#[from] DatasetError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{}: cannot save the sample", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The label folder, validated and created.
pub fn label_dir(data: &Path, label: &str) -> Result<PathBuf, CaptureError> {
    super::validate_label(label)?;
    let dir = data.join(label);
    std::fs::create_dir_all(&dir).map_err(|source| CaptureError::Write {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// The bytes to store: a JPEG from the camera as it came (with standard Huffman tables added
/// if it had none), anything else encoded as JPEG. The frame is decoded first either way, so a
/// damaged frame is refused instead of saved.
pub fn sample_jpeg(frame: &RawFrame) -> Result<Cow<'_, [u8]>, CaptureError> {
    let decoded = frame.decode()?;
    if let FrameData::Encoded(bytes) = &frame.data {
        if image::guess_format(bytes).ok() == Some(image::ImageFormat::Jpeg) {
            return Ok(with_huffman_tables(bytes));
        }
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode_image(&decoded.image)
        .map_err(|e| CaptureError::Write {
            path: PathBuf::from("(encoder)"),
            source: std::io::Error::other(e),
        })?;
    Ok(Cow::Owned(out))
}

/// File name stem for a capture time: `20261128T001906.123Z`.
pub fn timestamp_stem(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t)
        .to_string()
        .replace(['-', ':'], "")
}

/// Saves `frame` in `dir` (a label folder from [`label_dir`]) as `<timestamp>-<n>.jpg`,
/// counting `n` up from `n` until the name is free. Returns the path written.
pub fn save_sample(dir: &Path, frame: &RawFrame, n: u64) -> Result<PathBuf, CaptureError> {
    let bytes = sample_jpeg(frame)?;
    let write_err = |path: &Path, source| CaptureError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Named and moded by atomic_file like every other write; the first capture into a folder
    // also removes what killed captures left there.
    let mut tmp = crate::atomic_file::temp_file_in(dir).map_err(|e| write_err(dir, e))?;
    tmp.write_all(&bytes)
        .map_err(|e| write_err(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| write_err(tmp.path(), e))?;
    let stem = timestamp_stem(frame.captured);
    let mut n = n;
    loop {
        let path = dir.join(format!("{stem}-{n}.jpg"));
        match tmp.persist_noclobber(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                tmp = e.file;
                n += 1;
            }
            Err(e) => return Err(write_err(&path, e.error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: FrameData) -> RawFrame {
        RawFrame {
            index: 0,
            captured: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_123),
            name: None,
            data,
        }
    }

    #[test]
    fn saves_atomically_and_never_overwrites() {
        let root = tempfile::tempdir().unwrap();
        let dir = label_dir(root.path(), "cat").unwrap();
        let rgb = image::RgbImage::from_pixel(32, 24, image::Rgb([200, 30, 10]));
        let f = frame(FrameData::Rgb(rgb));
        let a = save_sample(&dir, &f, 1).unwrap();
        let b = save_sample(&dir, &f, 1).unwrap();
        assert_eq!(a.file_name().unwrap(), "20261118T110640.123Z-1.jpg");
        assert_eq!(b.file_name().unwrap(), "20261118T110640.123Z-2.jpg");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
        let back = crate::preprocess::decode_file(&a).unwrap();
        assert_eq!(back.image.dimensions(), (32, 24));
        let px = back.image.get_pixel(5, 5).0;
        assert!(px[0].abs_diff(200) < 8 && px[1].abs_diff(30) < 8, "{px:?}");
    }

    #[test]
    fn camera_jpegs_are_kept_as_they_came_and_broken_frames_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = label_dir(root.path(), "dog").unwrap();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&image::RgbImage::from_pixel(16, 16, image::Rgb([1, 2, 3])))
            .unwrap();
        let saved = save_sample(&dir, &frame(FrameData::Encoded(jpeg.clone())), 1).unwrap();
        assert_eq!(std::fs::read(saved).unwrap(), jpeg);
        let cut = frame(FrameData::Encoded(jpeg[..jpeg.len() / 2].to_vec()));
        assert!(matches!(
            save_sample(&dir, &cut, 1),
            Err(CaptureError::Decode(_))
        ));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn samples_follow_the_umask_and_dead_leftovers_are_cleaned() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = label_dir(root.path(), "cat").unwrap();
        let [dead, live, fresh] = crate::atomic_file::test_leftovers::plant(&dir);
        let rgb = image::RgbImage::from_pixel(8, 8, image::Rgb([9, 9, 9]));
        let saved = save_sample(&dir, &frame(FrameData::Rgb(rgb)), 1).unwrap();
        assert!(!dead.exists(), "a dead capture's leftover is removed");
        assert!(
            live.exists() && fresh.exists(),
            "live and fresh files are kept"
        );
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !crate::atomic_file::test_umask());
    }

    #[test]
    fn labels_that_are_not_folder_names_are_refused() {
        let root = tempfile::tempdir().unwrap();
        for bad in ["", "../cat", "a/b", ".."] {
            let err = label_dir(root.path(), bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid label"), "{err}");
        }
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
