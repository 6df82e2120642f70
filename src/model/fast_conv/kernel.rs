//! The arithmetic of [`super::TapConv`]: every output position is a bias plus a sum over taps
//! of one input value times one weight row, with an optional clamp (ReLU6) on the way out.
//!
//! A 1x1 convolution is the case where the taps are the input channels; a direct convolution
//! over a few input channels (the stem: 3x3 over RGB) is the case where they are the
//! (row, column, channel) triples of the window. Output channels are contiguous, so each tap
//! is a broadcast of one input value against whole vectors of weights, and results are
//! stored as whole vectors.

use super::grid::Grid;
use super::simd::{self, Portable, Simd};
use crate::model::Isa;

/// Where one group of output positions finds its inputs: position `i` reads tap `t` at
/// `input[bases[i] + offsets[t]]`.
pub struct Taps<'a> {
    pub offsets: &'a [usize],
}

/// The weights and the epilogue shared by every position.
pub struct Weights<'a> {
    /// For [`run`], panels of [`PANEL`] channels, `[channel / 16][tap][channel % 16]`
    /// ([`panel_index`]); for [`super::depthwise`], `[tap][channel]` rows. Either way
    /// `taps * padded` long, `padded` a multiple of 16, zeros past `channels`.
    pub rows: &'a [f32],
    /// `padded` long.
    pub bias: &'a [f32],
    pub channels: usize,
    pub padded: usize,
    pub lo: f32,
    pub hi: f32,
    /// The 8-bit grid every output is rounded to after the clamp (QDQ files, [`Grid`]); its
    /// bounds include the clamp's ([`Grid::after_clamp`]). The vector kernels store clamped
    /// values and then put each chunk of outputs on the grid while it is still in cache
    /// ([`Grid::pass`]): inside the tile its constants would push the tile's accumulators out
    /// of the registers.
    pub grid: Option<Grid>,
}

impl Weights<'_> {
    /// What one output of the scalar definitions becomes on its way out: clamped, then put
    /// on the grid.
    pub fn finish_one(&self, x: f32) -> f32 {
        let x = x.max(self.lo).min(self.hi);
        match &self.grid {
            Some(grid) => grid.apply(x),
            None => x,
        }
    }
}

/// Channels per weight panel. A tile reads its weights tap after tap; stored as whole rows of
/// all channels, consecutive taps would be `padded` floats apart, a stride that maps the rows
/// of late layers (1280, 320 channels) onto a few L1 sets, so they evicted one another and
/// every weight came from L2 (the 320 -> 1280 layer took 2.6 ms instead of 0.5, AVX2). In
/// panels, each tile's weights are one sequential run.
pub const PANEL: usize = 16;

/// Where weight (tap `t`, channel `o`) sits in the panel layout of a `taps`-tap convolution.
pub fn panel_index(t: usize, o: usize, taps: usize) -> usize {
    (o / PANEL) * taps * PANEL + t * PANEL + o % PANEL
}

/// The definition, in scalar loops: the reference the tests hold every path to.
/// writes `weights.channels` values for each base in `bases` into `out`, one row per base.
pub fn run_portable(input: &[f32], bases: &[usize], taps: &Taps, w: &Weights, out: &mut [f32]) {
    for (i, &base) in bases.iter().enumerate() {
        let row = &mut out[i * w.channels..(i + 1) * w.channels];
        row.copy_from_slice(&w.bias[..w.channels]);
        for (t, &off) in taps.offsets.iter().enumerate() {
            let x = input[base + off];
            for (o, out) in row.iter_mut().enumerate() {
                *out = w.rows[panel_index(t, o, taps.offsets.len())].mul_add(x, *out);
            }
        }
        for o in row.iter_mut() {
            *o = w.finish_one(*o);
        }
    }
}

/// Like [`run_portable`], on the kernels of `isa` (which this CPU must have). `out` holds one
/// row of `weights.channels` values per base, rows contiguous.
pub fn run(isa: Isa, input: &[f32], bases: &[usize], taps: &Taps, w: &Weights, out: &mut [f32]) {
    assert!(out.len() >= bases.len() * w.channels);
    assert!(w.rows.len() >= taps.offsets.len() * w.padded && w.bias.len() >= w.padded);
    assert!(w.padded.is_multiple_of(16) && w.padded >= w.channels);
    let last = taps.offsets.iter().max().copied().unwrap_or(0);
    assert!(bases.iter().all(|b| b + last < input.len()));
    assert!(
        isa.available(),
        "the {} kernels on a CPU without them",
        isa.name()
    );
    // SAFETY: the CPU has the instruction set (asserted), and the asserts above keep every
    // read in `input`, `rows` and `bias`, and every write in `out`.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => entry::avx512(input, bases, taps, w, out),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => entry::avx2(input, bases, taps, w, out),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => entry::neon(input, bases, taps, w, out),
            _ => blocks::<Portable, 4, 2>(input, bases, taps, w, out),
        }
    }
}

/// One `#[target_feature]` function per instruction set, each the generic kernel with that
/// set's tile: positions x vectors of accumulators, plus a vector per weight row and a
/// broadcast, in the register file (AVX-512 and NEON: 32 registers, 6 x 4; AVX2: 16, 6 x 2).
mod entry {
    #[allow(unused_imports)]
    use super::{blocks, simd, Taps, Weights};

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(
        input: &[f32],
        bases: &[usize],
        taps: &Taps,
        w: &Weights,
        out: &mut [f32],
    ) {
        unsafe { blocks::<simd::Avx512, 6, 4>(input, bases, taps, w, out) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(input: &[f32], bases: &[usize], taps: &Taps, w: &Weights, out: &mut [f32]) {
        unsafe { blocks::<simd::Avx2, 6, 2>(input, bases, taps, w, out) }
    }

    #[cfg(target_arch = "aarch64")]
    #[target_feature(enable = "neon")]
    pub unsafe fn neon(input: &[f32], bases: &[usize], taps: &Taps, w: &Weights, out: &mut [f32]) {
        unsafe { blocks::<simd::Neon, 6, 4>(input, bases, taps, w, out) }
    }
}

/// Positions in chunks whose inputs and outputs fit in L2 together; within a chunk, output
/// channels in blocks of `NV` vectors, and for each block every position of the chunk (`NP`
/// at a time) while the block's weights stay in L1. Chunking matters where a picture's
/// output outgrows L2 (112x112x96 floats is 4.8 MB): each block pass writes only part of
/// every output row, and without chunks every cache line would travel to memory and back once
/// per block (6 times at 16 channels a block, AVX2's tile).
///
/// # Safety
/// As [`Simd`]: the CPU has `S`'s features; bounds as checked in [`run`].
#[inline(always)]
unsafe fn blocks<S: Simd, const NP: usize, const NV: usize>(
    input: &[f32],
    bases: &[usize],
    taps: &Taps,
    w: &Weights,
    out: &mut [f32],
) {
    let per_position = (taps.offsets.len() + w.channels) * std::mem::size_of::<f32>();
    let chunk = (CHUNK_BYTES / per_position).max(1).next_multiple_of(NP);
    unsafe {
        for (c, bases) in bases.chunks(chunk).enumerate() {
            let out = &mut out[c * chunk * w.channels..];
            let mut o0 = 0;
            while o0 < w.channels {
                // The last block may need fewer vectors: 1..=NV of them.
                match (w.channels - o0).div_ceil(S::LANES).min(NV) {
                    4 => columns::<S, NP, 4>(input, bases, taps, w, out, o0),
                    3 => columns::<S, NP, 3>(input, bases, taps, w, out, o0),
                    2 => columns::<S, NP, 2>(input, bases, taps, w, out, o0),
                    _ => columns::<S, NP, 1>(input, bases, taps, w, out, o0),
                }
                o0 += S::LANES * NV;
            }
            if let Some(grid) = &w.grid {
                grid.pass::<S>(&mut out[..bases.len() * w.channels]);
            }
        }
    }
}

/// A chunk's inputs and outputs: a quarter of a Cortex-A72's or an EPYC core's L2, half of
/// a Xeon's.
const CHUNK_BYTES: usize = 256 * 1024;

/// Output channels `o0..o0 + LANES * NV` of every position.
#[inline(always)]
unsafe fn columns<S: Simd, const NP: usize, const NV: usize>(
    input: &[f32],
    bases: &[usize],
    taps: &Taps,
    w: &Weights,
    out: &mut [f32],
    o0: usize,
) {
    let mut i = 0;
    unsafe {
        while i + NP <= bases.len() {
            tile::<S, NP, NV>(input, &bases[i..i + NP], taps, w, out, i, o0);
            i += NP;
        }
        while i < bases.len() {
            tile::<S, 1, NV>(input, &bases[i..i + 1], taps, w, out, i, o0);
            i += 1;
        }
    }
}

/// `NP` positions x `NV` vectors of channels, accumulated in registers over every tap, then
/// clamped and stored once.
#[inline(always)]
unsafe fn tile<S: Simd, const NP: usize, const NV: usize>(
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
        let n = taps.offsets.len();
        let panels: [*const f32; NV] =
            std::array::from_fn(|v| w.rows.as_ptr().add(panel_index(0, o0 + S::LANES * v, n)));
        let mut acc = [[S::splat(0.0); NV]; NP];
        for v in 0..NV {
            let b = S::load(w.bias.as_ptr().add(o0 + S::LANES * v));
            for a in acc.iter_mut() {
                a[v] = b;
            }
        }
        let mut base = [0usize; NP];
        base.copy_from_slice(&bases[..NP]);
        for (t, &off) in taps.offsets.iter().enumerate() {
            let mut wv = [S::splat(0.0); NV];
            for (v, wv) in wv.iter_mut().enumerate() {
                *wv = S::load(panels[v].add(t * PANEL));
            }
            for p in 0..NP {
                let xb = S::splat(*x.add(base[p] + off));
                for v in 0..NV {
                    acc[p][v] = S::mul_add(wv[v], xb, acc[p][v]);
                }
            }
        }
        let lo = S::splat(w.lo);
        let hi = S::splat(w.hi);
        for (p, a) in acc.iter().enumerate() {
            let dst = out.as_mut_ptr().add((first + p) * w.channels + o0);
            for (v, &value) in a.iter().enumerate() {
                let value = S::min(S::max(value, lo), hi);
                let left = w.channels - o0 - S::LANES * v;
                if left >= S::LANES {
                    S::store(dst.add(S::LANES * v), value);
                } else {
                    S::store_part(dst.add(S::LANES * v), value, left);
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
                rows[panel_index(t, o, taps)] = ((t * 7 + o * 13) % 23) as f32 / 11.0 - 1.0;
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
    /// a ragged tail, with and without a clamp: every path this CPU has agrees with the
    /// definition and writes nothing past its output.
    #[test]
    fn vector_path_matches_the_definition() {
        let input: Vec<f32> = (0..4000)
            .map(|i| ((i * 31) % 97) as f32 / 50.0 - 1.0)
            .collect();
        let offsets: Vec<usize> = (0..19).map(|t| t * 37).collect();
        let taps = Taps { offsets: &offsets };
        for channels in [1, 3, 7, 8, 16, 17, 24, 32, 40, 96, 130] {
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
                        grid: None,
                    };
                    let bases: Vec<usize> = (0..positions).map(|p| p * 53 + 3).collect();
                    let mut want = vec![0.0; positions * channels];
                    run_portable(&input, &bases, &taps, &w, &mut want);
                    for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                        let mut got = vec![f32::NAN; positions * channels + 1];
                        run(
                            isa,
                            &input,
                            &bases,
                            &taps,
                            &w,
                            &mut got[..positions * channels],
                        );
                        for (g, e) in got.iter().zip(&want) {
                            assert!(
                                (g - e).abs() <= 1e-4 * e.abs().max(1.0),
                                "{isa:?}, {channels} channels: {g} vs {e}"
                            );
                        }
                        assert!(
                            got[positions * channels].is_nan(),
                            "{isa:?} wrote past the end"
                        );
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
