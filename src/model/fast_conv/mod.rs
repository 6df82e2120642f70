//! Channel-last convolutions tract runs slowly on x86_64, replaced at load time by one op of
//! ours ([`TapConv`]) that computes the convolution, its bias and its ReLU6 in one pass.
//!
//! The profile of MobileNetV2 in tract 0.23 (docs/performance.md) put most of the gap to
//! onnxruntime in the first layers: 112x112 and 56x56 pictures with few channels. There
//! tract multiplies matrices with 16 to 32 terms per sum, packs the activations into panels
//! first, and its AVX-512 tiles store the result one float at a time; the stem (3x3 over
//! RGB) also goes through an im2col copy and a padding copy. Here a 1x1 convolution reads
//! the activations where they are and keeps whole vectors of output channels in registers
//! (see [`kernel`]), the stem reads its 27 taps straight from the padded picture, and both
//! finish with the bias and the clamp before the single store.
//!
//! The rewrite runs on the decluttered graph, before tract's own optimisation. It matches
//! an `EinSum` with constant `[out, in]` weights followed by a constant bias `Add` (tract's
//! form of a 1x1 convolution; its input and output may have the channels first or last), a
//! group-1 channel-last `Conv` over at most 8 input channels (the stem), and a channel-last
//! `Conv` with a group per channel (depthwise); each may be followed by `Max(lo)`/`Min(hi)`,
//! which are folded in, and by the 8-bit grid of a QDQ file ([`grid`]: its
//! `QuantizeLinear`/`DequantizeLinear` pairs become one op first, which the convolution
//! before it then absorbs as a pass over each chunk of outputs it has just stored). The
//! kernels are written once over a small vector trait ([`simd`]) and compiled for AVX-512, AVX2+FMA, NEON and plain Rust; [`crate::model::Kernels`] says which
//! runs. Each op splits its output rows across the pool of tract's executor when a picture
//! runs on several threads (`op.rs`). Sums are fused multiply-adds in another order than tract's, so
//! embeddings differ from tract's own plan by rounding only; `tests` and the
//! end-to-end suite compare the two plans.
//!
//! The files: `op.rs` is the op, its evaluation and its sharing out across threads,
//! `pointwise.rs` and `conv2d.rs` recognise the convolutions, `graph.rs` holds what they read
//! from the graph, [`kernel`] and [`depthwise`] the arithmetic, [`grid`] the QDQ rounding,
//! [`simd`] the instruction sets.

mod conv2d;
pub mod depthwise;
mod graph;
pub mod grid;
pub mod kernel;
mod op;
mod pointwise;
pub mod simd;

use tract_onnx::prelude::*;

use crate::model::Isa;

pub use op::TapConv;

/// Positions below this many are left to tract (the classifier, 1x1 pictures): its matrix
/// kernels are at their best there and ours would gain nothing.
const MIN_POSITIONS: usize = 16;

/// What a matcher found: the op, the outlet it reads, and the outlet it replaces (the last of
/// the convolution, its bias and its clamp).
type Found = (TapConv, OutletId, OutletId);

/// What [`rewrite`] replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// Convolutions now running on the fused kernels.
    pub convolutions: usize,
    /// QDQ pairs ([`grid`]) folded into the convolution before them.
    pub grids_folded: usize,
    /// QDQ pairs left as one op of their own ([`grid::GridOp`]).
    pub grids_alone: usize,
}

/// Replaces every QDQ pair by a [`grid::GridOp`], then every convolution described in the
/// module comment by a [`TapConv`] running on `isa`'s kernels, folding the grid after it.
pub fn rewrite(model: &mut TypedModel, isa: Isa) -> TractResult<Rewritten> {
    tract_onnx::tract_core::internal::ensure!(
        isa.available(),
        "this CPU cannot run the {} kernels",
        isa.name()
    );
    let grids = grid::fold_pairs(model)?;
    let mut done = Rewritten::default();
    for id in 0..model.nodes.len() {
        let matchers = [pointwise::pointwise, conv2d::stem, conv2d::depthwise_conv];
        let found = matchers
            .iter()
            .find_map(|matcher| matcher(model, id, isa).transpose())
            .transpose()?;
        if let Some((op, input, replaced)) = found {
            let mut patch = TypedModelPatch::default();
            let tap = patch.tap_model(model, input)?;
            let name = format!("{}.edge_tl", model.node(id).name);
            let folded = op.grid.is_some();
            let wire = patch.wire_node(name, op, &[tap])?;
            patch.shunt_outside(model, replaced, wire[0])?;
            done.grids_folded += folded as usize;
            patch.apply(model)?;
            done.convolutions += 1;
        }
    }
    done.grids_alone = grids - done.grids_folded;
    Ok(done)
}
