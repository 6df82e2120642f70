//! Training-time variety for fine-tuning: random resized crops (a random part of the picture,
//! at least `min_area` of it, aspect ratio 3:4 to 4:3) and horizontal flips. Each variant is made
//! once and its frozen-prefix activations cached, so epochs cost only the trained part.

use image::RgbImage;
use rand::Rng;

/// A random crop of `image`, mirrored half of the time.
pub fn random_crop_flip(image: &RgbImage, min_area: f64, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = (image.width() as f64, image.height() as f64);
    let mut crop = None;
    for _ in 0..10 {
        let area = w * h * rng.random_range(min_area.clamp(0.05, 1.0)..=1.0);
        let ratio = (rng.random_range((0.75f64).ln()..=(4.0f64 / 3.0).ln())).exp();
        let cw = (area * ratio).sqrt().round();
        let ch = (area / ratio).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
            let x = rng.random_range(0.0..=(w - cw)).floor();
            let y = rng.random_range(0.0..=(h - ch)).floor();
            crop = Some((x as u32, y as u32, cw as u32, ch as u32));
            break;
        }
    }
    let (x, y, cw, ch) = crop.unwrap_or((0, 0, image.width(), image.height()));
    let mut out = image::imageops::crop_imm(image, x, y, cw, ch).to_image();
    if rng.random_bool(0.5) {
        image::imageops::flip_horizontal_in_place(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn crops_stay_inside_and_repeat_with_the_seed() {
        let img = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let mut a = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..50 {
            let c = random_crop_flip(&img, 0.35, &mut a);
            assert!(c.width() <= 64 && c.height() <= 48 && c.width() > 0);
            let area = f64::from(c.width() * c.height()) / f64::from(64 * 48);
            assert!(area > 0.3, "{area}");
            assert_eq!(c, random_crop_flip(&img, 0.35, &mut b));
        }
    }
}
