//! Convolution by im2col + matmul, as the book's `Convolution` layer.
//!
//! forward:  col = im2col(x) `[N·OH·OW, C·KH·KW]`; out = col · Wᵀ + b `[N·OH·OW, FN]`;
//!           then `[N, OH·OW, FN]` → `[N, FN, OH·OW]` (NCHW).
//! backward: the reverse layout change, db = Σ rows, dW = doutᵀ · col, dcol = dout · W,
//!           dx = col2im(dcol).

use super::{no_forward, ForwardCtx, Init, Layer, Param};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::Conv2dGeom;
use crate::tensor::Tensor;
use crate::DType;

/// A 2-D convolution, weights `[FN, C, KH, KW]`.
pub struct Conv2d {
    weight: Param,
    bias: Param,
    stride: usize,
    pad: usize,
    cache: Option<(Tensor, Conv2dGeom)>,
}

impl Conv2d {
    /// `in_ch → out_ch` with a `k`×`k` kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn new(in_ch: usize, out_ch: usize, k: usize, stride: usize, pad: usize, init: Init, seed: u64, device: &Device) -> Result<Conv2d> {
        let fan_in = in_ch * k * k;
        Ok(Conv2d {
            weight: Param::new("weight", init.tensor(&[out_ch, in_ch, k, k], fan_in, seed, device)?, true),
            bias: Param::new("bias", Tensor::zeros([out_ch], DType::F32, device)?, false),
            stride,
            pad,
            cache: None,
        })
    }

    fn w2(&self) -> Result<Tensor> {
        let d = self.weight.value.dims();
        self.weight.value.reshape([d[0], d[1] * d[2] * d[3]])
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "Conv2d"
    }

    fn forward(&mut self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let wd = self.weight.value.dims().to_vec();
        if x.dims().len() != 4 || x.dims()[1] != wd[1] {
            return Err(Error::shapes("Conv2d", x.shape(), self.weight.value.shape(), format!("expected NCHW input with {} channels", wd[1])));
        }
        let g = x.conv_geom(wd[2], wd[3], self.stride, self.pad)?;
        let (n, fn_, ohw) = (g.n, wd[0], g.out_h() * g.out_w());
        let col = x.im2col(g.kh, g.kw, g.stride, g.pad)?;
        let out = col.matmul(&self.w2()?, false, true)?.add_broadcast(&self.bias.value)?;
        let out = out.reshape([n, ohw, fn_])?.transpose_last2()?.reshape([n, fn_, g.out_h(), g.out_w()])?;
        self.cache = if ctx.train { Some((col, g)) } else { None };
        Ok(out)
    }

    fn backward(&mut self, dout: &Tensor) -> Result<Tensor> {
        let (col, g) = self.cache.as_ref().ok_or_else(|| no_forward("Conv2d"))?;
        let fn_ = self.weight.value.dims()[0];
        let ohw = g.out_h() * g.out_w();
        let d2 = dout.reshape([g.n, fn_, ohw])?.transpose_last2()?.reshape([g.n * ohw, fn_])?;
        self.bias.grad = Some(d2.sum_rows()?);
        self.weight.grad = Some(d2.matmul(col, true, false)?.reshape(self.weight.value.shape().clone())?);
        let dcol = d2.matmul(&self.w2()?, false, false)?;
        dcol.col2im(g)
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
        format!("Conv2d({}→{}, {}x{}, stride {}, pad {})", d[1], d[0], d[2], d[3], self.stride, self.pad)
    }
}
