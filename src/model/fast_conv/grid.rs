//! The 8-bit grid of a QDQ file: every activation rounded to `step * integer` between layers.
//!
//! A QDQ file (the int8 backbones) says "this activation is 8-bit" with a `QuantizeLinear`
//! followed by a `DequantizeLinear`. tract runs each as its own scalar pass over the whole
//! activation, the first through a float-to-u8 cast per value: in the profile of
//! MobileNetV2's QDQ file the pairs were a third of the time (`QuantizeLinearU8` alone 35.8
//! of 118 ms, docs/performance.md). Here the pair becomes one [`Grid`]: folded into the
//! fused convolution before it, where one exists ([`super::TapConv`] rounds each chunk of
//! outputs it has just stored, while still in cache), or else one vectorised pass of its own
//! ([`GridOp`]).
//!
//! The values are tract's, bit for bit: `QuantizeLinear` is `q = clamp(round(x * inv) + zero,
//! qmin, qmax)` with `inv` the reciprocal of the file's scale as tract stores it, rounding half
//! to even, and `DequantizeLinear` is `(q - zero) * step`. Written as `round(clamp(x * inv,
//! qmin - zero, qmax - zero)) * step`, the integer `q - zero` never leaves the float
//! registers. The activations stay floats between layers, so this is not yet the integer
//! arithmetic of onnxruntime's int8 kernels; it removes the passes that made the int8 file
//! slower than the float one.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};

use super::simd::Simd;

/// One `QuantizeLinear` + `DequantizeLinear` pair over floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    /// What `x` is multiplied by before rounding (tract's `1 / scale`).
    pub inv: f32,
    /// What the rounded integer is multiplied by (the file's scale).
    pub step: f32,
    /// The integers that fit the 8-bit type, less the zero point: `qmin - zero`, `qmax - zero`.
    pub lo: f32,
    pub hi: f32,
}

/// Adding and then subtracting 1.5 * 2^23 rounds a float of magnitude below 2^22 to an
/// integer, half to even (the sum's last bit is the units bit), in any instruction set's
/// plain add: the grid's values are at most 255 steps from zero.
const ROUND: f32 = 12_582_912.0;

impl Grid {
    /// The grid of a quantizer that multiplies by `inv`, adds `zero` and saturates to
    /// `qmin..=qmax`, and of the dequantizer that subtracts `zero` and multiplies by `step`;
    /// `None` for scales that are not positive finite numbers or a zero point outside the type.
    pub fn new(inv: f32, step: f32, zero: i32, qmin: i32, qmax: i32) -> Option<Grid> {
        let ok = |s: f32| s.is_finite() && s > 0.0;
        (ok(inv) && ok(step) && (qmin..=qmax).contains(&zero)).then(|| Grid {
            inv,
            step,
            lo: (qmin - zero) as f32,
            hi: (qmax - zero) as f32,
        })
    }

    /// The definition: what tract's pair computes for `x` (the tests compare the two).
    pub fn apply(&self, x: f32) -> f32 {
        let t = x * self.inv;
        // Comparisons rather than `f32::max`/`min`, whose NaN rule stops the vectoriser.
        let t = if t > self.lo { t } else { self.lo };
        let t = if t < self.hi { t } else { self.hi };
        ((t + ROUND) - ROUND) * self.step
    }

    /// `clamp(lo, hi)` followed by this grid, as one grid whose bounds (in grid units) also
    /// hold the clamp's: what [`super::TapConv`] keeps, so that its grid pass is one
    /// clamp. Exact: multiplying by a positive `inv` keeps the order of floats, so clamping
    /// before or after it is the same.
    pub fn after_clamp(&self, lo: f32, hi: f32) -> Grid {
        let unit = |v: f32| (v * self.inv).clamp(self.lo, self.hi);
        Grid {
            lo: unit(lo),
            hi: unit(hi),
            ..*self
        }
    }

    /// Puts every value of `out` on the grid: the fused convolutions' second pass over a
    /// chunk of outputs they just stored (clamped), while it is in cache. Same bits as
    /// [`Grid::apply`] on each value.
    ///
    /// # Safety
    /// As [`Simd`]: the CPU has `S`'s features.
    #[inline(always)]
    pub unsafe fn pass<S: Simd>(&self, out: &mut [f32]) {
        let whole = out.len() / S::LANES * S::LANES;
        unsafe {
            let vectors = GridVectors::<S>::new(self);
            let p = out.as_mut_ptr();
            let mut i = 0;
            while i < whole {
                S::store(p.add(i), Grid::finish::<S>(S::load(p.add(i)), &vectors));
                i += S::LANES;
            }
        }
        for x in &mut out[whole..] {
            *x = self.apply(*x);
        }
    }

    /// [`Grid::apply`] on a vector.
    ///
    /// # Safety
    /// As [`Simd`]: the CPU has `S`'s features.
    #[inline(always)]
    unsafe fn finish<S: Simd>(v: S::V, vectors: &GridVectors<S>) -> S::V {
        unsafe {
            let t = S::mul_add(v, vectors.inv, vectors.zero);
            let t = S::min(S::max(t, vectors.lo), vectors.hi);
            // A fused multiply-add by one is a plain add, rounded once.
            let t = S::mul_add(t, vectors.one, vectors.round);
            let t = S::mul_add(t, vectors.one, vectors.unround);
            S::mul_add(t, vectors.step, vectors.zero)
        }
    }
}

/// A [`Grid`], splatted once per pass.
struct GridVectors<S: Simd> {
    inv: S::V,
    step: S::V,
    lo: S::V,
    hi: S::V,
    one: S::V,
    zero: S::V,
    round: S::V,
    unround: S::V,
}

impl<S: Simd> GridVectors<S> {
    /// # Safety
    /// As [`Simd`]: the CPU has `S`'s features.
    #[inline(always)]
    unsafe fn new(grid: &Grid) -> Self {
        unsafe {
            GridVectors {
                inv: S::splat(grid.inv),
                step: S::splat(grid.step),
                lo: S::splat(grid.lo),
                hi: S::splat(grid.hi),
                one: S::splat(1.0),
                zero: S::splat(0.0),
                round: S::splat(ROUND),
                unround: S::splat(-ROUND),
            }
        }
    }
}

/// The pair as an op of its own where no fused convolution precedes it (MobileNetV2's
/// residual additions, the average pool before the logits).
#[derive(Clone, Debug, PartialEq)]
pub struct GridOp {
    pub grid: Grid,
}

/// tract wants ops `Eq`; the scales come from the model and are never NaN ([`Grid::new`]).
impl Eq for GridOp {}

impl Op for GridOp {
    fn name(&self) -> StaticName {
        "EdgeTlGrid".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?}", self.grid)])
    }

    tract_onnx::tract_core::op_as_typed_op!();
}

impl EvalOp for GridOp {
    tract_onnx::tract_core::op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let mut output = input.into_tensor();
        {
            let mut view = output.try_as_plain_ram_mut()?;
            for v in view.as_slice_mut::<f32>()? {
                *v = self.grid.apply(*v);
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for GridOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::datum_type().fact(inputs[0].shape.clone())))
    }

    fn axes_mapping(
        &self,
        inputs: &[&TypedFact],
        outputs: &[&TypedFact],
    ) -> TractResult<AxesMapping> {
        AxesMapping::natural(inputs, outputs)
    }

    fn change_axes(
        &self,
        model: &TypedModel,
        node: &TypedNode,
        _io: InOut,
        change: &AxisOp,
    ) -> TractResult<Option<AxisChangeConsequence>> {
        Ok(Some(AxisChangeConsequence::new(model, node, None, change)))
    }

    tract_onnx::tract_core::as_op!();
}

/// The grid of node `id`, if it is a `QuantizeLinear` of floats whose every consumer is a
/// `DequantizeLinear` with its zero point and one scale (and not a graph output).
fn pair(model: &TypedModel, id: usize) -> Option<Grid> {
    let node = model.node(id);
    let q = &node.op_as::<ElementWiseOp>()?.0;
    let (inv, zero, qmin, qmax) = if let Some(q) = q.downcast_ref::<QuantizeLinearU8>() {
        (q.scale, q.zero_point as i32, 0, 255)
    } else if let Some(q) = q.downcast_ref::<QuantizeLinearI8>() {
        (q.scale, q.zero_point as i32, -128, 127)
    } else {
        return None;
    };
    let input = model.outlet_fact(*node.inputs.first()?).ok()?;
    if input.datum_type != f32::datum_type() || model.outputs.contains(&id.into()) {
        return None;
    }
    let mut step = None;
    for succ in model.outlet_successors(id.into()) {
        let dq = model.node(succ.node).op_as::<DequantizeLinearF32>()?;
        if dq.zero_point != zero || step.is_some_and(|s| s != dq.scale) {
            return None;
        }
        step = Some(dq.scale);
    }
    Grid::new(inv, step?, zero, qmin, qmax)
}

/// Replaces every `QuantizeLinear` -> `DequantizeLinear` pair over floats by a [`GridOp`];
/// returns how many. Run before the convolutions are matched, so that they can fold it.
pub(super) fn fold_pairs(model: &mut TypedModel) -> TractResult<usize> {
    let mut count = 0;
    for id in 0..model.nodes.len() {
        let Some(grid) = pair(model, id) else {
            continue;
        };
        let node = model.node(id);
        let dequantized: Vec<usize> = model
            .outlet_successors(id.into())
            .iter()
            .map(|s| s.node)
            .collect();
        let mut patch = TypedModelPatch::default();
        let tap = patch.tap_model(model, node.inputs[0])?;
        let name = format!("{}.edge_tl", node.name);
        let wire = patch.wire_node(name, GridOp { grid }, &[tap])?[0];
        for dq in dequantized {
            patch.shunt_outside(model, dq.into(), wire)?;
        }
        patch.apply(model)?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::super::kernel::{run, Taps, Weights};
    use super::*;
    use crate::model::Isa;
    use tract_onnx::tract_core::ops::quant::{quantize_linear_f32_i8, quantize_linear_f32_u8};

    /// One tap, weight 1 for channel 0 (zeros for the panel's padding): output = input.
    fn one_tap_identity() -> Vec<f32> {
        let mut rows = vec![0.0; 16];
        rows[0] = 1.0;
        rows
    }

    /// tract's two ops, one value at a time.
    fn tracts(x: f32, inv: f32, step: f32, zero: i32, signed: bool) -> f32 {
        let q = if signed {
            quantize_linear_f32_i8(x, inv, zero) as i32
        } else {
            quantize_linear_f32_u8(x, inv, zero) as i32
        };
        (q - zero) as f32 * step
    }

    /// Values across the whole range, halfway points, saturation at both ends and beyond:
    /// the definition and every vector path give tract's bits, with and without a clamp
    /// before (ReLU6, and bounds beyond the grid's).
    #[test]
    fn the_grid_is_tracts_quantize_then_dequantize() {
        let mut xs: Vec<f32> = (-3000..3000).map(|i| i as f32 / 257.0).collect();
        // Exactly halfway between steps of 1/128: ties, rounded to the even neighbour.
        xs.extend((-300..300).map(|i| (i as f32 + 0.5) / 128.0));
        // Saturation (tract's own sum overflows past 2^31 steps, so not beyond).
        xs.extend([0.0, -0.0, 1e6, -1e6]);
        let cases = [
            (0.0235f32, 0, false, 0.0f32, 6.0f32),
            (0.0235, 0, false, f32::NEG_INFINITY, f32::INFINITY),
            (1.0 / 128.0, 128, false, f32::NEG_INFINITY, f32::INFINITY),
            (0.11, 131, false, -1.0, 100.0),
            (0.05, -3, true, f32::NEG_INFINITY, f32::INFINITY),
            (0.05, 10, true, 0.0, 6.0),
        ];
        for (step, zero, signed, lo, hi) in cases {
            let inv = step.recip();
            let (qmin, qmax) = if signed { (-128, 127) } else { (0, 255) };
            let grid = Grid::new(inv, step, zero, qmin, qmax).unwrap();
            let want: Vec<f32> = xs
                .iter()
                .map(|&x| tracts(x.max(lo).min(hi), inv, step, zero, signed))
                .collect();
            for (&x, &w) in xs.iter().zip(&want) {
                let got = grid.apply(x.max(lo).min(hi));
                assert_eq!(got.to_bits(), w.to_bits(), "{x} on {grid:?}: {got} vs {w}");
            }
            // The kernels' grid pass, through a 1x1 convolution that copies its input.
            let (rows, bias) = (one_tap_identity(), vec![0.0; 16]);
            let w = Weights {
                rows: &rows,
                bias: &bias,
                channels: 1,
                padded: 16,
                lo,
                hi,
                grid: Some(grid.after_clamp(lo, hi)),
            };
            let bases: Vec<usize> = (0..xs.len()).collect();
            let taps = Taps { offsets: &[0] };
            for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
                let mut got = vec![f32::NAN; xs.len()];
                run(isa, &xs, &bases, &taps, &w, &mut got);
                for ((&x, &g), &w) in xs.iter().zip(&got).zip(&want) {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{isa:?}: {x} on {grid:?}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn scales_that_are_not_positive_numbers_are_no_grid() {
        assert!(Grid::new(0.0, 1.0, 0, 0, 255).is_none());
        assert!(Grid::new(1.0, f32::NAN, 0, 0, 255).is_none());
        assert!(Grid::new(1.0, -1.0, 0, 0, 255).is_none());
        assert!(Grid::new(1.0, 1.0, 256, 0, 255).is_none());
        assert_eq!(Grid::new(2.0, 0.5, 3, 0, 255).unwrap().lo, -3.0);
    }
}
