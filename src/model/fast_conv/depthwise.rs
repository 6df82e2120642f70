//! Channel-last depthwise convolution with its bias and clamp (ReLU6) in one pass.
//!
//! tract runs MobileNet's 3x3 depthwise layers with the AVX kernel in
//! `crate::model::depthwise_avx` and then clamps in a separate pass over the whole output
//! (17 passes over up to 4.8 MB each, 0.9 ms a picture). Here every output vector is clamped
//! before its only store, with fused multiply-adds, several vectors of channels at a time;
//! written once over [`Simd`] and compiled per instruction set like [`super::kernel`].

use super::simd::{self, Portable, Simd};
use crate::model::Isa;

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

/// The definition, in scalar loops: the reference the tests hold every path to.
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
                *o = w.finish_one(*o);
            }
        }
    }
}

/// Like [`run_portable`], on the kernels of `isa` (which this CPU must have).
pub fn run(isa: Isa, g: &Geometry, input: &[f32], w: &Weights, out: &mut [f32]) {
    run_rows(isa, g, input, w, 0..g.oh, out)
}

/// Output rows `oys` only, into `out` (which holds just those rows): one worker's share.
pub fn run_rows(
    isa: Isa,
    g: &Geometry,
    input: &[f32],
    w: &Weights,
    oys: std::ops::Range<usize>,
    out: &mut [f32],
) {
    assert!(input.len() >= g.h * g.w * g.c && oys.end <= g.oh);
    assert!(out.len() >= oys.len() * g.ow * g.c);
    assert!(w.channels == g.c && w.padded.is_multiple_of(16) && w.padded >= g.c);
    assert!(w.bias.len() >= w.padded);
    assert!(w.rows.len() >= g.kh * g.kw * w.padded);
    assert!(
        isa.available(),
        "the {} kernels on a CPU without them",
        isa.name()
    );
    // SAFETY: the CPU has the instruction set (asserted); `Geometry::taps` keeps reads inside
    // the picture and the asserts above keep weight reads and output writes in bounds.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => entry::avx512(g, input, w, oys, out),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => entry::avx2(g, input, w, oys, out),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => entry::neon(g, input, w, oys, out),
            _ => rows::<Portable, 4>(g, input, w, oys, out),
        }
    }
}

/// One `#[target_feature]` function per instruction set; `NV` vectors of channels at a time
/// (64 channels with AVX-512, 32 with AVX2 and NEON... as many as keep the adder busy).
mod entry {
    #[allow(unused_imports)]
    use super::{rows, simd, Geometry, Range, Weights};

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(g: &Geometry, input: &[f32], w: &Weights, oys: Range, out: &mut [f32]) {
        unsafe { rows::<simd::Avx512, 4>(g, input, w, oys, out) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(g: &Geometry, input: &[f32], w: &Weights, oys: Range, out: &mut [f32]) {
        unsafe { rows::<simd::Avx2, 4>(g, input, w, oys, out) }
    }

    #[cfg(target_arch = "aarch64")]
    #[target_feature(enable = "neon")]
    pub unsafe fn neon(g: &Geometry, input: &[f32], w: &Weights, oys: Range, out: &mut [f32]) {
        unsafe { rows::<simd::Neon, 8>(g, input, w, oys, out) }
    }
}

type Range = std::ops::Range<usize>;

/// Output rows `oys` into `out`, position by position, `NV` vectors of channels at a time and
/// then one, the ragged end masked.
///
/// # Safety
/// As [`Simd`]; bounds as checked in [`run_rows`].
#[inline(always)]
unsafe fn rows<S: Simd, const NV: usize>(
    g: &Geometry,
    input: &[f32],
    w: &Weights,
    oys: Range,
    out: &mut [f32],
) {
    let mut taps: Vec<(usize, usize)> = Vec::with_capacity(g.kh * g.kw);
    let first = oys.start;
    unsafe {
        for oy in oys {
            for ox in 0..g.ow {
                let (ys, xs) = g.taps(oy, ox);
                taps.clear();
                for ky in ys {
                    for kx in xs.clone() {
                        taps.push((g.at(oy, ox, ky, kx), (ky * g.kw + kx) * w.padded));
                    }
                }
                let dst = out.as_mut_ptr().add(((oy - first) * g.ow + ox) * g.c);
                let mut c0 = 0;
                while c0 + NV * S::LANES <= g.c {
                    block::<S, NV>(input, &taps, w, dst, c0, g.c);
                    c0 += NV * S::LANES;
                }
                while c0 < g.c {
                    block::<S, 1>(input, &taps, w, dst, c0, g.c);
                    c0 += S::LANES;
                }
            }
            // The row just written, still in cache, onto the grid (as in `kernel::blocks`).
            if let Some(grid) = &w.grid {
                let row = g.ow * g.c;
                grid.pass::<S>(&mut out[(oy - first) * row..][..row]);
            }
        }
    }
}

/// Channels `c0..c0 + LANES * NV` (only those below `c`) of one output position.
#[inline(always)]
unsafe fn block<S: Simd, const NV: usize>(
    input: &[f32],
    taps: &[(usize, usize)],
    w: &Weights,
    dst: *mut f32,
    c0: usize,
    c: usize,
) {
    unsafe {
        let mut acc: [S::V; NV] =
            std::array::from_fn(|v| S::load(w.bias.as_ptr().add(c0 + S::LANES * v)));
        // Only a single-vector block can be ragged (see `rows`).
        let left = c - c0;
        for &(x, k) in taps {
            for (v, acc) in acc.iter_mut().enumerate() {
                let at = input.as_ptr().add(x + c0 + S::LANES * v);
                let xv = if NV == 1 && left < S::LANES {
                    S::load_part(at, left)
                } else {
                    S::load(at)
                };
                let kv = S::load(w.rows.as_ptr().add(k + c0 + S::LANES * v));
                *acc = S::mul_add(kv, xv, *acc);
            }
        }
        let (lo, hi) = (S::splat(w.lo), S::splat(w.hi));
        for (v, &acc) in acc.iter().enumerate() {
            let value = S::min(S::max(acc, lo), hi);
            if NV == 1 && left < S::LANES {
                S::store_part(dst.add(c0), value, left);
            } else {
                S::store(dst.add(c0 + S::LANES * v), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::grid::Grid;
    use super::*;

    /// Strides 1 and 2, padding on every side or only after, channel counts around the
    /// vector sizes: every path this CPU has agrees with the definition, borders included,
    /// computed whole or in two shares of rows; also with the 8-bit grid of a QDQ file after
    /// the clamp, where a sum rounded differently may land one step away.
    #[test]
    fn vector_path_matches_the_definition() {
        let (mut clamped_low, mut clamped_high) = (false, false);
        for (c, stride, (top, left), (h, w)) in [
            (32usize, 1usize, (1usize, 1usize), (9usize, 7usize)),
            (96, 2, (0, 0), (10, 9)),
            (144, 2, (1, 1), (7, 7)),
            (7, 1, (1, 1), (5, 6)),
            (80, 1, (1, 1), (3, 3)),
            (3, 2, (1, 1), (6, 5)),
            (40, 1, (1, 1), (4, 4)),
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
            for grid in [
                None,
                Grid::new(20.0, 0.05, 0, 0, 255).map(|g| g.after_clamp(0.0, 6.0)),
            ] {
                let weights = Weights {
                    rows: &rows,
                    bias: &bias,
                    channels: c,
                    padded,
                    lo: 0.0,
                    hi: 6.0,
                    grid,
                };
                let n = g.oh * g.ow * c;
                let mut want = vec![0.0; n];
                run_portable(&g, &input, &weights, &mut want);
                for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                    let mut got = vec![f32::NAN; n + 1];
                    run(isa, &g, &input, &weights, &mut got[..n]);
                    // The same rows in two shares, as two workers compute them.
                    let split = g.oh / 2;
                    let mut shares = vec![f32::NAN; n];
                    let (top, bottom) = shares.split_at_mut(split * g.ow * c);
                    run_rows(isa, &g, &input, &weights, 0..split, top);
                    run_rows(isa, &g, &input, &weights, split..g.oh, bottom);
                    let bound = match grid {
                        Some(grid) => grid.step * 1.001,
                        None => 1e-4,
                    };
                    let mut same = 0;
                    for ((a, s), b) in got.iter().zip(&shares).zip(&want) {
                        assert!(
                            (a - b).abs() <= bound * b.abs().max(1.0),
                            "{isa:?}: {a} vs {b} ({g:?}, {grid:?})"
                        );
                        assert_eq!(a.to_bits(), s.to_bits(), "{isa:?}: shares differ");
                        same += (a == b) as usize;
                    }
                    if let Some(grid) = grid {
                        // Off by a step only at a rounding tie, not as a rule; on the grid.
                        assert!(same * 100 >= n * 99, "{isa:?}: {same} of {n} equal");
                        assert!(got[..n].iter().all(|v| (v / grid.step).fract().abs() < 1e-3
                            || (1.0 - (v / grid.step).fract().abs()) < 1e-3));
                    }
                    assert!(got[n].is_nan(), "{isa:?} wrote past the end");
                }
                clamped_low |= want.contains(&0.0);
                clamped_high |= want.contains(&6.0);
            }
        }
        assert!(
            clamped_low && clamped_high,
            "the clamp was exercised at both ends"
        );
    }
}
