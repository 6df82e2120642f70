//! An x86_64 AVX kernel for tract's channel-last depthwise convolution.
//!
//! MobileNets spend half their time in 3x3 depthwise convolutions over small pictures with
//! many channels (7x7 with 960 channels at the end). Laid out channel-first, a row is 7 to 112
//! values long and tract's vector kernel rarely gets a full 32-value run; laid out channel-last
//! (as tract runs the Coral files, whose input is NHWC: its optimiser folds the exporter's
//! transposes away), every output position is one contiguous run of all the channels.
//! tract-linalg 0.23 ships a kernel for that layout on aarch64 (the Pi) and wasm but not on
//! x86_64, where it falls back to a loop compiled for plain SSE2. This file is
//! that kernel for AVX machines, filed in tract-linalg's routine registry (its `Routine`
//! descriptors are collected with `inventory`, like tract's own), so tract picks it wherever
//! the CPU has AVX and keeps its own loop elsewhere.
//!
//! The arithmetic is tract's, in the same order (bias, then one multiply and one add per tap,
//! no FMA), so the outputs are bit-identical to tract's own loop; `tests` checks that against
//! a plain reference.

#[cfg(target_arch = "x86_64")]
inventory::submit! {
    tract_linalg::routines::Routine {
        func: tract_linalg::routines::Func::DepthwiseC,
        arch: Some(tract_linalg::isa::Arch::X86_64),
        isa: tract_linalg::isa::IsaReq::ANY.needing(&[tract_linalg::isa::Isa::X86_64Avx]),
        boost: 0,
        round_trip: false,
        factory: tract_linalg::routines::RoutineFactory::DepthwiseCF32 {
            name: "edge_tl_x86_64_avx_depthwise_c_f32",
            run: depthwise_c_f32,
        },
    }
}

/// One channel-inner depthwise run, tract-linalg's `DepthwiseCF32` contract: `len` output
/// positions of `channels` contiguous channels each; position `i`, channel `c` is `bias[c]`
/// plus every `kernel[tap_indices[t] * k_stride + c] * input[i * in_stride + offsets[t] + c]`.
///
/// # Safety
/// As tract-linalg's `DepthwiseCF32`: every address named above must be readable (writable
/// for the output), and the CPU must have AVX (the registry only picks this where it does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn depthwise_c_f32(
    input: *const f32,
    output: *mut f32,
    kernel: *const f32,
    tap_indices: &[usize],
    offsets: &[isize],
    bias: *const f32,
    channels: usize,
    k_stride: usize,
    len: usize,
    in_stride: isize,
    out_stride: isize,
) {
    use std::arch::x86_64::*;
    let taps = tap_indices.len().min(offsets.len());
    // SAFETY: every pointer below stays inside the ranges the caller vouches for.
    unsafe {
        for i in 0..len {
            let iptr = input.offset(i as isize * in_stride);
            let optr = output.offset(i as isize * out_stride);
            let mut c = 0usize;
            // 32 channels at a time: four independent accumulators keep the adder busy.
            while c + 32 <= channels {
                let mut a0 = _mm256_loadu_ps(bias.add(c));
                let mut a1 = _mm256_loadu_ps(bias.add(c + 8));
                let mut a2 = _mm256_loadu_ps(bias.add(c + 16));
                let mut a3 = _mm256_loadu_ps(bias.add(c + 24));
                for t in 0..taps {
                    let k = kernel.add(tap_indices[t] * k_stride + c);
                    let x = iptr.offset(offsets[t]).add(c);
                    a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(k), _mm256_loadu_ps(x)));
                    a1 = _mm256_add_ps(
                        a1,
                        _mm256_mul_ps(_mm256_loadu_ps(k.add(8)), _mm256_loadu_ps(x.add(8))),
                    );
                    a2 = _mm256_add_ps(
                        a2,
                        _mm256_mul_ps(_mm256_loadu_ps(k.add(16)), _mm256_loadu_ps(x.add(16))),
                    );
                    a3 = _mm256_add_ps(
                        a3,
                        _mm256_mul_ps(_mm256_loadu_ps(k.add(24)), _mm256_loadu_ps(x.add(24))),
                    );
                }
                _mm256_storeu_ps(optr.add(c), a0);
                _mm256_storeu_ps(optr.add(c + 8), a1);
                _mm256_storeu_ps(optr.add(c + 16), a2);
                _mm256_storeu_ps(optr.add(c + 24), a3);
                c += 32;
            }
            while c + 8 <= channels {
                let mut a = _mm256_loadu_ps(bias.add(c));
                for t in 0..taps {
                    let k = kernel.add(tap_indices[t] * k_stride + c);
                    let x = iptr.offset(offsets[t]).add(c);
                    a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(k), _mm256_loadu_ps(x)));
                }
                _mm256_storeu_ps(optr.add(c), a);
                c += 8;
            }
            while c < channels {
                let mut sum = *bias.add(c);
                for t in 0..taps {
                    sum += *kernel.add(tap_indices[t] * k_stride + c)
                        * *iptr.offset(offsets[t]).add(c);
                }
                *optr.add(c) = sum;
                c += 1;
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The contract spelled out as plain loops, in the same order of operations.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        input: &[f32],
        kernel: &[f32],
        tap_indices: &[usize],
        offsets: &[isize],
        bias: &[f32],
        channels: usize,
        k_stride: usize,
        len: usize,
        in_stride: isize,
        out_stride: isize,
        center: isize,
    ) -> Vec<f32> {
        let mut out = vec![f32::NAN; (len as isize * out_stride) as usize];
        for i in 0..len as isize {
            for c in 0..channels {
                let mut sum = bias[c];
                for (&kix, &off) in tap_indices.iter().zip(offsets) {
                    sum += kernel[kix * k_stride + c]
                        * input[(center + i * in_stride + off) as usize + c];
                }
                out[(i * out_stride) as usize + c] = sum;
            }
        }
        out
    }

    #[test]
    fn equals_the_reference_bit_for_bit() {
        if !std::is_x86_feature_detected!("avx") {
            return;
        }
        // Channel counts around the 32- and 8-wide steps; a 3x3 kernel on a 5-wide picture,
        // stride 1 and 2, with one padding column missing (8 taps) like an edge zone.
        for channels in [1, 7, 8, 9, 31, 32, 33, 48, 96, 144] {
            for (in_step, taps) in [(1isize, 9usize), (2, 9), (1, 6)] {
                let k_stride = channels + 3;
                let width = 5isize;
                let row = width * channels as isize;
                let input: Vec<f32> = (0..(4 * row as usize + 64))
                    .map(|v| ((v * 7919) % 1000) as f32 / 997.0 - 0.5)
                    .collect();
                let kernel: Vec<f32> = (0..9 * k_stride)
                    .map(|v| ((v * 104_729) % 1000) as f32 / 991.0 - 0.4)
                    .collect();
                let bias: Vec<f32> = (0..channels).map(|c| c as f32 * 0.01 - 0.2).collect();
                let all: Vec<(usize, isize)> = (0..9)
                    .map(|t| {
                        let (dy, dx) = (t as isize / 3 - 1, t as isize % 3 - 1);
                        (t, (dy * row) + dx * channels as isize)
                    })
                    .collect();
                let chosen = &all[9 - taps..];
                let tap_indices: Vec<usize> = chosen.iter().map(|p| p.0).collect();
                let offsets: Vec<isize> = chosen.iter().map(|p| p.1).collect();
                let (len, center) = (2usize, row + channels as isize);
                let in_stride = in_step * channels as isize;
                let out_stride = channels as isize + 1;
                let want = reference(
                    &input,
                    &kernel,
                    &tap_indices,
                    &offsets,
                    &bias,
                    channels,
                    k_stride,
                    len,
                    in_stride,
                    out_stride,
                    center,
                );
                let mut got = vec![f32::NAN; want.len()];
                unsafe {
                    depthwise_c_f32(
                        input.as_ptr().offset(center),
                        got.as_mut_ptr(),
                        kernel.as_ptr(),
                        &tap_indices,
                        &offsets,
                        bias.as_ptr(),
                        channels,
                        k_stride,
                        len,
                        in_stride,
                        out_stride,
                    )
                };
                for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                        "channels {channels}, stride {in_step}, taps {taps}, at {j}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn tract_picks_it_on_avx_machines() {
        if !std::is_x86_feature_detected!("avx") {
            return;
        }
        let chosen = tract_linalg::routines::depthwise_c_f32().expect("a channel-last kernel");
        let ours: tract_linalg::routines::DepthwiseCF32 = depthwise_c_f32;
        assert_eq!(chosen as usize, ours as usize);
    }
}
