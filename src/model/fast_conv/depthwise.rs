//! Channel-last depthwise convolution with its bias and clamp (ReLU6) in one pass.
//!
//! tract runs MobileNet's 3x3 depthwise layers with the AVX kernel in
//! `crate::model::depthwise_avx` and then clamps in a separate pass over the whole output
//! (17 passes over up to 4.8 MB each, 0.9 ms a picture). Here every output vector is clamped
//! before its only store, with AVX-512 fused multiply-adds, 64 channels at a time.

/// Geometry of one depthwise convolution over a `[h, w, c]` picture.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    /// Zeros above and left of the picture (those below and right follow from `oh`, `ow`).
    pub top: usize,
    pub left: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geometry {
    /// Kernel rows (`ys`) and columns (`xs`) that land inside the picture for output (oy, ox).
    fn taps(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let range = |o: usize, s: usize, pad: usize, k: usize, len: usize| {
            let start = (o * s) as isize - pad as isize;
            let lo = (-start).max(0) as usize;
            let hi = ((len as isize - start).max(0) as usize).min(k);
            lo..hi.max(lo)
        };
        (
            range(oy, self.sh, self.top, self.kh, self.h),
            range(ox, self.sw, self.left, self.kw, self.w),
        )
    }

    /// Input index of channel 0 under kernel tap (ky, kx) for output (oy, ox), inside the picture.
    fn at(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> usize {
        let y = oy * self.sh + ky - self.top;
        let x = ox * self.sw + kx - self.left;
        (y * self.w + x) * self.c
    }
}

/// The weights are [`kernel::Weights`]: one row per tap `ky * kw + kx`, `channels` = `c`.
pub use super::kernel::Weights;

/// The portable definition (the reference in tests, and where AVX-512 is missing).
pub fn run_portable(g: &Geometry, input: &[f32], w: &Weights, out: &mut [f32]) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let (ys, xs) = g.taps(oy, ox);
            let dst = &mut out[(oy * g.ow + ox) * g.c..][..g.c];
            dst.copy_from_slice(&w.bias[..g.c]);
            for ky in ys {
                for kx in xs.clone() {
                    let src = &input[g.at(oy, ox, ky, kx)..][..g.c];
                    let row = &w.rows[(ky * g.kw + kx) * w.padded..][..g.c];
                    for ((o, x), k) in dst.iter_mut().zip(src).zip(row) {
                        *o = k.mul_add(*x, *o);
                    }
                }
            }
            for o in dst.iter_mut() {
                *o = o.max(w.lo).min(w.hi);
            }
        }
    }
}

/// Like [`run_portable`], with AVX-512 where the CPU has it.
pub fn run(g: &Geometry, input: &[f32], w: &Weights, out: &mut [f32]) {
    assert!(input.len() >= g.h * g.w * g.c && out.len() >= g.oh * g.ow * g.c);
    assert!(w.channels == g.c && w.padded.is_multiple_of(16) && w.padded >= g.c);
    assert!(w.bias.len() >= w.padded);
    assert!(w.rows.len() >= g.kh * g.kw * w.padded);
    #[cfg(target_arch = "x86_64")]
    if super::kernel::has_avx512() {
        // SAFETY: AVX-512F is there; `Geometry::taps` keeps reads inside the picture and the
        // asserts above keep weight reads and output writes in bounds.
        unsafe { avx512::run(g, input, w, out) };
        return;
    }
    run_portable(g, input, w, out)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Geometry, Weights};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn run(g: &Geometry, input: &[f32], w: &Weights, out: &mut [f32]) {
        let mut taps: Vec<(usize, usize)> = Vec::with_capacity(g.kh * g.kw);
        unsafe {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let (ys, xs) = g.taps(oy, ox);
                    taps.clear();
                    for ky in ys {
                        for kx in xs.clone() {
                            taps.push((g.at(oy, ox, ky, kx), (ky * g.kw + kx) * w.padded));
                        }
                    }
                    let dst = out.as_mut_ptr().add((oy * g.ow + ox) * g.c);
                    let mut c0 = 0;
                    while c0 + 64 <= g.c {
                        block::<4>(input, &taps, w, dst, c0, g.c);
                        c0 += 64;
                    }
                    while c0 < g.c {
                        block::<1>(input, &taps, w, dst, c0, g.c);
                        c0 += 16;
                    }
                }
            }
        }
    }

    /// Channels `c0..c0 + 16 * NV` (masked past `c`) of one output position.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const NV: usize>(
        input: &[f32],
        taps: &[(usize, usize)],
        w: &Weights,
        dst: *mut f32,
        c0: usize,
        c: usize,
    ) {
        unsafe {
            let masks: [u16; NV] = std::array::from_fn(|v| {
                let left = c.saturating_sub(c0 + 16 * v);
                if left >= 16 {
                    u16::MAX
                } else {
                    (1u16 << left) - 1
                }
            });
            let mut acc: [__m512; NV] =
                std::array::from_fn(|v| _mm512_loadu_ps(w.bias.as_ptr().add(c0 + 16 * v)));
            for &(x, k) in taps {
                for v in 0..NV {
                    let xv = _mm512_maskz_loadu_ps(masks[v], input.as_ptr().add(x + c0 + 16 * v));
                    let kv = _mm512_loadu_ps(w.rows.as_ptr().add(k + c0 + 16 * v));
                    acc[v] = _mm512_fmadd_ps(kv, xv, acc[v]);
                }
            }
            let (lo, hi) = (_mm512_set1_ps(w.lo), _mm512_set1_ps(w.hi));
            for v in 0..NV {
                let value = _mm512_min_ps(_mm512_max_ps(acc[v], lo), hi);
                _mm512_mask_storeu_ps(dst.add(c0 + 16 * v), masks[v], value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strides 1 and 2, padding on every side or only after, channel counts around the
    /// vector sizes: the vector path agrees with the definition, borders included.
    #[test]
    fn vector_path_matches_the_definition() {
        let (mut clamped_low, mut clamped_high) = (false, false);
        for (c, stride, (top, left), (h, w)) in [
            (32usize, 1usize, (1usize, 1usize), (9usize, 7usize)),
            (96, 2, (0, 0), (10, 9)),
            (144, 2, (1, 1), (7, 7)),
            (7, 1, (1, 1), (5, 6)),
            (80, 1, (1, 1), (3, 3)),
        ] {
            let padded = c.div_ceil(16) * 16;
            let g = Geometry {
                h,
                w,
                c,
                kh: 3,
                kw: 3,
                sh: stride,
                sw: stride,
                top,
                left,
                oh: (h + 2 * top + 1 - 3) / stride + 1,
                ow: (w + 2 * left + 1 - 3) / stride + 1,
            };
            let input: Vec<f32> = (0..h * w * c)
                .map(|i| ((i * 29) % 101) as f32 / 12.0 - 4.0)
                .collect();
            let rows: Vec<f32> = (0..9 * padded)
                .map(|i| {
                    if i % padded < c {
                        ((i * 17) % 31) as f32 / 15.0 - 1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let bias: Vec<f32> = (0..padded).map(|i| (i % 5) as f32 - 2.0).collect();
            let weights = Weights {
                rows: &rows,
                bias: &bias,
                channels: c,
                padded,
                lo: 0.0,
                hi: 6.0,
            };
            let n = g.oh * g.ow * c;
            let (mut want, mut got) = (vec![0.0; n], vec![f32::NAN; n]);
            run_portable(&g, &input, &weights, &mut want);
            run(&g, &input, &weights, &mut got);
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{a} vs {b} ({g:?})"
                );
            }
            clamped_low |= want.contains(&0.0);
            clamped_high |= want.contains(&6.0);
        }
        assert!(
            clamped_low && clamped_high,
            "the clamp was exercised at both ends"
        );
    }
}
