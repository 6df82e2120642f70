//! The arithmetic of [`super::TapConv`]: every output position is a bias plus a sum over taps
//! of one input value times one weight row, with an optional clamp (ReLU6) on the way out.
//!
//! A 1x1 convolution is the case where the taps are the input channels; a direct convolution
//! over a few input channels (the stem: 3x3 over RGB) is the case where they are the
//! (row, column, channel) triples of the window. Output channels are contiguous, so each tap
//! is a broadcast of one input value against whole vectors of weights, and results are
//! stored as whole vectors.

/// Where one group of output positions finds its inputs: position `i` reads tap `t` at
/// `input[bases[i] + offsets[t]]`.
pub struct Taps<'a> {
    pub offsets: &'a [usize],
}

/// The weights and the epilogue shared by every position.
pub struct Weights<'a> {
    /// `[tap][channel]`, each row `padded` long (a multiple of 16, zeros past `channels`).
    pub rows: &'a [f32],
    /// `padded` long.
    pub bias: &'a [f32],
    pub channels: usize,
    pub padded: usize,
    pub lo: f32,
    pub hi: f32,
}

/// The portable definition, used where AVX-512 is missing and as the reference in tests:
/// writes `weights.channels` values for each base in `bases` into `out`, one row per base.
pub fn run_portable(input: &[f32], bases: &[usize], taps: &Taps, w: &Weights, out: &mut [f32]) {
    for (i, &base) in bases.iter().enumerate() {
        let row = &mut out[i * w.channels..(i + 1) * w.channels];
        row.copy_from_slice(&w.bias[..w.channels]);
        for (t, &off) in taps.offsets.iter().enumerate() {
            let x = input[base + off];
            let wr = &w.rows[t * w.padded..t * w.padded + w.channels];
            for (o, wv) in row.iter_mut().zip(wr) {
                *o = wv.mul_add(x, *o);
            }
        }
        for o in row.iter_mut() {
            *o = o.max(w.lo).min(w.hi);
        }
    }
}

/// True where [`run`] takes the vector path.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Like [`run_portable`], with AVX-512 where the CPU has it. `out` holds one row of
/// `weights.channels` values per base, rows contiguous.
pub fn run(input: &[f32], bases: &[usize], taps: &Taps, w: &Weights, out: &mut [f32]) {
    assert!(out.len() >= bases.len() * w.channels);
    assert!(w.rows.len() >= taps.offsets.len() * w.padded && w.bias.len() >= w.padded);
    assert!(w.padded.is_multiple_of(16) && w.padded >= w.channels);
    let last = taps.offsets.iter().max().copied().unwrap_or(0);
    assert!(bases.iter().all(|b| b + last < input.len()));
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512F, and the asserts above keep every read in `input`,
        // `rows` and `bias`, and every write in `out`.
        unsafe { avx512::run(input, bases, taps, w, out) };
        return;
    }
    run_portable(input, bases, taps, w, out)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Taps, Weights};
    use std::arch::x86_64::*;

    /// Positions in a tile: 6 positions x 4 vectors = 24 accumulators, plus 4 weight
    /// vectors and a broadcast, fits the 32 zmm registers.
    const TILE: usize = 6;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn run(input: &[f32], bases: &[usize], taps: &Taps, w: &Weights, out: &mut [f32]) {
        let mut o0 = 0;
        // SAFETY (whole body): bounds were checked by the caller, see `super::run`.
        unsafe {
            while o0 < w.channels {
                match (w.channels - o0).div_ceil(16).min(4) {
                    4 => columns::<4>(input, bases, taps, w, out, o0),
                    3 => columns::<3>(input, bases, taps, w, out, o0),
                    2 => columns::<2>(input, bases, taps, w, out, o0),
                    _ => columns::<1>(input, bases, taps, w, out, o0),
                }
                o0 += 64;
            }
        }
    }

    /// Output channels `o0..o0 + 16 * NV` of every position: the weight block stays in L1
    /// while the positions stream past it.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn columns<const NV: usize>(
        input: &[f32],
        bases: &[usize],
        taps: &Taps,
        w: &Weights,
        out: &mut [f32],
        o0: usize,
    ) {
        let mut i = 0;
        unsafe {
            while i + TILE <= bases.len() {
                tile::<TILE, NV>(input, &bases[i..i + TILE], taps, w, out, i, o0);
                i += TILE;
            }
            while i < bases.len() {
                tile::<1, NV>(input, &bases[i..i + 1], taps, w, out, i, o0);
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const NP: usize, const NV: usize>(
        input: &[f32],
        bases: &[usize],
        taps: &Taps,
        w: &Weights,
        out: &mut [f32],
        first: usize,
        o0: usize,
    ) {
        unsafe {
            let x = input.as_ptr();
            let rows = w.rows.as_ptr().add(o0);
            let mut acc = [[_mm512_setzero_ps(); NV]; NP];
            for v in 0..NV {
                let b = _mm512_loadu_ps(w.bias.as_ptr().add(o0 + 16 * v));
                for a in acc.iter_mut() {
                    a[v] = b;
                }
            }
            let mut base = [0usize; NP];
            base.copy_from_slice(&bases[..NP]);
            for (t, &off) in taps.offsets.iter().enumerate() {
                let row = rows.add(t * w.padded);
                let mut wv = [_mm512_setzero_ps(); NV];
                for (v, wv) in wv.iter_mut().enumerate() {
                    *wv = _mm512_loadu_ps(row.add(16 * v));
                }
                for p in 0..NP {
                    let xb = _mm512_set1_ps(*x.add(base[p] + off));
                    for v in 0..NV {
                        acc[p][v] = _mm512_fmadd_ps(wv[v], xb, acc[p][v]);
                    }
                }
            }
            let lo = _mm512_set1_ps(w.lo);
            let hi = _mm512_set1_ps(w.hi);
            for (p, a) in acc.iter().enumerate() {
                let dst = out.as_mut_ptr().add((first + p) * w.channels + o0);
                for (v, &value) in a.iter().enumerate() {
                    let value = _mm512_min_ps(_mm512_max_ps(value, lo), hi);
                    let left = w.channels - o0 - 16 * v;
                    if left >= 16 {
                        _mm512_storeu_ps(dst.add(16 * v), value);
                    } else {
                        _mm512_mask_storeu_ps(dst.add(16 * v), (1u16 << left) - 1, value);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(taps: usize, channels: usize) -> (Vec<f32>, Vec<f32>, usize) {
        let padded = channels.div_ceil(16) * 16;
        let mut rows = vec![0.0; taps * padded];
        for t in 0..taps {
            for o in 0..channels {
                rows[t * padded + o] = ((t * 7 + o * 13) % 23) as f32 / 11.0 - 1.0;
            }
        }
        let bias = (0..padded)
            .map(|o| {
                if o < channels {
                    o as f32 / 10.0 - 2.0
                } else {
                    0.0
                }
            })
            .collect();
        (rows, bias, padded)
    }

    /// Every channel count up to past two vector blocks, positions that fill whole tiles and
    /// a ragged tail, with and without a clamp: the vector path agrees with the definition.
    #[test]
    fn vector_path_matches_the_definition() {
        let input: Vec<f32> = (0..4000)
            .map(|i| ((i * 31) % 97) as f32 / 50.0 - 1.0)
            .collect();
        let offsets: Vec<usize> = (0..19).map(|t| t * 37).collect();
        let taps = Taps { offsets: &offsets };
        for channels in [1, 7, 16, 17, 32, 96, 130] {
            for positions in [1, 5, 6, 13] {
                for (lo, hi) in [(f32::NEG_INFINITY, f32::INFINITY), (0.0, 6.0)] {
                    let (rows, bias, padded) = weights(offsets.len(), channels);
                    let w = Weights {
                        rows: &rows,
                        bias: &bias,
                        channels,
                        padded,
                        lo,
                        hi,
                    };
                    let bases: Vec<usize> = (0..positions).map(|p| p * 53 + 3).collect();
                    let mut want = vec![0.0; positions * channels];
                    run_portable(&input, &bases, &taps, &w, &mut want);
                    let mut got = vec![f32::NAN; positions * channels];
                    run(&input, &bases, &taps, &w, &mut got);
                    for (g, e) in got.iter().zip(&want) {
                        assert!((g - e).abs() <= 1e-4 * e.abs().max(1.0), "{g} vs {e}");
                    }
                    if lo == 0.0 {
                        assert!(want.iter().all(|v| (0.0..=6.0).contains(v)));
                        assert!(want.contains(&0.0), "the clamp was exercised");
                    }
                }
            }
        }
    }
}
