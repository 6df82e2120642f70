//! A region of the frame a head looks at (a gate, a parking spot, a feeder): a rectangle given
//! as shares of the frame's width and height, so it means the same place at any camera
//! resolution. It is stored in the head file and cut out in the one preprocessing path
//! ([`crate::preprocess::to_input_in`]) by training, `predict`, `eval` and `run` alike, so all
//! of them see the same pixels. Samples are kept whole; the region is applied when they are
//! embedded, so drawing another one and training again needs no new pictures.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::frame::Frame;

/// A rectangle of the frame: left edge `x`, top edge `y`, width `w`, height `h`, each a share
/// of the frame's width or height (0 to 1; `x + w` and `y + h` at most 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

/// Slack for `x + w <= 1` written with a few decimals (0.3 + 0.7 is 1.0000001 in f32).
const EDGE: f32 = 1e-4;

impl Region {
    /// Why this rectangle is not a region of a frame, if it is not.
    pub fn check(&self) -> Result<(), String> {
        let Region { x, y, w, h } = *self;
        if ![x, y, w, h].iter().all(|v| v.is_finite()) {
            return Err(format!("{self}: every value must be a number"));
        }
        if x < 0.0 || y < 0.0 || x > 1.0 || y > 1.0 {
            return Err(format!(
                "{self}: x and y must be between 0 and 1 (shares of the frame's width and height)"
            ));
        }
        if w <= 0.0 || h <= 0.0 {
            return Err(format!("{self}: the width and height must be above 0"));
        }
        if x + w > 1.0 + EDGE || y + h > 1.0 + EDGE {
            return Err(format!(
                "{self}: the region reaches past the frame (x + w and y + h must be at most 1)"
            ));
        }
        Ok(())
    }

    /// The region in pixels of a `width` x `height` frame: left, top, width, height, at least
    /// one pixel each way and inside the frame.
    pub fn pixels(&self, width: u32, height: u32) -> (u32, u32, u32, u32) {
        let span = |start: f32, len: f32, size: u32| {
            let size_f = size as f32;
            let a = ((start * size_f).round() as u32).min(size.saturating_sub(1));
            let b = (((start + len) * size_f).round() as u32).clamp(a + 1, size.max(1));
            (a, b - a)
        };
        let (left, w) = span(self.x, self.w, width);
        let (top, h) = span(self.y, self.h, height);
        (left, top, w, h)
    }

    /// The region's pixels of `frame`, as a frame of their own.
    pub fn crop(&self, frame: &Frame) -> Frame {
        let (left, top, w, h) = self.pixels(frame.width(), frame.height());
        Frame {
            image: image::imageops::crop_imm(&frame.image, left, top, w, h).to_image(),
            timestamp: frame.timestamp,
        }
    }

    /// Bytes that tell this region apart in the embedding cache's keys.
    pub fn key_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (chunk, v) in out.chunks_mut(4).zip([self.x, self.y, self.w, self.h]) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.w, self.h)
    }
}

/// `X,Y,W,H`, e.g. `0.25,0.1,0.5,0.6`.
impl FromStr for Region {
    type Err = String;

    fn from_str(s: &str) -> Result<Region, String> {
        let values: Vec<f32> = s
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{s:?} is not X,Y,W,H (four numbers, e.g. 0.25,0.1,0.5,0.6)"))?;
        let [x, y, w, h] = values[..] else {
            return Err(format!(
                "{s:?} is not X,Y,W,H (four numbers, e.g. 0.25,0.1,0.5,0.6)"
            ));
        };
        let region = Region { x, y, w, h };
        region.check()?;
        Ok(region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checks_and_says_what_is_wrong() {
        let r: Region = "0.25, 0.1,0.5,0.6".parse().unwrap();
        assert_eq!(
            r,
            Region {
                x: 0.25,
                y: 0.1,
                w: 0.5,
                h: 0.6
            }
        );
        assert_eq!(r.to_string(), "0.25,0.1,0.5,0.6");
        assert!(
            "0.3,0,0.7,1".parse::<Region>().is_ok(),
            "f32 rounding at the edge"
        );
        let e = |s: &str| s.parse::<Region>().unwrap_err();
        assert!(e("1,2,3").contains("is not X,Y,W,H"));
        assert!(e("a,b,c,d").contains("is not X,Y,W,H"));
        assert!(e("0.5,0.5,0.6,0.2").contains("reaches past the frame"));
        assert!(e("0,0,0,0.5").contains("above 0"));
        assert!(e("-0.1,0,0.5,0.5").contains("between 0 and 1"));
        assert!(e("NaN,0,0.5,0.5").contains("must be a number"));
    }

    #[test]
    fn crops_the_same_place_at_any_resolution() {
        let r = Region {
            x: 0.25,
            y: 0.5,
            w: 0.5,
            h: 0.25,
        };
        assert_eq!(r.pixels(640, 480), (160, 240, 320, 120));
        assert_eq!(r.pixels(1280, 960), (320, 480, 640, 240));
        // Never empty, never past the edge.
        let thin = Region {
            x: 0.999,
            y: 0.0,
            w: 0.001,
            h: 1.0,
        };
        assert_eq!(thin.pixels(100, 10), (99, 0, 1, 10));
        let img = image::RgbImage::from_fn(8, 4, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let crop = r.crop(&Frame::new(img));
        assert_eq!(crop.image.dimensions(), (4, 1));
        assert_eq!(crop.image.get_pixel(0, 0).0, [2, 2, 0]);
        assert_ne!(r.key_bytes(), thin.key_bytes());
    }
}
