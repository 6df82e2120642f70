//! The matcher for 1x1 convolutions: tract's `EinSum` with constant `[out, in]` weights, a
//! constant bias `Add`, an optional clamp and an optional 8-bit grid (QDQ files) become one
//! [`TapConv`] that reads the activations in place, whether tract laid the channels out first
//! or last.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::graph::{
    binary_with_const, concrete, epilogue, f32_values, row_major_strides, sole_consumer,
};
use super::op::{padded_rows, Layout, Plan, TapConv};
use super::{Found, MIN_POSITIONS};
use crate::model::Isa;

/// `EinSum` (constant `[o, k]` weights, channels last in the output) + constant bias `Add`
/// (+ clamp): a 1x1 convolution.
pub(super) fn pointwise(model: &TypedModel, id: usize, isa: Isa) -> TractResult<Option<Found>> {
    let node = model.node(id);
    let Some(op) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    if op.q_params.is_some() || node.inputs.len() != 2 || op.operating_dt != f32::datum_type() {
        return Ok(None);
    }
    let x_fact = model.outlet_fact(node.inputs[0])?;
    let (Some(x_shape), Some(w), Some(out_shape)) = (
        concrete(x_fact),
        model.outlet_fact(node.inputs[1])?.konst.clone(),
        concrete(model.outlet_fact(id.into())?),
    ) else {
        return Ok(None);
    };
    if x_fact.datum_type != f32::datum_type() || w.rank() != 2 || out_shape.is_empty() {
        return Ok(None);
    }
    // Sort the axes: one summed (k), one from the weights to the output (o), the rest
    // carried from the input to the output (positions), and size-1 leftovers.
    let (mut k, mut o, mut spatial) = (None, None, vec![]);
    for axis in op.axes.iter_all_axes() {
        let (xi, wi, oi) = (&axis.inputs[0], &axis.inputs[1], &axis.outputs[0]);
        match (xi.len(), wi.len(), oi.len()) {
            (1, 1, 0) if k.is_none() => k = Some((xi[0], wi[0])),
            (0, 1, 1) if o.is_none() => o = Some((wi[0], oi[0])),
            (1, 0, 1) => spatial.push((xi[0], oi[0])),
            (1, 0, 0) if x_shape[xi[0]] == 1 => {}
            (0, 0, 1) if out_shape[oi[0]] == 1 => {}
            _ => return Ok(None),
        }
    }
    let (Some((kx, kw)), Some((ow, oo))) = (k, o) else {
        return Ok(None);
    };
    spatial.sort_by_key(|&(_, out)| out);
    // Channels last, or first with only size-1 axes before them and positions after.
    let channels_first = oo != out_shape.len() - 1;
    if channels_first
        && (out_shape[..oo].iter().any(|&d| d != 1)
            || spatial.first().is_some_and(|&(_, out)| out < oo))
    {
        return Ok(None);
    }
    let x_strides = row_major_strides(&x_shape);
    // The positions must be one evenly strided run of the input, in output order.
    let mut p_stride = 1;
    for pair in spatial.windows(2) {
        let ((outer, _), (inner, _)) = (pair[0], pair[1]);
        if x_strides[outer] != x_strides[inner] * x_shape[inner] {
            return Ok(None);
        }
    }
    if let Some(&(inner, _)) = spatial.last() {
        p_stride = x_strides[inner];
    }
    let positions: usize = spatial.iter().map(|&(xi, _)| x_shape[xi]).product();
    if positions < MIN_POSITIONS {
        return Ok(None);
    }
    let (channels, depth) = (w.shape()[ow], w.shape()[kw]);
    let Some(w_values) = f32_values(&w) else {
        return Ok(None);
    };
    let w_strides = row_major_strides(w.shape());
    // Bias: the einsum's sole consumer adds a constant along the channels.
    let Some(add) = sole_consumer(model, id.into()) else {
        return Ok(None);
    };
    let from_right = out_shape.len() - 1 - oo;
    let Some(bias) = binary_with_const(model, add, id.into(), "Add").and_then(|b| {
        let along = b.rank() > from_right && b.shape()[b.rank() - 1 - from_right] == channels;
        (along && b.len() == channels)
            .then(|| f32_values(&b))
            .flatten()
    }) else {
        return Ok(None);
    };
    if model.outlet_fact(add.id.into())?.shape.as_concrete() != Some(&out_shape[..]) {
        return Ok(None);
    }
    let (last, lo, hi, grid) = epilogue(model, add.id.into());
    let (rows, bias, padded) = padded_rows(
        Layout::Panels,
        depth,
        channels,
        |t, o| w_values[o * w_strides[ow] + t * w_strides[kw]],
        &bias,
    );
    let op = TapConv {
        isa,
        kind: "EdgeTlPointwiseConv",
        plan: Plan::Taps {
            bases: Arc::new((0..positions).map(|p| p * p_stride).collect()),
            offsets: Arc::new((0..depth).map(|t| t * x_strides[kx]).collect()),
            pad: None,
            channels_first,
        },
        rows: Arc::new(rows),
        bias: Arc::new(bias),
        channels,
        padded,
        lo,
        hi,
        grid,
        input_shape: x_shape,
        output_shape: out_shape,
    };
    Ok(Some((op, node.inputs[0], last)))
}
