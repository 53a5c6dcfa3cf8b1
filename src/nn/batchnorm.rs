//! Batch normalisation as the book's `BatchNormalization`: per feature over the batch; 4-D
//! inputs are normalised per element of `C·H·W` (the book's reshape to `[N, -1]`).
//! Running statistics `r = m·r + (1 - m)·batch` with m = 0.9, eps = 1e-6 (the book's 10e-7).

use super::{ForwardCtx, Layer, Param, no_forward};
use crate::DType;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;

struct Cache {
    shape: Shape,
    xc: Tensor,
    xn: Tensor,
    inv_std: Tensor,
}

/// Batch normalisation over `features` values per example.
pub struct BatchNorm {
    gamma: Param,
    beta: Param,
    running_mean: Tensor,
    running_var: Tensor,
    momentum: f32,
    eps: f32,
    name: String,
    cache: Option<Cache>,
}

impl BatchNorm {
    /// For inputs with `features` values per example (`C·H·W` for images).
    pub fn new(features: usize, device: &Device) -> Result<BatchNorm> {
        Ok(BatchNorm {
            gamma: Param::new("gamma", Tensor::full([features], 1.0, device)?, false),
            beta: Param::new(
                "beta",
                Tensor::zeros([features], DType::F32, device)?,
                false,
            ),
            running_mean: Tensor::zeros([features], DType::F32, device)?,
            running_var: Tensor::zeros([features], DType::F32, device)?,
            momentum: 0.9,
            eps: 1e-6,
            name: String::new(),
            cache: None,
        })
    }
}

impl Layer for BatchNorm {
    fn kind(&self) -> &'static str {
        "BatchNorm"
    }

    fn forward(&mut self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let d = self.gamma.numel();
        let n = x.dims().first().copied().unwrap_or(0);
        if n == 0 || x.numel() != n * d {
            return Err(Error::shapes(
                "BatchNorm",
                x.shape(),
                self.gamma.value.shape(),
                format!("input must flatten to [N, {d}]"),
            ));
        }
        let x2 = x.reshape([n, d])?;
        let out = if ctx.train {
            let mu = x2.sum_rows()?.scale(1.0 / n as f32)?;
            let xc = x2.sub_broadcast(&mu)?;
            let var = xc.mul(&xc)?.sum_rows()?.scale(1.0 / n as f32)?;
            let inv_std = var.sqrt_eps(self.eps)?.recip()?;
            let xn = xc.mul_broadcast(&inv_std)?;
            // Under mixed precision the batch statistics come out in the compute dtype (f16)
            // while the running statistics stay in the master dtype (f32), as PyTorch keeps
            // them: convert before blending (a no-op when the dtypes agree).
            let m = self.momentum;
            let rdt = self.running_mean.dtype();
            self.running_mean = self.running_mean.scale(m)?;
            self.running_mean.axpy_(1.0 - m, &mu.to_dtype(rdt)?)?;
            self.running_var = self.running_var.scale(m)?;
            self.running_var.axpy_(1.0 - m, &var.to_dtype(rdt)?)?;
            let out = xn
                .mul_broadcast(&self.gamma.value)?
                .add_broadcast(&self.beta.value)?;
            self.cache = Some(Cache {
                shape: x.shape().clone(),
                xc,
                xn,
                inv_std,
            });
            out
        } else {
            let inv_std = self.running_var.sqrt_eps(self.eps)?.recip()?;
            let xn = x2
                .sub_broadcast(&self.running_mean)?
                .mul_broadcast(&inv_std)?;
            self.cache = None;
            xn.mul_broadcast(&self.gamma.value)?
                .add_broadcast(&self.beta.value)?
        };
        out.reshape(x.shape().clone())
    }

    fn backward(&mut self, dout: &Tensor) -> Result<Tensor> {
        let c = self.cache.as_ref().ok_or_else(|| no_forward("BatchNorm"))?;
        let (n, d) = (c.xc.dims()[0], c.xc.dims()[1]);
        let dout = dout.reshape([n, d])?;
        self.beta.grad = Some(dout.sum_rows()?);
        self.gamma.grad = Some(c.xn.mul(&dout)?.sum_rows()?);
        let dxn = dout.mul_broadcast(&self.gamma.value)?;
        let mut dxc = dxn.mul_broadcast(&c.inv_std)?;
        let dstd = dxn
            .mul(&c.xc)?
            .sum_rows()?
            .mul(&c.inv_std)?
            .mul(&c.inv_std)?
            .scale(-1.0)?;
        let dvar = dstd.mul(&c.inv_std)?.scale(0.5)?;
        dxc.axpy_(2.0 / n as f32, &c.xc.mul_broadcast(&dvar)?)?;
        let dmu = dxc.sum_rows()?.scale(1.0 / n as f32)?;
        dxc.sub_broadcast(&dmu)?.reshape(c.shape.clone())
    }

    fn params(&self) -> Vec<&Param> {
        vec![&self.gamma, &self.beta]
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.gamma, &mut self.beta]
    }

    fn buffers_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        vec![
            (
                format!("{}.running_mean", self.name),
                &mut self.running_mean,
            ),
            (format!("{}.running_var", self.name), &mut self.running_var),
        ]
    }

    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
        self.gamma.name = format!("{name}.gamma");
        self.beta.name = format!("{name}.beta");
    }

    fn describe(&self) -> String {
        format!("BatchNorm({})", self.gamma.numel())
    }
}
