//! Convolution by im2col + matmul, as the book's `Convolution` layer, through the fused
//! [`Tensor::conv2d`] / [`Tensor::conv2d_backward`] ops:
//!
//! forward:  col = im2col(x) `[N·OH·OW, C·KH·KW]`; out = col · Wᵀ + b, laid out NCHW.
//! backward: db = Σ dout, dW = doutᵀ · col, dcol = dout · W, dx = col2im(dcol).
//!
//! The layer caches its input (shared, not copied); the columns are rebuilt in backward.

use super::{ForwardCtx, Init, Layer, Param, no_forward};
use crate::DType;
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// A 2-D convolution, weights `[FN, C, KH, KW]`.
pub struct Conv2d {
    weight: Param,
    bias: Param,
    stride: usize,
    pad: usize,
    cache: Option<Tensor>,
}

impl Conv2d {
    /// `in_ch → out_ch` with a `k`×`k` kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_ch: usize,
        out_ch: usize,
        k: usize,
        stride: usize,
        pad: usize,
        init: Init,
        seed: u64,
        device: &Device,
    ) -> Result<Conv2d> {
        let fan_in = in_ch * k * k;
        Ok(Conv2d {
            weight: Param::new(
                "weight",
                init.tensor(&[out_ch, in_ch, k, k], fan_in, seed, device)?,
                true,
            ),
            bias: Param::new("bias", Tensor::zeros([out_ch], DType::F32, device)?, false),
            stride,
            pad,
            cache: None,
        })
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "Conv2d"
    }

    fn forward(&mut self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let out = x.conv2d(&self.weight.value, &self.bias.value, self.stride, self.pad)?;
        self.cache = if ctx.train { Some(x.clone()) } else { None };
        Ok(out)
    }

    fn backward(&mut self, dout: &Tensor) -> Result<Tensor> {
        let x = self.cache.as_ref().ok_or_else(|| no_forward("Conv2d"))?;
        let (dx, dw, db) = x.conv2d_backward(&self.weight.value, dout, self.stride, self.pad)?;
        self.weight.grad = Some(dw);
        self.bias.grad = Some(db);
        Ok(dx)
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn set_name(&mut self, name: &str) {
        self.weight.name = format!("{name}.weight");
        self.bias.name = format!("{name}.bias");
    }

    fn describe(&self) -> String {
        let d = self.weight.value.dims();
        format!(
            "Conv2d({}→{}, {}x{}, stride {}, pad {})",
            d[1], d[0], d[2], d[3], self.stride, self.pad
        )
    }
}
