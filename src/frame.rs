//! An RGB picture as it enters the pipeline: a decoded photo or a camera frame.

use std::time::SystemTime;

/// One upright RGB picture: 8-bit RGB, row-major, `width * height * 3` bytes.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The pixels, already oriented (EXIF applied) and converted to RGB.
    pub image: image::RgbImage,
    /// When the picture was taken (file modification time or capture time).
    pub timestamp: SystemTime,
}

impl Frame {
    /// Wraps an RGB image taken now.
    pub fn new(image: image::RgbImage) -> Self {
        Frame {
            image,
            timestamp: SystemTime::now(),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.image.height()
    }

    /// The same picture mirrored left-right: the flip augmentation used in training.
    pub fn flipped(&self) -> Frame {
        Frame {
            image: image::imageops::flip_horizontal(&self.image),
            timestamp: self.timestamp,
        }
    }
}
