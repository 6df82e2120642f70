//! The matchers for tract's channel-last 2-D `Conv`: the stem (group 1, few input channels)
//! and depthwise convolutions (a group per channel), each with its bias and optional clamp.
//!
//! Both read the same facts out of the `Conv` node ([`ChannelLastConv`]) and differ only in
//! which convolutions they accept and how they lay the weights out, so they share a file.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};

use super::depthwise;
use super::graph::{concrete, epilogue, f32_values, row_major_strides};
use super::op::{padded_rows, Layout, Pad, Plan, TapConv};
use super::{Found, MIN_POSITIONS};
use crate::model::Isa;

/// What the stem and depthwise matchers both need from a channel-last 2-D `Conv` with
/// constant f32 kernel and bias, unit dilation and explicit (or no) padding, over one picture.
struct ChannelLastConv<'m> {
    conv: &'m Conv,
    /// The input `[.., h, w, c]` (leading axes of size 1) and the output `[.., oh, ow, o]`.
    x_shape: TVec<usize>,
    out_shape: TVec<usize>,
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    ow: usize,
    channels: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    /// Zeros before (top, left) and after (bottom, right).
    before: (usize, usize),
    after: (usize, usize),
    kernel: Vec<f32>,
    /// Sizes and strides of the kernel's O, I, H and W axes, whatever its format.
    k_dims: [usize; 4],
    k_strides: [usize; 4],
    /// One value per output channel (a single bias value is repeated).
    bias: Vec<f32>,
}

impl ChannelLastConv<'_> {
    /// Kernel value for output filter `o`, input channel `i` (within its group), tap (ky, kx).
    fn weight(&self, o: usize, i: usize, ky: usize, kx: usize) -> f32 {
        let [so, si, sy, sx] = self.k_strides;
        self.kernel[o * so + i * si + ky * sy + kx * sx]
    }
}

fn channel_last_conv(model: &TypedModel, id: usize) -> TractResult<Option<ChannelLastConv<'_>>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let ps = &conv.pool_spec;
    if conv.q_params.is_some()
        || !ps.data_format.c_is_last()
        || ps.kernel_shape.len() != 2
        || ps
            .dilations
            .as_ref()
            .is_some_and(|d| d.iter().any(|&d| d != 1))
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let x_fact = model.outlet_fact(node.inputs[0])?;
    let (Some(x_shape), Some(kernel), Some(bias), Some(out_shape)) = (
        concrete(x_fact),
        model.outlet_fact(node.inputs[1])?.konst.clone(),
        model.outlet_fact(node.inputs[2])?.konst.clone(),
        concrete(model.outlet_fact(id.into())?),
    ) else {
        return Ok(None);
    };
    let (n, m) = (x_shape.len(), out_shape.len());
    if x_fact.datum_type != f32::datum_type()
        || n < 3
        || m != n
        || x_shape[..n - 3].iter().any(|&d| d != 1)
        || x_shape[n - 1] != ps.input_channels
        || out_shape[m - 1] != ps.output_channels
    {
        return Ok(None);
    }
    let (kh, kw) = (ps.kernel_shape[0], ps.kernel_shape[1]);
    let (sh, sw) = ps.strides.as_ref().map_or((1, 1), |s| (s[0], s[1]));
    let (before, after) = match &ps.padding {
        PaddingSpec::Valid => ((0, 0), (0, 0)),
        PaddingSpec::Explicit(b, a) => ((b[0], b[1]), (a[0], a[1])),
        _ => return Ok(None),
    };
    let fmt = conv.kernel_fmt;
    let ks = kernel.shape();
    let (ko, ki, ky) = (fmt.o_axis(ks), fmt.i_axis(ks), fmt.h_axis());
    if ks.len() != 4 || ks[ky] != kh || ks[ky + 1] != kw {
        return Ok(None);
    }
    let channels = out_shape[m - 1];
    let (Some(k_values), Some(bias)) = (f32_values(&kernel), f32_values(&bias)) else {
        return Ok(None);
    };
    let bias = match bias.len() {
        1 => vec![bias[0]; channels],
        l if l == channels => bias,
        _ => return Ok(None),
    };
    let kstr = row_major_strides(ks);
    Ok(Some(ChannelLastConv {
        conv,
        h: x_shape[n - 3],
        w: x_shape[n - 2],
        c: x_shape[n - 1],
        oh: out_shape[m - 3],
        ow: out_shape[m - 2],
        channels,
        x_shape,
        out_shape,
        kh,
        kw,
        sh,
        sw,
        before,
        after,
        k_dims: [ks[ko], ks[ki], ks[ky], ks[ky + 1]],
        k_strides: [kstr[ko], kstr[ki], kstr[ky], kstr[ky + 1]],
        kernel: k_values,
        bias,
    }))
}

/// A group-1, channel-last `Conv` over a few input channels (+ clamp): the stem.
pub(super) fn stem(model: &TypedModel, id: usize, isa: Isa) -> TractResult<Option<Found>> {
    let Some(cv) = channel_last_conv(model, id)? else {
        return Ok(None);
    };
    let ps = &cv.conv.pool_spec;
    let (c, channels) = (cv.c, cv.channels);
    let pad = Pad {
        h: cv.h,
        w: cv.w,
        c,
        top: cv.before.0,
        left: cv.before.1,
        bottom: cv.after.0,
        right: cv.after.1,
    };
    if cv.conv.group != 1
        || ps.input_channels > 8
        || cv.oh * cv.ow < MIN_POSITIONS
        || (cv.oh - 1) * cv.sh + cv.kh > cv.h + pad.top + pad.bottom
        || (cv.ow - 1) * cv.sw + cv.kw > cv.w + pad.left + pad.right
        || cv.k_dims[0] != channels
        || cv.k_dims[1] != c
    {
        return Ok(None);
    }
    let pw = pad.padded_width();
    // Tap t = (ky, kx, ci), read at ((y + ky) * pw + x + kx) * c + ci of the padded picture.
    let taps: Vec<(usize, usize, usize)> = (0..cv.kh)
        .flat_map(|ky| (0..cv.kw).flat_map(move |kx| (0..c).map(move |ci| (ky, kx, ci))))
        .collect();
    let (rows, bias, padded) = padded_rows(
        Layout::Panels,
        taps.len(),
        channels,
        |t, o| {
            let (ky, kx, ci) = taps[t];
            cv.weight(o, ci, ky, kx)
        },
        &cv.bias,
    );
    let (sh, sw) = (cv.sh, cv.sw);
    let (last, lo, hi, grid) = epilogue(model, id.into());
    let op = TapConv {
        isa,
        kind: "EdgeTlStemConv",
        plan: Plan::Taps {
            bases: Arc::new(
                (0..cv.oh)
                    .flat_map(|y| (0..cv.ow).map(move |x| (y * sh * pw + x * sw) * c))
                    .collect(),
            ),
            offsets: Arc::new(
                taps.iter()
                    .map(|&(ky, kx, ci)| (ky * pw + kx) * c + ci)
                    .collect(),
            ),
            pad: Some(pad),
            channels_first: false,
        },
        rows: Arc::new(rows),
        bias: Arc::new(bias),
        channels,
        padded,
        lo,
        hi,
        grid,
        input_shape: cv.x_shape,
        output_shape: cv.out_shape,
    };
    Ok(Some((op, model.node(id).inputs[0], last)))
}

/// A channel-last `Conv` with one group per channel (+ clamp): a depthwise convolution.
pub(super) fn depthwise_conv(
    model: &TypedModel,
    id: usize,
    isa: Isa,
) -> TractResult<Option<Found>> {
    let Some(cv) = channel_last_conv(model, id)? else {
        return Ok(None);
    };
    let c = cv.c;
    // `c` filters of one channel each: the channels run along O or along I of the kernel.
    if cv.conv.group != c || cv.channels != c || cv.k_dims[0] * cv.k_dims[1] != c {
        return Ok(None);
    }
    let along_o = cv.k_dims[0] == c;
    let g = depthwise::Geometry {
        h: cv.h,
        w: cv.w,
        c,
        kh: cv.kh,
        kw: cv.kw,
        sh: cv.sh,
        sw: cv.sw,
        top: cv.before.0,
        left: cv.before.1,
        oh: cv.oh,
        ow: cv.ow,
    };
    let kw = cv.kw;
    let (rows, bias, padded) = padded_rows(
        Layout::Rows,
        cv.kh * kw,
        c,
        |t, ch| {
            let (o, i) = if along_o { (ch, 0) } else { (0, ch) };
            cv.weight(o, i, t / kw, t % kw)
        },
        &cv.bias,
    );
    let (last, lo, hi, grid) = epilogue(model, id.into());
    let op = TapConv {
        isa,
        kind: "EdgeTlDepthwiseConv",
        plan: Plan::Depthwise(g),
        rows: Arc::new(rows),
        bias: Arc::new(bias),
        channels: c,
        padded,
        lo,
        hi,
        grid,
        input_shape: cv.x_shape,
        output_shape: cv.out_shape,
    };
    Ok(Some((op, model.node(id).inputs[0], last)))
}
