//! Convolution by im2col + matmul, as the book's `Convolution` layer, through the fused
//! [`Tensor::conv2d`] op, whose recorded backward is the fused [`Tensor::conv2d_backward`]:
//!
//! forward:  col = im2col(x) `[N·OH·OW, C·KH·KW]`; out = col · Wᵀ + b, laid out NCHW.
//! backward: db = Σ dout, dW = doutᵀ · col, dcol = dout · W, dx = col2im(dcol).
//! (On a GPU the same products run as implicit GEMM, without the column matrix; a ReLU after
//! the layer in a [`Sequential`](super::Sequential) is fused into it, see
//! [`Tensor::conv2d_relu`].)

use super::{Init, Module, Param};
use crate::DType;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A 2-D convolution with `out_ch` square filters over `in_ch` channels (weights
/// `[out, in, k, k]`, bias `[out]`).
#[derive(Module)]
pub struct Conv2d {
    weight: Param,
    bias: Param,
    stride: usize,
    pad: usize,
}

impl Conv2d {
    /// `in_ch → out_ch` with `k`×`k` filters and PyTorch's default initialisation: weights
    /// and bias uniform in `±1/√(in_ch·k·k)` (`kaiming_uniform_(a=√5)` for the weights), drawn
    /// from the global generator ([`crate::manual_seed`]).
    pub fn new(
        in_ch: usize,
        out_ch: usize,
        k: usize,
        stride: usize,
        pad: usize,
        device: &Device,
    ) -> Result<Conv2d> {
        let fan_in = checked_fan_in(in_ch, out_ch, k, stride)?;
        let mut seeds = crate::rng::SplitMix64::new(crate::rng::next_seed());
        let bound = super::init::torch_bias_bound(fan_in);
        Ok(Conv2d {
            weight: Param::new(
                Init::TORCH_DEFAULT.tensor(
                    &[out_ch, in_ch, k, k],
                    fan_in,
                    seeds.next_u64(),
                    device,
                )?,
                true,
            )?,
            bias: Param::new(
                Tensor::rand_uniform([out_ch], -bound, bound, seeds.next_u64(), device)?,
                false,
            )?,
            stride,
            pad,
        })
    }

    /// `in_ch → out_ch` with `k`×`k` filters; weights drawn with `init` (fan-in `in_ch·k·k`)
    /// and `seed`, bias 0 (the book's layers, and every network in [`crate::models`]).
    #[allow(clippy::too_many_arguments)] // the book's constructor arguments, plus where
    pub fn with_init(
        in_ch: usize,
        out_ch: usize,
        k: usize,
        stride: usize,
        pad: usize,
        init: Init,
        seed: u64,
        device: &Device,
    ) -> Result<Conv2d> {
        let fan_in = checked_fan_in(in_ch, out_ch, k, stride)?;
        Ok(Conv2d {
            weight: Param::new(
                init.tensor(&[out_ch, in_ch, k, k], fan_in, seed, device)?,
                true,
            )?,
            bias: Param::new(Tensor::zeros([out_ch], DType::F32, device)?, false)?,
            stride,
            pad,
        })
    }

    /// The filters `[out, in, k, k]`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// `relu(conv(x))` as one op: [`Sequential`](super::Sequential) runs a `Conv2d` followed
    /// by a `Relu` through it.
    pub(crate) fn forward_relu(&mut self, x: &Tensor) -> Result<Tensor> {
        let dt = x.dtype();
        x.conv2d_relu(
            &self.weight.value().to_dtype(dt)?,
            &self.bias.value().to_dtype(dt)?,
            self.stride,
            self.pad,
        )
    }
}

impl Module for Conv2d {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let dt = x.dtype();
        x.conv2d(
            &self.weight.value().to_dtype(dt)?,
            &self.bias.value().to_dtype(dt)?,
            self.stride,
            self.pad,
        )
    }

    fn describe(&self) -> String {
        let d = self.weight.value().dims();
        format!(
            "Conv2d({}→{}, {}x{}, stride {}, pad {})",
            d[1], d[0], d[2], d[3], self.stride, self.pad
        )
    }
}

/// A `k`×`k` filter's fan-in over `in_ch` channels, or an error when it overflows.
/// Refuses zero sizes by argument name, and returns the fan-in `in_ch·k·k` (an error when it
/// overflows).
fn checked_fan_in(in_ch: usize, out_ch: usize, k: usize, stride: usize) -> Result<usize> {
    super::check_sizes(
        "Conv2d",
        &[
            ("in_channels", in_ch),
            ("out_channels", out_ch),
            ("kernel_size", k),
            ("stride", stride),
        ],
    )?;
    in_ch
        .checked_mul(k)
        .and_then(|f| f.checked_mul(k))
        .ok_or_else(|| {
            Error::invalid(
                "Conv2d",
                format!("{in_ch} channels of {k}x{k} filters: the size overflows"),
            )
        })
}
