//! ONNX `Conv` on NCHW tensors in candle, in the three shapes MobileNets use: pointwise (1x1,
//! a matrix product), depthwise (one 3x3 filter per channel, as shifted multiply-adds) and
//! the general case (candle's own convolution, used for the first layer only).

use candle_core::{Result, Tensor, D};

/// A convolution's attributes, as ONNX gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvSpec {
    pub strides: [usize; 2],
    /// Top, left, bottom, right (ONNX order: begins then ends).
    pub pads: [usize; 4],
    pub group: usize,
}

/// `x` (N, C, H, W) convolved with `w` (O, C/group, kh, kw) plus `bias` (O).
pub fn conv(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, spec: &ConvSpec) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    let (o, _, kh, kw) = w.dims4()?;
    let y =
        if spec.group == 1 && kh == 1 && kw == 1 && spec.strides == [1, 1] && spec.pads == [0; 4] {
            pointwise(x, w)?
        } else if spec.group == c && o == c {
            depthwise(x, w, spec)?
        } else if spec.group == 1 {
            let [t, l, b, r] = spec.pads;
            let padded = x.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?;
            padded.conv2d(w, 0, spec.strides[0], 1, 1)?
        } else {
            candle_core::bail!(
                "grouped convolution with {} groups over {c} channels is not supported",
                spec.group
            )
        };
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, o, 1, 1))?),
        None => Ok(y),
    }
}

/// 1x1 convolution as one matrix product per picture.
fn pointwise(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let o = w.dim(0)?;
    let w = w.reshape((o, c))?;
    let x = x.reshape((n, c, h * wd))?;
    w.broadcast_matmul(&x)?.reshape((n, o, h, wd))
}

/// Depthwise convolution: the sum over the kernel's taps of the (strided) shifted input times
/// that tap's per-channel weight. For stride 2 the padded input is split once into its four
/// even/odd row/column phases, so every tap is a plain window of one phase.
fn depthwise(x: &Tensor, w: &Tensor, spec: &ConvSpec) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    let [sh, sw] = spec.strides;
    let [t, l, b, r] = spec.pads;
    let oh = (h + t + b - kh) / sh + 1;
    let ow = (wd + l + r - kw) / sw + 1;
    // Padded so that every phase has whole rows/columns for every tap.
    let need_h = ((kh - 1) / sh + oh) * sh;
    let need_w = ((kw - 1) / sw + ow) * sw;
    let xp = x
        .pad_with_zeros(2, t, need_h.saturating_sub(h + t))?
        .pad_with_zeros(3, l, need_w.saturating_sub(wd + l))?
        .narrow(2, 0, need_h)?
        .narrow(3, 0, need_w)?;
    let (ph, pw) = (need_h / sh, need_w / sw);
    let phases: Vec<Vec<Tensor>> = if sh == 1 && sw == 1 {
        vec![vec![xp]]
    } else {
        let split = xp.reshape((n, c, ph, sh, pw, sw))?;
        (0..sh)
            .map(|py| {
                (0..sw)
                    .map(|px| {
                        split
                            .narrow(3, py, 1)?
                            .narrow(5, px, 1)?
                            .reshape((n, c, ph, pw))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?
    };
    let mut acc: Option<Tensor> = None;
    for ky in 0..kh {
        for kx in 0..kw {
            let tap = phases[ky % sh][kx % sw]
                .narrow(2, ky / sh, oh)?
                .narrow(3, kx / sw, ow)?;
            let weight = w
                .narrow(2, ky, 1)?
                .narrow(3, kx, 1)?
                .reshape((1, c, 1, 1))?;
            let term = tap.broadcast_mul(&weight)?;
            acc = Some(match acc {
                Some(a) => (a + term)?,
                None => term,
            });
        }
    }
    acc.ok_or_else(|| candle_core::Error::Msg("empty kernel".into()))
}

/// Mean over the last two dimensions, kept as 1x1 (GlobalAveragePool, or an AveragePool whose
/// window is the whole map).
pub fn global_average(x: &Tensor) -> Result<Tensor> {
    x.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn ramp(shape: (usize, usize, usize, usize), scale: f32) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * scale)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The shortcuts agree with candle's general convolution (one group at a time for
    /// depthwise), for both strides and ONNX's asymmetric "same" padding.
    #[test]
    fn pointwise_and_depthwise_equal_the_general_convolution() {
        let x = ramp((2, 4, 9, 8), 0.1);
        let w1 = ramp((5, 4, 1, 1), 0.3);
        let spec1 = ConvSpec {
            strides: [1, 1],
            pads: [0; 4],
            group: 1,
        };
        let fast = conv(&x, &w1, None, &spec1).unwrap();
        let slow = x.conv2d(&w1, 0, 1, 1, 1).unwrap();
        assert_close(&fast, &slow);

        let wd = ramp((4, 1, 3, 3), 0.2);
        for (strides, pads) in [([1, 1], [1, 1, 1, 1]), ([2, 2], [0, 0, 1, 1])] {
            let spec = ConvSpec {
                strides,
                pads,
                group: 4,
            };
            let fast = conv(&x, &wd, None, &spec).unwrap();
            let padded = x
                .pad_with_zeros(2, pads[0], pads[2])
                .unwrap()
                .pad_with_zeros(3, pads[1], pads[3])
                .unwrap();
            let slow = padded.conv2d(&wd, 0, strides[0], 1, 4).unwrap();
            assert_eq!(fast.dims(), slow.dims(), "stride {strides:?}");
            assert_close(&fast, &slow);
        }
    }

    fn assert_close(a: &Tensor, b: &Tensor) {
        let diff = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4, "max difference {diff}");
    }
}
