//! YUYV (YUV 4:2:2, the uncompressed format every UVC webcam offers) to RGB. Webcams encode
//! BT.601 with limited range (Y in 16..235), so that is the conversion; integer arithmetic
//! in 8.8 fixed point keeps it cheap on a Pi.

/// Converts one YUYV frame (`stride` bytes per row, at least `width * 2`) to RGB.
pub fn yuyv_to_rgb(data: &[u8], width: u32, height: u32, stride: usize) -> Option<image::RgbImage> {
    let (w, h) = (width as usize, height as usize);
    if !width.is_multiple_of(2)
        || stride < w * 2
        || data.len() < stride * h.saturating_sub(1) + w * 2
    {
        return None;
    }
    let mut rgb = vec![0u8; w * h * 3];
    for (row, out) in rgb.chunks_exact_mut(w * 3).enumerate() {
        let line = &data[row * stride..row * stride + w * 2];
        for (yuyv, px) in line.chunks_exact(4).zip(out.chunks_exact_mut(6)) {
            let (u, v) = (yuyv[1], yuyv[3]);
            px[..3].copy_from_slice(&pixel(yuyv[0], u, v));
            px[3..].copy_from_slice(&pixel(yuyv[2], u, v));
        }
    }
    image::RgbImage::from_raw(width, height, rgb)
}

/// One BT.601 limited-range pixel.
#[inline]
pub fn pixel(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clip = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clip(c + 409 * e),
        clip(c - 100 * d - 208 * e),
        clip(c + 516 * d),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ITU-R BT.601 in floating point: the reference the fixed-point version must match.
    fn reference(y: u8, u: u8, v: u8) -> [f64; 3] {
        let (y, u, v) = (
            f64::from(y) - 16.0,
            f64::from(u) - 128.0,
            f64::from(v) - 128.0,
        );
        let k = 255.0 / 219.0;
        let (kr, kb) = (0.299, 0.114);
        let kg = 1.0 - kr - kb;
        let r = k * y + 255.0 / 112.0 * (1.0 - kr) * v;
        let b = k * y + 255.0 / 112.0 * (1.0 - kb) * u;
        let g = k * y
            - 255.0 / 112.0 * (1.0 - kb) * kb / kg * u
            - 255.0 / 112.0 * (1.0 - kr) * kr / kg * v;
        [r, g, b].map(|x| x.clamp(0.0, 255.0))
    }

    #[test]
    fn fixed_point_matches_the_bt601_reference_within_one_level() {
        let mut worst = 0.0f64;
        for y in (0..=255u8).step_by(3) {
            for u in (0..=255u8).step_by(5) {
                for v in (0..=255u8).step_by(5) {
                    let got = pixel(y, u, v);
                    let want = reference(y, u, v);
                    for c in 0..3 {
                        worst = worst.max((f64::from(got[c]) - want[c]).abs());
                    }
                }
            }
        }
        assert!(worst <= 1.0, "largest difference {worst}");
        // Black, white and the primaries land where they must.
        assert_eq!(pixel(16, 128, 128), [0, 0, 0]);
        assert_eq!(pixel(235, 128, 128), [255, 255, 255]);
        assert_eq!(pixel(81, 90, 240), [255, 0, 0]);
    }

    #[test]
    fn frames_honour_stride_and_shared_chroma() {
        // 4x2 pixels, stride 12 (4 bytes of row padding as some drivers add).
        let row0 = [16, 128, 235, 128, 81, 90, 81, 240, 0xAA, 0xAA, 0xAA, 0xAA];
        let row1 = [235, 128, 16, 128, 16, 128, 16, 128, 0xBB, 0xBB, 0xBB, 0xBB];
        let data: Vec<u8> = row0.iter().chain(row1.iter()).copied().collect();
        let rgb = yuyv_to_rgb(&data, 4, 2, 12).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(rgb.get_pixel(1, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(2, 0).0, pixel(81, 90, 240));
        assert_eq!(rgb.get_pixel(3, 0).0, pixel(81, 90, 240));
        assert_eq!(rgb.get_pixel(0, 1).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(3, 1).0, [0, 0, 0]);
        // Short buffers and odd widths are refused, not read past.
        // The last row needs no padding, but all its pixels.
        assert!(yuyv_to_rgb(&data[..20], 4, 2, 12).is_some());
        assert!(yuyv_to_rgb(&data[..19], 4, 2, 12).is_none());
        assert!(yuyv_to_rgb(&data, 3, 2, 12).is_none());
    }
}
