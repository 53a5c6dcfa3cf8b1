//! Affine (fully connected) layer: `out = x · W + b`, W `[in, out]` as in the book.
//! Inputs of any rank are flattened to `[N, in]` (the book's `x.reshape(x.shape[0], -1)`).

use super::{ForwardCtx, Init, Layer, Param, no_forward};
use crate::DType;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// `Affine` in the book.
pub struct Linear {
    weight: Param,
    bias: Param,
    cache: Option<(Tensor, Shape)>,
}

impl Linear {
    /// `in_features → out_features`, weights from `init` with `seed`.
    pub fn new(
        in_features: usize,
        out_features: usize,
        init: Init,
        seed: u64,
        device: &Device,
    ) -> Result<Linear> {
        Ok(Linear {
            weight: Param::new(
                "weight",
                init.tensor(&[in_features, out_features], in_features, seed, device)?,
                true,
            ),
            bias: Param::new(
                "bias",
                Tensor::zeros([out_features], DType::F32, device)?,
                false,
            ),
            cache: None,
        })
    }
}

impl Layer for Linear {
    fn kind(&self) -> &'static str {
        "Linear"
    }

    fn forward(&mut self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let in_f = self.weight.value.dims()[0];
        let n = x.dims().first().copied().unwrap_or(0);
        if n == 0 || x.numel() != n * in_f {
            return Err(Error::shapes(
                "Linear",
                x.shape(),
                self.weight.value.shape(),
                format!("input must flatten to [N, {in_f}]"),
            ));
        }
        let x2 = x.reshape([n, in_f])?;
        let out = x2
            .matmul(&self.weight.value, false, false)?
            .add_broadcast(&self.bias.value)?;
        self.cache = if ctx.train {
            Some((x2, x.shape().clone()))
        } else {
            None
        };
        Ok(out)
    }

    fn backward(&mut self, dout: &Tensor) -> Result<Tensor> {
        let (x2, shape) = self.cache.as_ref().ok_or_else(|| no_forward("Linear"))?;
        self.weight.grad = Some(x2.matmul(dout, true, false)?);
        self.bias.grad = Some(dout.sum_rows()?);
        dout.matmul(&self.weight.value, false, true)?
            .reshape(shape.clone())
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
        format!("Linear({}→{})", d[0], d[1])
    }
}
