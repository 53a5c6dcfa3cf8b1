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
/// `[out, in, k, k]`, bias `[out]` unless built [`Conv2d::without_bias`]).
#[derive(Module)]
pub struct Conv2d {
    weight: Param,
    bias: Option<Param>,
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
        let fan_in = checked_fan_in("Conv2d", (in_ch, out_ch), in_ch, k, stride)?;
        let (weight, bias) = torch_default([out_ch, in_ch, k, k], fan_in, out_ch, device)?;
        Ok(Conv2d {
            weight,
            bias: Some(bias),
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
        let fan_in = checked_fan_in("Conv2d", (in_ch, out_ch), in_ch, k, stride)?;
        Ok(Conv2d {
            weight: Param::new(
                init.tensor(&[out_ch, in_ch, k, k], fan_in, seed, device)?,
                true,
            )?,
            bias: Some(Param::new(
                Tensor::zeros([out_ch], DType::F32, device)?,
                false,
            )?),
            stride,
            pad,
        })
    }

    /// Without a bias (PyTorch's `bias=False`, as DCGAN's discriminator layers): no `bias`
    /// parameter, and the convolution adds zeros.
    pub fn without_bias(mut self) -> Conv2d {
        self.bias = None;
        self
    }

    /// The bias `[out]` the convolution adds, in `dt`: zeros without one.
    fn bias_as(&self, dt: DType) -> Result<Tensor> {
        match &self.bias {
            Some(b) => b.value().to_dtype(dt),
            None => {
                let w = self.weight.value();
                Tensor::zeros([w.dims()[0]], dt, &w.device())
            }
        }
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
            &self.bias_as(dt)?,
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
            &self.bias_as(dt)?,
            self.stride,
            self.pad,
        )
    }

    fn describe(&self) -> String {
        let d = self.weight.value().dims();
        format!(
            "Conv2d({}→{}, {}x{}, stride {}, pad {}{})",
            d[1],
            d[0],
            d[2],
            d[3],
            self.stride,
            self.pad,
            if self.bias.is_none() { ", no bias" } else { "" }
        )
    }
}

/// PyTorch's default initialisation of a convolution's `weight` (`dims`) and bias (`bias_len`):
/// both uniform in `±1/√fan_in` (`kaiming_uniform_(a=√5)` for the weight), seeds from the
/// global generator.
fn torch_default(
    dims: [usize; 4],
    fan_in: usize,
    bias_len: usize,
    device: &Device,
) -> Result<(Param, Param)> {
    let mut seeds = crate::rng::SplitMix64::new(crate::rng::next_seed());
    let bound = super::init::torch_bias_bound(fan_in);
    let weight = Init::TORCH_DEFAULT.tensor(&dims, fan_in, seeds.next_u64(), device)?;
    let bias = Tensor::rand_uniform([bias_len], -bound, bound, seeds.next_u64(), device)?;
    Ok((Param::new(weight, true)?, Param::new(bias, false)?))
}

/// Refuses zero sizes by argument name (`layer` names the module), and returns the fan-in
/// `fan_ch·k·k` of a `k`×`k` filter over `fan_ch` channels (an error when it overflows):
/// PyTorch's `fan_in` of the weight, over the input channels of a convolution and the output
/// channels of a transposed one.
fn checked_fan_in(
    layer: &'static str,
    (in_ch, out_ch): (usize, usize),
    fan_ch: usize,
    k: usize,
    stride: usize,
) -> Result<usize> {
    super::check_sizes(
        layer,
        &[
            ("in_channels", in_ch),
            ("out_channels", out_ch),
            ("kernel_size", k),
            ("stride", stride),
        ],
    )?;
    fan_ch
        .checked_mul(k)
        .and_then(|f| f.checked_mul(k))
        .ok_or_else(|| {
            Error::invalid(
                layer,
                format!("{fan_ch} channels of {k}x{k} filters: the size overflows"),
            )
        })
}

/// A 2-D transposed convolution (PyTorch's `nn.ConvTranspose2d`): `in_ch → out_ch` with
/// square `k`×`k` filters (weights `[in, out, k, k]`, PyTorch's layout; bias `[out]` unless
/// built without), through [`Tensor::conv_transpose2d`]. A DCGAN generator's upsampling layer.
#[derive(Module)]
pub struct ConvTranspose2d {
    weight: Param,
    bias: Option<Param>,
    stride: usize,
    pad: usize,
    output_padding: usize,
}

impl ConvTranspose2d {
    /// `in_ch → out_ch` with `k`×`k` filters, `stride`, `pad` and a bias, PyTorch's default
    /// initialisation: weights and bias uniform in `±1/√(out_ch·k·k)` (PyTorch's fan-in of a
    /// `[in, out, k, k]` weight), drawn from the global generator ([`crate::manual_seed`]).
    pub fn new(
        in_ch: usize,
        out_ch: usize,
        k: usize,
        stride: usize,
        pad: usize,
        device: &Device,
    ) -> Result<ConvTranspose2d> {
        let fan_in = checked_fan_in("ConvTranspose2d", (in_ch, out_ch), out_ch, k, stride)?;
        let (weight, bias) = torch_default([in_ch, out_ch, k, k], fan_in, out_ch, device)?;
        Ok(ConvTranspose2d {
            weight,
            bias: Some(bias),
            stride,
            pad,
            output_padding: 0,
        })
    }

    /// Without a bias (PyTorch's `bias=False`, as DCGAN's layers before a BatchNorm).
    pub fn without_bias(mut self) -> ConvTranspose2d {
        self.bias = None;
        self
    }

    /// With `output_padding` extra rows and columns at the bottom and right of the output
    /// (PyTorch's `output_padding`, smaller than the stride).
    pub fn output_padding(mut self, output_padding: usize) -> Result<ConvTranspose2d> {
        if output_padding >= self.stride {
            return Err(Error::invalid(
                "ConvTranspose2d",
                format!(
                    "output_padding {output_padding} must be smaller than the stride {}",
                    self.stride
                ),
            ));
        }
        self.output_padding = output_padding;
        Ok(self)
    }

    /// The filters `[in, out, k, k]`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }
}

impl Module for ConvTranspose2d {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let dt = x.dtype();
        let bias = self
            .bias
            .as_ref()
            .map(|b| b.value().to_dtype(dt))
            .transpose()?;
        x.conv_transpose2d(
            &self.weight.value().to_dtype(dt)?,
            bias.as_ref(),
            self.stride,
            self.pad,
            self.output_padding,
        )
    }

    fn describe(&self) -> String {
        let d = self.weight.value().dims();
        format!(
            "ConvTranspose2d({}→{}, {}x{}, stride {}, pad {}{}{})",
            d[0],
            d[1],
            d[2],
            d[3],
            self.stride,
            self.pad,
            match self.output_padding {
                0 => String::new(),
                op => format!(", output_padding {op}"),
            },
            if self.bias.is_none() { ", no bias" } else { "" }
        )
    }
}
