//! Reading tract's typed graph around a candidate node: concrete shapes and strides, constant
//! values, a node's single consumer, and the `Max`/`Min` clamp and 8-bit grid that may
//! follow it.
//!
//! What the matchers ([`super::pointwise`], [`super::conv2d`]) share; none of it decides
//! whether a node is replaced.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;

use super::grid::{Grid, GridOp};

pub(super) fn concrete(fact: &TypedFact) -> Option<TVec<usize>> {
    fact.shape.as_concrete().map(|s| s.into())
}

pub(super) fn row_major_strides(shape: &[usize]) -> TVec<usize> {
    let mut strides: TVec<usize> = tvec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

pub(super) fn f32_values(t: &Tensor) -> Option<Vec<f32>> {
    let t = t.cast_to::<f32>().ok()?;
    let view = t.try_as_plain_ram().ok()?;
    Some(view.as_slice::<f32>().ok()?.to_vec())
}

/// The only consumer of `outlet`, if it has exactly one and is not a graph output.
pub(super) fn sole_consumer(model: &TypedModel, outlet: OutletId) -> Option<&TypedNode> {
    let succ = model.outlet_successors(outlet);
    let is_output = model.outputs.contains(&outlet);
    (succ.len() == 1 && !is_output).then(|| model.node(succ[0].node))
}

/// A binary op of `name` between `outlet` and a constant; returns the constant.
pub(super) fn binary_with_const(
    model: &TypedModel,
    node: &TypedNode,
    outlet: OutletId,
    name: &str,
) -> Option<Arc<Tensor>> {
    let bin = node.op_as::<TypedBinOp>()?;
    if bin.0.name() != name || bin.1.is_some() || node.inputs.len() != 2 {
        return None;
    }
    let other = if node.inputs[0] == outlet {
        node.inputs[1]
    } else {
        node.inputs[0]
    };
    let fact = model.outlet_fact(other).ok()?;
    fact.konst.clone()
}

/// What follows a convolution's bias, folded into it: the clamp ([`clamp`]) and then the
/// 8-bit grid of a QDQ file (a [`GridOp`] as the only consumer). Returns the last outlet folded,
/// the clamp's bounds and the grid, the clamp included in its bounds.
pub(super) fn epilogue(model: &TypedModel, outlet: OutletId) -> (OutletId, f32, f32, Option<Grid>) {
    let (last, lo, hi) = clamp(model, outlet);
    let grid = sole_consumer(model, last).and_then(|n| Some((n.id, n.op_as::<GridOp>()?.grid)));
    match grid {
        Some((id, grid)) => (id.into(), lo, hi, Some(grid.after_clamp(lo, hi))),
        None => (last, lo, hi, None),
    }
}

/// Follows `outlet` through `Max(lo)` and `Min(hi)` with scalar constants, in either order.
fn clamp(model: &TypedModel, mut outlet: OutletId) -> (OutletId, f32, f32) {
    let (mut lo, mut hi) = (f32::NEG_INFINITY, f32::INFINITY);
    for _ in 0..2 {
        let Some(next) = sole_consumer(model, outlet) else {
            break;
        };
        let scalar = |name| {
            binary_with_const(model, next, outlet, name)
                .and_then(|t| f32_values(&t))
                .filter(|v| v.len() == 1)
                .map(|v| v[0])
        };
        if let (Some(v), true) = (scalar("Max"), lo == f32::NEG_INFINITY) {
            lo = v;
        } else if let (Some(v), true) = (scalar("Min"), hi == f32::INFINITY) {
            hi = v;
        } else {
            break;
        }
        outlet = next.id.into();
    }
    (outlet, lo, hi)
}
