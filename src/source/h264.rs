//! H.264 access units to RGB pictures, with OpenH264 (Cisco's decoder, compiled from the
//! source bundled in the `openh264` crate).
//!
//! A lost packet or a damaged access unit spoils every picture predicted from it, up to the
//! next key frame (IDR): those pictures are skipped, not shown to the classifier as grey
//! smears, and each gap is logged once.

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

pub struct H264Decoder {
    decoder: Decoder,
    /// Set at the start, after a loss and after a decoding error: pictures are skipped until
    /// a key frame restarts the prediction chain.
    await_key_frame: bool,
    /// For messages: the camera.
    name: String,
    /// Access units skipped while waiting for a key frame, for the log.
    skipped: u64,
}

impl H264Decoder {
    pub fn new(name: String) -> Result<H264Decoder, String> {
        Ok(H264Decoder {
            decoder: Decoder::new().map_err(|e| format!("cannot start the H.264 decoder: {e}"))?,
            await_key_frame: true,
            name,
            skipped: 0,
        })
    }

    /// `packets` RTP packets were lost before the next access unit.
    pub fn lost(&mut self, packets: u16) {
        log::debug!("{}: {packets} packets lost", self.name);
        self.await_key_frame = true;
    }

    /// The picture an access unit (Annex B, parameter sets inline before key frames)
    /// completes, if it completes one that can be trusted.
    pub fn decode(&mut self, access_unit: &[u8], key_frame: bool) -> Option<image::RgbImage> {
        if self.await_key_frame {
            if !key_frame {
                self.skipped += 1;
                return None;
            }
            if self.skipped > 0 {
                log::info!(
                    "{}: {} pictures skipped until a key frame",
                    self.name,
                    self.skipped
                );
            }
            self.await_key_frame = false;
            self.skipped = 0;
        }
        match self.decoder.decode(access_unit) {
            Ok(Some(yuv)) => {
                let (width, height) = yuv.dimensions();
                let mut rgb = vec![0; width * height * 3];
                yuv.write_rgb8(&mut rgb);
                image::RgbImage::from_raw(width as u32, height as u32, rgb)
            }
            Ok(None) => None,
            Err(e) => {
                log::warn!(
                    "{}: a damaged picture was skipped ({e}); waiting for a key frame",
                    self.name
                );
                self.await_key_frame = true;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::encoder::{Encoder, FrameType};
    use openh264::formats::{RgbSliceU8, YUVBuffer};

    /// A moving gradient, so P frames carry real changes.
    fn picture(width: u32, height: u32, t: u32) -> image::RgbImage {
        image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([
                ((x + 3 * t) * 255 / width) as u8,
                (y * 255 / height) as u8,
                (((x + y) / 4 + t) % 256) as u8,
            ])
        })
    }

    /// Access units and whether each is a key frame.
    fn encoded(width: u32, height: u32, frames: u32) -> Vec<(Vec<u8>, bool)> {
        let mut encoder = Encoder::new().unwrap();
        (0..frames)
            .map(|t| {
                let rgb = picture(width, height, t);
                let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(
                    rgb.as_raw(),
                    (width as usize, height as usize),
                ));
                let stream = encoder.encode(&yuv).unwrap();
                (
                    stream.to_vec(),
                    matches!(stream.frame_type(), FrameType::IDR | FrameType::I),
                )
            })
            .collect()
    }

    fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y) as u64)
            .sum();
        sum as f64 / a.as_raw().len() as f64
    }

    #[test]
    fn pictures_come_back_as_they_were_encoded() {
        let units = encoded(160, 96, 8);
        assert!(units[0].1, "the first access unit is a key frame");
        let mut decoder = H264Decoder::new("test".into()).unwrap();
        for (t, (unit, key)) in units.iter().enumerate() {
            let rgb = decoder
                .decode(unit, *key)
                .expect("every unit completes a picture");
            assert_eq!(rgb.dimensions(), (160, 96));
            let diff = mean_abs_diff(&rgb, &picture(160, 96, t as u32));
            assert!(diff < 6.0, "frame {t}: mean difference {diff}");
        }
    }

    #[test]
    fn after_a_loss_pictures_wait_for_the_next_key_frame() {
        let mut units = encoded(64, 48, 4);
        // A stream joined in the middle: P frames first, then a key frame.
        let mut encoder_key = encoded(64, 48, 1);
        units.remove(0);
        units.append(&mut encoder_key);
        let mut decoder = H264Decoder::new("test".into()).unwrap();
        let shown: Vec<bool> = units
            .iter()
            .map(|(unit, key)| decoder.decode(unit, *key).is_some())
            .collect();
        assert_eq!(shown, [false, false, false, true]);

        // A loss reported before a P frame: skipped until the next key frame.
        let units = encoded(64, 48, 3);
        let mut decoder = H264Decoder::new("test".into()).unwrap();
        assert!(decoder.decode(&units[0].0, true).is_some());
        decoder.lost(2);
        assert!(decoder.decode(&units[1].0, false).is_none());
        assert!(decoder.decode(&units[0].0, true).is_some());
    }

    #[test]
    fn damage_is_skipped_not_shown() {
        let units = encoded(64, 48, 2);
        let mut decoder = H264Decoder::new("test".into()).unwrap();
        assert!(decoder.decode(&units[0].0, true).is_some());
        // Garbage after a start code: an error inside the decoder, no picture, no panic.
        let mut damaged = vec![0, 0, 0, 1, 0x41];
        damaged.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
        assert!(decoder.decode(&damaged, false).is_none());
        assert!(
            decoder.decode(&units[1].0, false).is_none(),
            "waits for a key frame"
        );
    }
}
