//! A layer's activations as a picture: one tile per channel, each stretched to black..white
//! over its own range, tiles in a near-square grid (`edge-tl features`).

use image::{GrayImage, Luma};
use ndarray::{ArrayD, Axis};

/// Space between tiles, in pixels.
const GAP: u32 = 2;
const BACKGROUND: u8 = 48;

/// How the grid was laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridLayout {
    pub channels_shown: usize,
    pub columns: u32,
    pub rows: u32,
    /// Each activation became `scale` x `scale` pixels.
    pub scale: u32,
}

/// Renders the first `max_channels` channels of `maps` (`[channels, height, width]`), scaling
/// small maps up (nearest neighbour) so a tile is at least `min_tile` pixels wide.
pub fn render(maps: &ArrayD<f32>, max_channels: usize, min_tile: u32) -> (GrayImage, GridLayout) {
    let (c, h, w) = (maps.shape()[0], maps.shape()[1], maps.shape()[2]);
    let n = c.min(max_channels.max(1));
    let columns = (n as f64).sqrt().ceil() as u32;
    let rows = (n as u32).div_ceil(columns);
    let scale = min_tile.div_ceil(w as u32).max(1);
    let (tw, th) = (w as u32 * scale, h as u32 * scale);
    let mut img = GrayImage::from_pixel(
        columns * tw + (columns + 1) * GAP,
        rows * th + (rows + 1) * GAP,
        Luma([BACKGROUND]),
    );
    for (i, channel) in maps.axis_iter(Axis(0)).take(n).enumerate() {
        let (lo, hi) = channel
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let range = hi - lo;
        let (col, row) = (i as u32 % columns, i as u32 / columns);
        let (x0, y0) = (GAP + col * (tw + GAP), GAP + row * (th + GAP));
        for ((y, x), &v) in channel
            .into_dimensionality::<ndarray::Ix2>()
            .expect("a channel is two-dimensional")
            .indexed_iter()
        {
            let level = if range > 0.0 {
                ((v - lo) / range * 255.0).round() as u8
            } else {
                0
            };
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel(
                        x0 + x as u32 * scale + dx,
                        y0 + y as u32 * scale + dy,
                        Luma([level]),
                    );
                }
            }
        }
    }
    (
        img,
        GridLayout {
            channels_shown: n,
            columns,
            rows,
            scale,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_laid_out_and_stretched_per_channel() {
        // Three 2x2 channels: a ramp, a constant, a negative ramp.
        let maps = ArrayD::from_shape_vec(
            vec![3, 2, 2],
            vec![0., 1., 2., 3., 5., 5., 5., 5., -4., -3., -2., -1.],
        )
        .unwrap();
        let (img, layout) = render(&maps, 64, 4);
        assert_eq!(
            layout,
            GridLayout {
                channels_shown: 3,
                columns: 2,
                rows: 2,
                scale: 2
            }
        );
        assert_eq!(img.dimensions(), (2 * 4 + 3 * GAP, 2 * 4 + 3 * GAP));
        let at = |x: u32, y: u32| img.get_pixel(x, y).0[0];
        // Channel 0: top-left pixel black, bottom-right white, each 2x2 pixels.
        assert_eq!(at(GAP, GAP), 0);
        assert_eq!(at(GAP + 3, GAP + 3), 255);
        assert_eq!(at(GAP + 2, GAP), 85);
        // Channel 1 (constant) is black; channel 2 is stretched over its own range.
        assert_eq!(at(2 * GAP + 4, GAP), 0);
        assert_eq!(at(GAP + 3, 2 * GAP + 4 + 3), 255);
        // The unused fourth tile stays background.
        assert_eq!(at(2 * GAP + 5, 2 * GAP + 5), BACKGROUND);
        let (_, few) = render(&maps, 1, 4);
        assert_eq!(few.channels_shown, 1);
    }
}
