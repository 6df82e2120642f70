//! Channel-last convolutions tract runs slowly on x86_64, replaced at load time by one op of
//! ours ([`TapConv`]) that computes the convolution, its bias and its ReLU6 in one pass.
//!
//! The profile of MobileNetV2 in tract 0.23 (README, "Speed") put most of the gap to
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
//! which are folded in. It only runs where the CPU has AVX-512 (elsewhere, e.g. on the Pi, tract's own
//! kernels run unchanged). Sums are fused multiply-adds in another order than tract's, so
//! embeddings differ from tract's own plan by rounding only; `tests` and the
//! end-to-end suite compare the two plans.

pub mod depthwise;
pub mod kernel;

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;

/// Positions below this many are left to tract (the classifier, 1x1 pictures): its matrix
/// kernels are at their best there and ours would gain nothing.
const MIN_POSITIONS: usize = 16;

/// One convolution, its bias and its clamp: output channel `o` of each position is
/// `clamp(bias[o] + sum over taps of weight * input)`, as [`Plan`] says which.
#[derive(Clone, PartialEq)]
pub struct TapConv {
    kind: &'static str,
    plan: Plan,
    /// Weights `[tap][channel]`, each row `padded` long; bias `padded` long.
    rows: Arc<Vec<f32>>,
    bias: Arc<Vec<f32>>,
    channels: usize,
    padded: usize,
    /// Clamp bounds (-inf/+inf: none).
    lo: f32,
    hi: f32,
    input_shape: TVec<usize>,
    output_shape: TVec<usize>,
}

/// Which input values a convolution's taps read.
#[derive(Clone, PartialEq, Eq)]
enum Plan {
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
struct Pad {
    h: usize,
    w: usize,
    c: usize,
    top: usize,
    left: usize,
    bottom: usize,
    right: usize,
}

impl Pad {
    fn padded_width(&self) -> usize {
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
        )
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
            };
            match &self.plan {
                Plan::Depthwise(g) => depthwise::run(g, x, &weights, out),
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
                    if *channels_first {
                        let mut scratch = vec![0.0; out.len()];
                        kernel::run(x, bases, &taps, &weights, &mut scratch);
                        transpose(&scratch, bases.len(), self.channels, out);
                    } else {
                        kernel::run(x, bases, &taps, &weights, out);
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

/// Replaces every convolution described in the module comment by a [`TapConv`]; returns how
/// many. Does nothing where the CPU lacks AVX-512.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    if !kernel::has_avx512() {
        return Ok(0);
    }
    let mut count = 0;
    for id in 0..model.nodes.len() {
        let matchers = [pointwise, stem, depthwise_conv];
        let found = matchers
            .iter()
            .find_map(|matcher| matcher(model, id).transpose())
            .transpose()?;
        if let Some((op, input, replaced)) = found {
            let mut patch = TypedModelPatch::default();
            let tap = patch.tap_model(model, input)?;
            let name = format!("{}.edge_tl", model.node(id).name);
            let wire = patch.wire_node(name, op, &[tap])?;
            patch.shunt_outside(model, replaced, wire[0])?;
            patch.apply(model)?;
            count += 1;
        }
    }
    Ok(count)
}

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

type Found = (TapConv, OutletId, OutletId);

fn concrete(fact: &TypedFact) -> Option<TVec<usize>> {
    fact.shape.as_concrete().map(|s| s.into())
}

fn row_major_strides(shape: &[usize]) -> TVec<usize> {
    let mut strides: TVec<usize> = tvec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

fn f32_values(t: &Tensor) -> Option<Vec<f32>> {
    let t = t.cast_to::<f32>().ok()?;
    let view = t.try_as_plain_ram().ok()?;
    Some(view.as_slice::<f32>().ok()?.to_vec())
}

/// The only consumer of `outlet`, if it has exactly one and is not a graph output.
fn sole_consumer(model: &TypedModel, outlet: OutletId) -> Option<&TypedNode> {
    let succ = model.outlet_successors(outlet);
    let is_output = model.outputs.contains(&outlet);
    (succ.len() == 1 && !is_output).then(|| model.node(succ[0].node))
}

/// A binary op of `name` between `outlet` and a constant; returns the constant.
fn binary_with_const(
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

/// Weight rows `[tap][channel]` padded to whole vectors, and the bias padded likewise.
fn padded_rows(
    taps: usize,
    channels: usize,
    weight: impl Fn(usize, usize) -> f32,
    bias: &[f32],
) -> (Vec<f32>, Vec<f32>, usize) {
    let padded = channels.div_ceil(16) * 16;
    let mut rows = vec![0.0; taps * padded];
    for t in 0..taps {
        for o in 0..channels {
            rows[t * padded + o] = weight(t, o);
        }
    }
    let mut b = vec![0.0; padded];
    b[..channels].copy_from_slice(bias);
    (rows, b, padded)
}

/// `EinSum` (constant `[o, k]` weights, channels last in the output) + constant bias `Add`
/// (+ clamp): a 1x1 convolution.
fn pointwise(model: &TypedModel, id: usize) -> TractResult<Option<Found>> {
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
    let (last, lo, hi) = clamp(model, add.id.into());
    let (rows, bias, padded) = padded_rows(
        depth,
        channels,
        |t, o| w_values[o * w_strides[ow] + t * w_strides[kw]],
        &bias,
    );
    let op = TapConv {
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
        input_shape: x_shape,
        output_shape: out_shape,
    };
    Ok(Some((op, node.inputs[0], last)))
}

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
fn stem(model: &TypedModel, id: usize) -> TractResult<Option<Found>> {
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
        taps.len(),
        channels,
        |t, o| {
            let (ky, kx, ci) = taps[t];
            cv.weight(o, ci, ky, kx)
        },
        &cv.bias,
    );
    let (sh, sw) = (cv.sh, cv.sw);
    let (last, lo, hi) = clamp(model, id.into());
    let op = TapConv {
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
        input_shape: cv.x_shape,
        output_shape: cv.out_shape,
    };
    Ok(Some((op, model.node(id).inputs[0], last)))
}

/// A channel-last `Conv` with one group per channel (+ clamp): a depthwise convolution.
fn depthwise_conv(model: &TypedModel, id: usize) -> TractResult<Option<Found>> {
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
        cv.kh * kw,
        c,
        |t, ch| {
            let (o, i) = if along_o { (ch, 0) } else { (0, ch) };
            cv.weight(o, i, t / kw, t % kw)
        },
        &cv.bias,
    );
    let (last, lo, hi) = clamp(model, id.into());
    let op = TapConv {
        kind: "EdgeTlDepthwiseConv",
        plan: Plan::Depthwise(g),
        rows: Arc::new(rows),
        bias: Arc::new(bias),
        channels: c,
        padded,
        lo,
        hi,
        input_shape: cv.x_shape,
        output_shape: cv.out_shape,
    };
    Ok(Some((op, model.node(id).inputs[0], last)))
}
