//! [`TapConv`], the op the rewrite puts in tract's graph: its data (weights laid out for the
//! kernels, which inputs each tap reads, the clamp) and how tract evaluates it.
//!
//! Kept apart from the matchers so that what the op computes can be read without the graph
//! patterns that produce it; the arithmetic itself is in [`kernel`] and [`depthwise`].

use std::sync::Arc;

use rayon::prelude::*;
use tract_linalg::multithread::{current_tract_executor, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::grid::Grid;
use super::{depthwise, kernel};
use crate::model::Isa;

/// One convolution, its bias and its clamp: output channel `o` of each position is
/// `clamp(bias[o] + sum over taps of weight * input)`, as [`Plan`] says which.
#[derive(Clone, PartialEq)]
pub struct TapConv {
    pub(super) kind: &'static str,
    /// The instruction set its kernels run on (one this CPU has: `rewrite` checked).
    pub(super) isa: Isa,
    pub(super) plan: Plan,
    /// Weights `[tap][channel]`, each row `padded` long; bias `padded` long.
    pub(super) rows: Arc<Vec<f32>>,
    pub(super) bias: Arc<Vec<f32>>,
    pub(super) channels: usize,
    pub(super) padded: usize,
    /// Clamp bounds (-inf/+inf: none).
    pub(super) lo: f32,
    pub(super) hi: f32,
    /// The QDQ pair after the clamp, folded in ([`super::grid`]).
    pub(super) grid: Option<Grid>,
    pub(super) input_shape: TVec<usize>,
    pub(super) output_shape: TVec<usize>,
}

/// Which input values a convolution's taps read.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// [`kernel::run`]: position `p` reads tap `t` at `input[bases[p] + offsets[t]]` (1x1
    /// convolutions and the stem).
    Taps {
        bases: Arc<Vec<usize>>,
        offsets: Arc<Vec<usize>>,
        /// Zero border added around a `[h, w, c]` picture before reading it (the stem).
        pad: Option<Pad>,
        /// The output is `[channels, positions]` (tract chose channel-first there):
        /// computed channel-last, then transposed.
        channels_first: bool,
    },
    /// [`depthwise::run`].
    Depthwise(depthwise::Geometry),
}

/// A picture `[h, w, c]` and the zeros around it: `top`/`left` before, `bottom`/`right` after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pad {
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c: usize,
    pub(super) top: usize,
    pub(super) left: usize,
    pub(super) bottom: usize,
    pub(super) right: usize,
}

impl Pad {
    pub(super) fn padded_width(&self) -> usize {
        self.w + self.left + self.right
    }

    fn apply(&self, input: &[f32]) -> Vec<f32> {
        let (pw, c) = (self.padded_width(), self.c);
        let mut out = vec![0.0; (self.h + self.top + self.bottom) * pw * c];
        for y in 0..self.h {
            let dst = ((y + self.top) * pw + self.left) * c;
            out[dst..dst + self.w * c]
                .copy_from_slice(&input[y * self.w * c..(y + 1) * self.w * c]);
        }
        out
    }
}

/// tract wants ops `Eq`; the floats compared are weights, bias and bounds read from the model,
/// never NaN.
impl Eq for TapConv {}

impl std::fmt::Debug for TapConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} -> {:?}, {} taps, clamp {}..{}",
            self.kind,
            self.input_shape,
            self.output_shape,
            self.rows.len() / self.padded.max(1),
            self.lo,
            self.hi
        )?;
        match &self.grid {
            Some(g) => write!(f, ", {g:?}"),
            None => Ok(()),
        }
    }
}

impl Op for TapConv {
    fn name(&self) -> StaticName {
        self.kind.into()
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for TapConv {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        ensure!(
            input.shape() == &*self.input_shape,
            "{self:?} got {:?}",
            input.shape()
        );
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        // SAFETY: f32 has no invalid bit patterns, and the kernels (or the transpose) write
        // every value before anything reads it (`kernel::run` and `depthwise::run` write
        // every position and channel of the output shape the matchers computed).
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        {
            let mut out = output.try_as_plain_ram_mut()?;
            let out = out.as_slice_mut::<f32>()?;
            let weights = kernel::Weights {
                rows: &self.rows,
                bias: &self.bias,
                channels: self.channels,
                padded: self.padded,
                lo: self.lo,
                hi: self.hi,
                grid: self.grid,
            };
            let isa = self.isa;
            match &self.plan {
                Plan::Depthwise(g) => {
                    let row = g.ow * g.c;
                    share(out, row, g.oh, |rows, out| {
                        depthwise::run_rows(isa, g, x, &weights, rows, out)
                    })
                }
                Plan::Taps {
                    bases,
                    offsets,
                    pad,
                    channels_first,
                } => {
                    let padded_input;
                    let x = match pad {
                        Some(pad) => {
                            padded_input = pad.apply(x);
                            &padded_input[..]
                        }
                        None => x,
                    };
                    let taps = kernel::Taps { offsets };
                    let run = |out: &mut [f32]| {
                        share(out, self.channels, bases.len(), |positions, out| {
                            kernel::run(isa, x, &bases[positions], &taps, &weights, out)
                        })
                    };
                    if *channels_first {
                        CHANNEL_LAST.with_borrow_mut(|scratch| {
                            // Grown once per thread, never shrunk: up to 112x112x16 floats
                            // (0.8 MB) in MobileNetV2. The kernel writes all of it.
                            scratch.resize(scratch.len().max(out.len()), 0.0);
                            let scratch = &mut scratch[..out.len()];
                            run(scratch);
                            transpose(scratch, bases.len(), self.channels, out);
                        });
                    } else {
                        run(out);
                    }
                }
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for TapConv {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }

    tract_onnx::tract_core::as_op!();
}

thread_local! {
    /// The channel-last result of an op whose output tract wants channel-first, before the
    /// transpose: kept between runs, since a fresh allocation of this size is a fresh mapping
    /// whose pages all fault in again (measured, AVX2: 0.80 -> 0.66 ms for the 112x112x16
    /// layer).
    static CHANNEL_LAST: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Computes `items` items of `item` floats each into `out`: `work(range, out_share)` on the
/// caller's thread, or, where tract's executor for this run has a pool (`--threads` > 1),
/// on the pool in shares of contiguous items. Shares are a few per thread rather than one,
/// so a thread the OS has parked (a busy Pi, another process on the core) holds back only a
/// small share while the others take the rest: rayon hands shares to whichever thread is
/// free. Every item is computed by the same code whatever the share, so the result does not
/// depend on the thread count (tests compare the bits).
fn share(
    out: &mut [f32],
    item: usize,
    items: usize,
    work: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
) {
    let pool = match current_tract_executor() {
        Executor::MultiThread(pool) if pool.current_num_threads() > 1 => pool,
        _ => return work(0..items, &mut out[..items * item]),
    };
    // Small pictures (the 7x7 and 14x14 layers) read all their weights once per share:
    // fewer, larger shares there.
    let per_thread = if items <= 196 { 2 } else { 4 };
    let shares = (pool.current_num_threads() * per_thread).min(items.div_ceil(MIN_SHARE));
    if shares <= 1 {
        return work(0..items, &mut out[..items * item]);
    }
    let per_share = items.div_ceil(shares);
    pool.install(|| {
        out[..items * item]
            .par_chunks_mut(per_share * item)
            .enumerate()
            .for_each(|(i, out)| {
                let start = i * per_share;
                work(start..start + out.len() / item, out)
            })
    })
}

/// Items (positions, rows) below which a share costs more to hand over than to compute.
const MIN_SHARE: usize = 6;

/// `src` is `rows x cols`, `dst` becomes `cols x rows`; in blocks, so both sides stream.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for c in c0..(c0 + B).min(cols) {
                for r in r0..(r0 + B).min(rows) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// How [`kernel::Weights::rows`] is laid out for an op's kernel.
#[derive(Clone, Copy)]
pub(super) enum Layout {
    /// `[tap][channel]`: the depthwise kernel reads all channels of one tap.
    Rows,
    /// [`kernel::panel_index`]: the 1x1 and stem kernel reads one panel tap after tap.
    Panels,
}

/// Weights padded to whole vectors in `layout`, and the bias padded likewise.
pub(super) fn padded_rows(
    layout: Layout,
    taps: usize,
    channels: usize,
    weight: impl Fn(usize, usize) -> f32,
    bias: &[f32],
) -> (Vec<f32>, Vec<f32>, usize) {
    let padded = channels.div_ceil(kernel::PANEL) * kernel::PANEL;
    let mut rows = vec![0.0; taps * padded];
    for t in 0..taps {
        for o in 0..channels {
            let at = match layout {
                Layout::Rows => t * padded + o,
                Layout::Panels => kernel::panel_index(t, o, taps),
            };
            rows[at] = weight(t, o);
        }
    }
    let mut b = vec![0.0; padded];
    b[..channels].copy_from_slice(bias);
    (rows, b, padded)
}
