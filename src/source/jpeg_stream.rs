//! JPEG frames in byte streams: cutting a recorded or live MJPEG stream (multipart or plain
//! concatenated JPEGs) into whole frames, and completing webcam frames that omit their Huffman
//! tables. Frame boundaries come from walking the JPEG marker structure, not from multipart
//! headers, so both stream kinds (and servers with wrong Content-Length headers) work the same.

use std::borrow::Cow;
use std::io::{self, Read, Write};

/// Largest frame accepted from a stream; beyond this the data is not a camera stream.
pub const MAX_FRAME_BYTES: usize = 32 * 1024 * 1024;

/// The marker structure of a frame is broken (not a JPEG, or damaged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokenFrame;

/// Where a complete JPEG starting at `start` (its SOI) ends, exclusive; `Ok(None)` when more
/// bytes are needed.
pub fn jpeg_end(buf: &[u8], start: usize) -> Result<Option<usize>, BrokenFrame> {
    let mut pos = start + 2;
    loop {
        // Fill bytes (0xFF padding) may precede a marker.
        while pos < buf.len() && buf[pos] == 0xFF && buf.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        if pos + 2 > buf.len() {
            return Ok(None);
        }
        if buf[pos] != 0xFF {
            return Err(BrokenFrame);
        }
        let marker = buf[pos + 1];
        match marker {
            0xD9 => return Ok(Some(pos + 2)),
            0x01 | 0xD0..=0xD7 => pos += 2,
            0xD8 | 0x00 => return Err(BrokenFrame),
            _ => {
                if pos + 4 > buf.len() {
                    return Ok(None);
                }
                let len = u16::from_be_bytes([buf[pos + 2], buf[pos + 3]]) as usize;
                if len < 2 {
                    return Err(BrokenFrame);
                }
                pos += 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00
                    // or a restart marker.
                    loop {
                        match buf
                            .get(pos..)
                            .and_then(|b| b.iter().position(|&x| x == 0xFF))
                        {
                            None => return Ok(None),
                            Some(i) => pos += i,
                        }
                        match buf.get(pos + 1) {
                            None => return Ok(None),
                            Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => pos += 1,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
}

fn find_soi(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(3)
        .position(|w| w == [0xFF, 0xD8, 0xFF])
        .map(|i| from + i)
}

/// Reads whole JPEG frames out of any byte stream, skipping whatever lies between them
/// (multipart boundaries and headers).
pub struct JpegFrames<R> {
    reader: R,
    buf: Vec<u8>,
    eof: bool,
}

/// Why a stream stopped giving frames.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("the stream ended in the middle of a frame ({0} bytes of it arrived)")]
    Truncated(usize),
    #[error("a frame is larger than {} MiB: this is not an MJPEG stream", MAX_FRAME_BYTES >> 20)]
    TooLarge,
}

impl<R: Read> JpegFrames<R> {
    pub fn new(reader: R) -> Self {
        JpegFrames {
            reader,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// The next complete JPEG, or `Ok(None)` at the end of the stream. A frame with a broken
    /// marker structure is skipped (the search resumes at the next start-of-image).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, StreamError> {
        loop {
            if let Some(start) = find_soi(&self.buf, 0) {
                match jpeg_end(&self.buf, start) {
                    Ok(Some(end)) => {
                        let frame = self.buf[start..end].to_vec();
                        self.buf.drain(..end);
                        return Ok(Some(frame));
                    }
                    Err(BrokenFrame) => {
                        log::warn!("skipping a damaged frame in the stream");
                        let next = find_soi(&self.buf, start + 2).unwrap_or(self.buf.len());
                        self.buf.drain(..next);
                        continue;
                    }
                    Ok(None) if self.buf.len() - start > MAX_FRAME_BYTES => {
                        return Err(StreamError::TooLarge)
                    }
                    Ok(None) => {
                        self.buf.drain(..start);
                    }
                }
            } else {
                // Keep two bytes: a start marker may be split across reads.
                let keep = self.buf.len().min(2);
                self.buf.drain(..self.buf.len() - keep);
            }
            if self.eof {
                return match self.buf.len() {
                    n if n > 2 => Err(StreamError::Truncated(n)),
                    _ => Ok(None),
                };
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = match self.reader.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                self.eof = true;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The boundary edge-tl writes between frames of a multipart MJPEG stream.
pub const BOUNDARY: &str = "edgetlframe";

/// Writes one frame as a part of a `multipart/x-mixed-replace; boundary=edgetlframe` stream:
/// what IP cameras serve and what `file:` sources read back.
pub fn write_part(out: &mut impl Write, jpeg: &[u8]) -> io::Result<()> {
    write!(
        out,
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    )?;
    out.write_all(jpeg)?;
    out.write_all(b"\r\n")
}

/// Whether a JPEG defines Huffman tables before its first scan.
fn has_huffman_tables(jpeg: &[u8]) -> bool {
    let mut pos = 2;
    while pos + 4 <= jpeg.len() && jpeg[pos] == 0xFF {
        let marker = jpeg[pos + 1];
        match marker {
            0xC4 => return true,
            0xDA | 0xD9 => return false,
            0x01 | 0xD0..=0xD7 => pos += 2,
            0xFF => pos += 1,
            _ => pos += 2 + u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]) as usize,
        }
    }
    false
}

/// Many webcams send MJPEG frames without Huffman tables, relying on the standard ones of the
/// JPEG specification (annex K.3, as the OpenDML MJPEG format prescribes). This inserts that
/// table segment after the start-of-image marker when a frame has none, so the frame is an
/// ordinary JPEG that every decoder (and every photo viewer, for captured samples) reads.
pub fn with_huffman_tables(jpeg: &[u8]) -> Cow<'_, [u8]> {
    if jpeg.len() < 4 || jpeg[..2] != [0xFF, 0xD8] || has_huffman_tables(jpeg) {
        return Cow::Borrowed(jpeg);
    }
    let mut out = Vec::with_capacity(jpeg.len() + STANDARD_DHT.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    let len = (STANDARD_DHT.len() + 2) as u16;
    out.extend_from_slice(&[0xFF, 0xC4]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&STANDARD_DHT);
    out.extend_from_slice(&jpeg[2..]);
    Cow::Owned(out)
}

/// Body of the DHT segment with the four tables of JPEG annex K.3 (K.3 to K.6): for each,
/// class/id, 16 code-length counts, then the symbols.
#[rustfmt::skip]
const STANDARD_DHT: [u8; 416] = [
    // DC luminance (class 0, id 0)
    0x00,
    0x00, 0x01, 0x05, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
    // AC luminance (class 1, id 0)
    0x10,
    0x00, 0x02, 0x01, 0x03, 0x03, 0x02, 0x04, 0x03, 0x05, 0x05, 0x04, 0x04, 0x00, 0x00, 0x01, 0x7D,
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
    // DC chrominance (class 0, id 1)
    0x01,
    0x00, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
    // AC chrominance (class 1, id 1)
    0x11,
    0x00, 0x02, 0x01, 0x02, 0x04, 0x04, 0x03, 0x04, 0x07, 0x05, 0x04, 0x04, 0x00, 0x01, 0x02, 0x77,
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::decode_bytes;
    use std::path::Path;

    /// A JPEG written by the `image` encoder, which uses the annex K tables.
    pub(crate) fn sample_jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x + y) % 256) as u8,
            ])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&picture)
            .unwrap();
        out
    }

    /// The same JPEG with every DHT segment removed, as such webcams send it.
    fn strip_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut pos = 2;
        loop {
            let marker = jpeg[pos + 1];
            if marker == 0xDA {
                out.extend_from_slice(&jpeg[pos..]);
                return out;
            }
            let len = u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]) as usize;
            if marker != 0xC4 {
                out.extend_from_slice(&jpeg[pos..pos + 2 + len]);
            }
            pos += 2 + len;
        }
    }

    #[test]
    fn standard_tables_have_the_sizes_the_code_counts_say() {
        let mut pos = 0;
        let mut tables = 0;
        while pos < STANDARD_DHT.len() {
            let counts: usize = STANDARD_DHT[pos + 1..pos + 17]
                .iter()
                .map(|&c| c as usize)
                .sum();
            pos += 17 + counts;
            tables += 1;
        }
        assert_eq!((pos, tables), (STANDARD_DHT.len(), 4));
    }

    #[test]
    fn frames_without_huffman_tables_decode_to_the_same_pixels() {
        let original = sample_jpeg(96, 64);
        let stripped = strip_huffman_tables(&original);
        assert!(stripped.len() < original.len() && !has_huffman_tables(&stripped));
        let name = Path::new("frame.jpg");
        assert!(decode_bytes(&stripped, name).is_err(), "tables are needed");
        let completed = with_huffman_tables(&stripped);
        assert!(matches!(completed, Cow::Owned(_)));
        let a = decode_bytes(&original, name).unwrap();
        let b = decode_bytes(&completed, name).unwrap();
        assert_eq!(a.image, b.image);
        // A frame that has its tables is passed through untouched.
        assert!(matches!(with_huffman_tables(&original), Cow::Borrowed(_)));
    }

    /// A reader that hands out at most `step` bytes per call, like a network socket.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(self.data.len()).min(out.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn splits_multipart_and_concatenated_streams_in_any_chunking() {
        let frames = [sample_jpeg(32, 24), sample_jpeg(64, 48), sample_jpeg(8, 8)];
        let mut multipart = Vec::new();
        let mut concatenated = Vec::new();
        for f in &frames {
            write_part(&mut multipart, f).unwrap();
            concatenated.extend_from_slice(f);
        }
        for stream in [&multipart, &concatenated] {
            for step in [1, 7, 1000, 1 << 20] {
                let mut reader = JpegFrames::new(Trickle { data: stream, step });
                for f in &frames {
                    assert_eq!(reader.next_frame().unwrap().as_ref(), Some(f));
                }
                assert!(reader.next_frame().unwrap().is_none());
            }
        }
    }

    #[test]
    fn a_cut_stream_is_reported_and_a_damaged_frame_skipped() {
        let good = sample_jpeg(16, 16);
        let mut stream = Vec::new();
        write_part(&mut stream, &good).unwrap();
        stream.extend_from_slice(&good[..good.len() / 2]);
        let mut reader = JpegFrames::new(&stream[..]);
        assert_eq!(reader.next_frame().unwrap(), Some(good.clone()));
        assert!(matches!(
            reader.next_frame(),
            Err(StreamError::Truncated(n)) if n == good.len() / 2
        ));

        // A frame whose first segment is not a marker: skipped, the next one is found.
        let mut broken = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0x12, 0x34];
        broken.extend_from_slice(&good);
        let mut reader = JpegFrames::new(&broken[..]);
        assert_eq!(reader.next_frame().unwrap(), Some(good));
        assert!(reader.next_frame().unwrap().is_none());
    }
}
