//! V4L2 cameras (USB webcams, and the Pi camera through libcamera's V4L2 compatibility):
//! listing them, negotiating a mode, and streaming frames from memory-mapped buffers.

pub mod negotiate;
pub mod yuyv;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ::v4l::buffer::Type;
use ::v4l::capability::Flags;
use ::v4l::frameinterval::FrameIntervalEnum;
use ::v4l::framesize::FrameSizeEnum;
use ::v4l::io::mmap::Stream as MmapStream;
use ::v4l::io::traits::CaptureStream;
use ::v4l::video::Capture;
use ::v4l::{Device, FourCC, Fraction};

use super::{FrameData, FrameSource, RawFrame, SourceError};
use negotiate::{negotiate, Choice, Mode, PixelFormat, Size, Want};

/// A camera found on this machine.
#[derive(Debug, Clone)]
pub struct CameraInfo {
    pub path: PathBuf,
    /// The driver's name for it ("HD Pro Webcam C920").
    pub name: String,
    pub modes: Vec<Mode>,
}

/// Every `/dev/video*` node that captures video, with what it offers, in path order.
/// Metadata and output nodes (a webcam usually has one of each beside its capture node)
/// are left out.
pub fn list_cameras() -> Vec<CameraInfo> {
    let mut nodes: Vec<PathBuf> = ::v4l::context::enum_devices()
        .into_iter()
        .map(|n| n.path().to_path_buf())
        .collect();
    nodes.sort_by_key(|p| {
        let digits: String = p
            .to_string_lossy()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        (digits.parse::<u64>().unwrap_or(u64::MAX), p.clone())
    });
    nodes
        .into_iter()
        .filter_map(|path| {
            let device = Device::with_path(&path).ok()?;
            let caps = device.query_caps().ok()?;
            if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
                return None;
            }
            let modes = enumerate_modes(&device, None).unwrap_or_default();
            Some(CameraInfo {
                path,
                name: caps.card,
                modes,
            })
        })
        .collect()
}

/// The part of an error message that says which cameras exist and how to pick one.
pub fn cameras_hint() -> String {
    let cameras = list_cameras();
    if cameras.is_empty() {
        return "there are no cameras on this machine (no capture device among /dev/video*). \
                Plug in a USB webcam, or for a Pi camera module start edge-tl under `libcamerify` \
                (libcamera's V4L2 compatibility); or replay pictures with --source dir:FOLDER"
            .to_string();
    }
    let list: Vec<String> = cameras
        .iter()
        .map(|c| format!("{} ({})", c.path.display(), c.name))
        .collect();
    format!(
        "cameras here: {}; choose one with --source v4l:/dev/videoN (see `edge-tl devices`)",
        list.join(", ")
    )
}

/// Sizes tried on drivers that describe sizes as ranges instead of a list.
const STEPWISE_CANDIDATES: [Size; 4] = [
    negotiate::DEFAULT_SIZE,
    Size {
        width: 320,
        height: 240,
    },
    Size {
        width: 1280,
        height: 720,
    },
    Size {
        width: 1920,
        height: 1080,
    },
];

/// Every (format, size, rates) the device lists. `wanted` is added to the sizes tried when
/// the driver gives ranges.
fn enumerate_modes(device: &Device, wanted: Option<Size>) -> io::Result<Vec<Mode>> {
    let mut modes = Vec::new();
    for format in device.enum_formats()? {
        let fourcc = format.fourcc;
        let mut sizes = Vec::new();
        for fs in device.enum_framesizes(fourcc).unwrap_or_default() {
            match fs.size {
                FrameSizeEnum::Discrete(d) => sizes.push(Size {
                    width: d.width,
                    height: d.height,
                }),
                FrameSizeEnum::Stepwise(s) => {
                    let fits = |c: &Size| {
                        (s.min_width..=s.max_width).contains(&c.width)
                            && (s.min_height..=s.max_height).contains(&c.height)
                            && (c.width - s.min_width).is_multiple_of(s.step_width.max(1))
                            && (c.height - s.min_height).is_multiple_of(s.step_height.max(1))
                    };
                    sizes.extend(
                        wanted
                            .iter()
                            .chain(STEPWISE_CANDIDATES.iter())
                            .filter(|c| fits(c)),
                    );
                }
            }
        }
        sizes.dedup();
        for size in sizes {
            let fps = device
                .enum_frameintervals(fourcc, size.width, size.height)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|i| match i.interval {
                    FrameIntervalEnum::Discrete(f) => vec![fraction_fps(f)],
                    FrameIntervalEnum::Stepwise(s) => {
                        vec![fraction_fps(s.min), fraction_fps(s.max)]
                    }
                })
                .filter(|f| f.is_finite() && *f > 0.0)
                .collect();
            modes.push(Mode {
                fourcc: fourcc.repr,
                size,
                fps,
            });
        }
    }
    Ok(modes)
}

/// A frame interval (seconds per frame) as frames per second.
fn fraction_fps(f: Fraction) -> f64 {
    f64::from(f.denominator) / f64::from(f.numerator)
}

/// A streaming camera.
pub struct CameraSource {
    path: PathBuf,
    want: Want,
    choice: Choice,
    stride: usize,
    // Declared before the device so it is dropped (buffers unmapped) first.
    stream: Option<MmapStream<'static>>,
    device: Option<Device>,
    index: u64,
}

/// How long to wait for a frame before treating the camera as gone.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

impl CameraSource {
    /// Opens the camera at `path` in the mode that best fits `want`.
    pub fn open(path: &Path, want: Want) -> Result<CameraSource, SourceError> {
        let mut source = CameraSource {
            path: path.to_path_buf(),
            want,
            choice: Choice {
                format: PixelFormat::Mjpeg,
                size: negotiate::DEFAULT_SIZE,
                fps: None,
            },
            stride: 0,
            stream: None,
            device: None,
            index: 0,
        };
        source.start()?;
        Ok(source)
    }

    /// The mode in use.
    pub fn choice(&self) -> Choice {
        self.choice
    }

    fn start(&mut self) -> Result<(), SourceError> {
        self.stream = None;
        self.device = None;
        let path = &self.path;
        let device = Device::with_path(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => SourceError::NoCamera {
                path: path.clone(),
                cameras: cameras_hint(),
            },
            _ => camera_error(path, "cannot open it", &e),
        })?;
        let caps = device.query_caps().map_err(|e| SourceError::NotACamera {
            path: path.clone(),
            reason: e.to_string(),
            cameras: cameras_hint(),
        })?;
        if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
            return Err(SourceError::NotACamera {
                path: path.clone(),
                reason: format!("{} cannot capture video", caps.card),
                cameras: cameras_hint(),
            });
        }
        let modes = enumerate_modes(&device, self.want.size)
            .map_err(|e| camera_error(path, "cannot list its formats", &e))?;
        let choice = negotiate(&modes, &self.want).map_err(|no| SourceError::Unsupported {
            path: path.clone(),
            wanted: no.wanted,
            offered: no.offered,
        })?;
        let mut format = device
            .format()
            .map_err(|e| camera_error(path, "cannot read its format", &e))?;
        format.width = choice.size.width;
        format.height = choice.size.height;
        format.fourcc = FourCC::new(&choice.format.fourcc());
        let set = device
            .set_format(&format)
            .map_err(|e| camera_error(path, "refused the format", &e))?;
        if set.fourcc.repr != choice.format.fourcc()
            || (set.width, set.height) != (choice.size.width, choice.size.height)
        {
            return Err(camera_error(
                path,
                &format!(
                    "was asked for {} {} but switched to {} {}x{}",
                    choice.format,
                    choice.size,
                    String::from_utf8_lossy(&set.fourcc.repr),
                    set.width,
                    set.height
                ),
                &io::Error::other("mode not applied"),
            ));
        }
        if let Some(fps) = choice.fps {
            let params = ::v4l::video::capture::Parameters::new(Fraction::new(
                1000,
                (fps * 1000.0).round() as u32,
            ));
            if let Err(e) = device.set_params(&params) {
                log::warn!(
                    "{}: could not set {fps} fps ({e}); using the driver's rate",
                    path.display()
                );
            }
        }
        self.stride = (set.stride as usize).max(set.width as usize * 2);
        let mut stream = MmapStream::with_buffers(&device, Type::VideoCapture, 4)
            .map_err(|e| camera_error(path, "cannot map capture buffers", &e))?;
        stream.set_timeout(FRAME_TIMEOUT);
        self.choice = choice;
        self.stream = Some(stream);
        self.device = Some(device);
        Ok(())
    }
}

fn camera_error(path: &Path, what: &str, e: &io::Error) -> SourceError {
    SourceError::Camera {
        path: path.to_path_buf(),
        problem: format!("{what}: {e}"),
    }
}

impl FrameSource for CameraSource {
    fn next_frame(&mut self) -> Result<Option<RawFrame>, SourceError> {
        let disconnected = |reason: String| SourceError::Disconnected {
            what: format!("camera {}", self.path.display()),
            reason,
        };
        let Some(stream) = self.stream.as_mut() else {
            return Err(disconnected("not streaming".into()));
        };
        let (buf, meta) = stream.next().map_err(|e| disconnected(e.to_string()))?;
        let used = (meta.bytesused as usize).min(buf.len());
        let bytes = if used == 0 { buf } else { &buf[..used] };
        let data = match self.choice.format {
            PixelFormat::Mjpeg => FrameData::Encoded(bytes.to_vec()),
            PixelFormat::Yuyv => FrameData::Rgb(
                yuyv::yuyv_to_rgb(
                    bytes,
                    self.choice.size.width,
                    self.choice.size.height,
                    self.stride,
                )
                .ok_or_else(|| {
                    disconnected(format!(
                        "a YUYV frame of {} bytes is too short",
                        bytes.len()
                    ))
                })?,
            ),
        };
        let index = self.index;
        self.index += 1;
        Ok(Some(RawFrame {
            index,
            captured: SystemTime::now(),
            name: None,
            data,
        }))
    }

    fn is_live(&self) -> bool {
        true
    }

    fn reconnect(&mut self) -> Result<(), SourceError> {
        self.start().map_err(|e| SourceError::Disconnected {
            what: format!("camera {}", self.path.display()),
            reason: e.to_string(),
        })
    }

    fn describe(&self) -> String {
        let fps = self
            .choice
            .fps
            .map(|f| format!(" at {f} fps"))
            .unwrap_or_default();
        format!(
            "camera {} ({} {}{fps})",
            self.path.display(),
            self.choice.format,
            self.choice.size
        )
    }
}
