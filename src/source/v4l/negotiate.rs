//! Choosing a camera mode (pixel format, size, frame rate) from what the device offers and
//! what the user asked for. Pure logic, so it is tested without a camera; the device code
//! only enumerates modes and applies the choice.

use std::fmt;
use std::str::FromStr;

/// The pixel formats edge-tl can turn into RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Motion JPEG: each frame a JPEG (often without Huffman tables).
    Mjpeg,
    /// YUV 4:2:2, uncompressed.
    Yuyv,
}

impl PixelFormat {
    pub const ALL: [PixelFormat; 2] = [PixelFormat::Mjpeg, PixelFormat::Yuyv];

    /// The V4L2 four-character code.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Mjpeg => *b"MJPG",
            PixelFormat::Yuyv => *b"YUYV",
        }
    }

    pub fn from_fourcc(code: [u8; 4]) -> Option<PixelFormat> {
        PixelFormat::ALL.into_iter().find(|f| f.fourcc() == code)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Mjpeg => "MJPEG",
            PixelFormat::Yuyv => "YUYV",
        })
    }
}

impl FromStr for PixelFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "mjpeg" | "mjpg" => Ok(PixelFormat::Mjpeg),
            "yuyv" | "yuy2" => Ok(PixelFormat::Yuyv),
            _ => Err(format!("unknown pixel format {s:?}: use mjpeg or yuyv")),
        }
    }
}

/// Width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("size {s:?} is not WIDTHxHEIGHT, e.g. 640x480");
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let width = w.trim().parse().map_err(|_| bad())?;
        let height = h.trim().parse().map_err(|_| bad())?;
        if width == 0 || height == 0 {
            return Err(bad());
        }
        Ok(Size { width, height })
    }
}

/// One thing the camera can do: a four-character code at a size, with its frame rates
/// (empty when the driver does not list them).
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    pub fourcc: [u8; 4],
    pub size: Size,
    pub fps: Vec<f64>,
}

/// What the user asked for; `None` lets edge-tl choose.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Want {
    pub format: Option<PixelFormat>,
    pub size: Option<Size>,
    pub fps: Option<f64>,
}

/// The mode to set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub format: PixelFormat,
    pub size: Size,
    /// `None`: leave the driver's frame rate.
    pub fps: Option<f64>,
}

/// Why no mode fits: what was wanted, and everything the device offers.
#[derive(Debug, Clone, PartialEq)]
pub struct NoMode {
    pub wanted: String,
    pub offered: String,
}

/// The size used when none is asked for: enough for a 224-pixel network input with room to
/// crop, and the size every UVC camera offers.
pub const DEFAULT_SIZE: Size = Size {
    width: 640,
    height: 480,
};

/// Picks a mode. Without a size: 640x480 if offered, else the smallest size that still
/// covers 224x224, else the largest. Without a format: MJPEG before YUYV (less USB
/// bandwidth, so higher rates at larger sizes). Without a rate: the highest offered.
pub fn negotiate(modes: &[Mode], want: &Want) -> Result<Choice, NoMode> {
    let fail = || NoMode {
        wanted: describe_want(want),
        offered: describe_modes(modes),
    };
    let fits = |m: &&Mode| {
        let format = PixelFormat::from_fourcc(m.fourcc);
        format.is_some()
            && want.format.is_none_or(|f| Some(f) == format)
            && want.size.is_none_or(|s| s == m.size)
            && want
                .fps
                .is_none_or(|f| m.fps.is_empty() || m.fps.iter().any(|&r| (r - f).abs() < 0.5))
    };
    let candidates: Vec<&Mode> = modes.iter().filter(fits).collect();
    let size_rank = |s: Size| {
        if s == DEFAULT_SIZE {
            (0, 0u64)
        } else if s.width >= 224 && s.height >= 224 {
            (1, u64::from(s.width) * u64::from(s.height))
        } else {
            (2, u64::MAX - u64::from(s.width) * u64::from(s.height))
        }
    };
    let best = candidates
        .into_iter()
        .min_by_key(|m| {
            let format = PixelFormat::from_fourcc(m.fourcc).unwrap_or(PixelFormat::Yuyv);
            (size_rank(m.size), format != PixelFormat::Mjpeg)
        })
        .ok_or_else(fail)?;
    let fps = match want.fps {
        Some(f) => Some(f),
        None => best.fps.iter().copied().reduce(f64::max),
    };
    Ok(Choice {
        format: PixelFormat::from_fourcc(best.fourcc).ok_or_else(fail)?,
        size: best.size,
        fps,
    })
}

fn describe_want(want: &Want) -> String {
    let mut parts = vec![want
        .format
        .map_or("MJPEG or YUYV".to_string(), |f| f.to_string())];
    if let Some(s) = want.size {
        parts.push(s.to_string());
    }
    if let Some(f) = want.fps {
        parts.push(format!("at {f} fps"));
    }
    parts.join(" ")
}

/// One line per readable format and size ("  MJPEG 640x480 at 30, 15 fps"), then one line
/// naming the formats edge-tl cannot read (test drivers list dozens of Bayer variants).
pub fn describe_modes(modes: &[Mode]) -> String {
    if modes.is_empty() {
        return "  (nothing: the driver lists no capture formats)".to_string();
    }
    let mut lines: Vec<String> = modes
        .iter()
        .filter_map(|m| {
            let format = PixelFormat::from_fourcc(m.fourcc)?;
            let rates = if m.fps.is_empty() {
                String::new()
            } else {
                let r: Vec<String> = m.fps.iter().map(|f| format!("{}", round2(*f))).collect();
                format!(" at {} fps", r.join(", "))
            };
            Some(format!("  {format} {}{rates}", m.size))
        })
        .collect();
    let mut other: Vec<String> = Vec::new();
    for m in modes
        .iter()
        .filter(|m| PixelFormat::from_fourcc(m.fourcc).is_none())
    {
        let name = String::from_utf8_lossy(&m.fourcc).trim().to_string();
        if !other.contains(&name) {
            other.push(name);
        }
    }
    if !other.is_empty() {
        lines.push(format!(
            "  (also {}, which edge-tl cannot read)",
            other.join(", ")
        ));
    }
    lines.join("\n")
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(fourcc: &[u8; 4], w: u32, h: u32, fps: &[f64]) -> Mode {
        Mode {
            fourcc: *fourcc,
            size: Size {
                width: w,
                height: h,
            },
            fps: fps.to_vec(),
        }
    }

    /// What a typical UVC webcam offers.
    fn webcam() -> Vec<Mode> {
        vec![
            mode(b"MJPG", 1280, 720, &[30.0, 15.0]),
            mode(b"MJPG", 640, 480, &[30.0, 15.0]),
            mode(b"YUYV", 640, 480, &[30.0, 15.0, 5.0]),
            mode(b"YUYV", 320, 240, &[30.0]),
            mode(b"H264", 1920, 1080, &[30.0]),
        ]
    }

    fn size(w: u32, h: u32) -> Size {
        Size {
            width: w,
            height: h,
        }
    }

    #[test]
    fn defaults_to_mjpeg_640x480_at_the_highest_rate() {
        let c = negotiate(&webcam(), &Want::default()).unwrap();
        assert_eq!(
            c,
            Choice {
                format: PixelFormat::Mjpeg,
                size: size(640, 480),
                fps: Some(30.0)
            }
        );
    }

    #[test]
    fn honours_each_request() {
        let want = Want {
            format: Some(PixelFormat::Yuyv),
            size: None,
            fps: Some(5.0),
        };
        let c = negotiate(&webcam(), &want).unwrap();
        assert_eq!(
            (c.format, c.size, c.fps),
            (PixelFormat::Yuyv, size(640, 480), Some(5.0))
        );
        let want = Want {
            size: Some(size(1280, 720)),
            ..Want::default()
        };
        assert_eq!(negotiate(&webcam(), &want).unwrap().size, size(1280, 720));
    }

    #[test]
    fn without_640x480_takes_the_smallest_size_covering_the_network_input() {
        let modes = vec![
            mode(b"YUYV", 160, 120, &[30.0]),
            mode(b"YUYV", 1920, 1080, &[5.0]),
            mode(b"YUYV", 800, 600, &[20.0]),
        ];
        assert_eq!(
            negotiate(&modes, &Want::default()).unwrap().size,
            size(800, 600)
        );
        let tiny = vec![
            mode(b"YUYV", 160, 120, &[30.0]),
            mode(b"YUYV", 80, 60, &[30.0]),
        ];
        assert_eq!(
            negotiate(&tiny, &Want::default()).unwrap().size,
            size(160, 120)
        );
    }

    #[test]
    fn impossible_requests_list_what_the_camera_offers() {
        let want = Want {
            format: Some(PixelFormat::Yuyv),
            size: Some(size(1280, 720)),
            fps: None,
        };
        let err = negotiate(&webcam(), &want).unwrap_err();
        assert_eq!(err.wanted, "YUYV 1280x720");
        assert_eq!(
            err.offered,
            "  MJPEG 1280x720 at 30, 15 fps\n  MJPEG 640x480 at 30, 15 fps\n  \
             YUYV 640x480 at 30, 15, 5 fps\n  YUYV 320x240 at 30 fps\n  \
             (also H264, which edge-tl cannot read)"
        );
        let want = Want {
            fps: Some(60.0),
            ..Want::default()
        };
        assert_eq!(
            negotiate(&webcam(), &want).unwrap_err().wanted,
            "MJPEG or YUYV at 60 fps"
        );
        let only_h264 = vec![mode(b"H264", 1920, 1080, &[30.0])];
        assert!(negotiate(&only_h264, &Want::default()).is_err());
    }

    #[test]
    fn drivers_that_list_no_rates_accept_any_and_keep_their_own() {
        let modes = vec![mode(b"YUYV", 640, 480, &[])];
        assert_eq!(negotiate(&modes, &Want::default()).unwrap().fps, None);
        let want = Want {
            fps: Some(10.0),
            ..Want::default()
        };
        assert_eq!(negotiate(&modes, &want).unwrap().fps, Some(10.0));
    }

    #[test]
    fn parses_flags() {
        assert_eq!("640x480".parse::<Size>().unwrap(), size(640, 480));
        assert!("640".parse::<Size>().is_err());
        assert!("0x480".parse::<Size>().is_err());
        assert_eq!("MJPG".parse::<PixelFormat>().unwrap(), PixelFormat::Mjpeg);
        assert!("h264".parse::<PixelFormat>().is_err());
    }
}
