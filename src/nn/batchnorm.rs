//! Batch normalisation, in the book's form and in the per-channel form of convolutional nets.
//!
//! - [`BatchNorm::new`] is the book's `BatchNormalization`: per feature over the batch; 4-D
//!   inputs are normalised per element of `C·H·W` (the book's reshape to `[N, -1]`). Running
//!   statistics start at 0, `r = m·r + (1 - m)·batch` with m = 0.9, eps = 1e-6 (the book's
//!   10e-7).
//! - [`BatchNorm::channels`] is PyTorch's `BatchNorm2d`: one mean and variance per channel of
//!   an `[N, C, H, W]` input, over `N·H·W` values, so a feature that is constant in the
//!   training images (a border pixel) does not get its own 1/√eps. Running mean starts at 0
//!   and running variance at 1, m = 0.9 (PyTorch's momentum 0.1), eps = 1e-5.
//!
//! Training runs the fused [`Tensor::batch_norm_train`] (statistics, normalisation and the
//! whole backward in a few kernels); evaluation is a few broadcasts with the running
//! statistics. Both forms are the same computation on a view `[N, C, S]`: the book's is
//! `[N, D, 1]`, the per-channel one `[N, C, H·W]`.

use super::{Module, ModuleField, Param};
use crate::DType;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Which values share one mean and variance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    /// Each of the `D` values per example (the book's).
    Feature,
    /// Each channel of an `[N, C, H, W]` input (PyTorch's `BatchNorm2d`).
    Channel,
}

impl ModuleField for Axis {}

/// Batch normalisation with learned scale `gamma` and shift `beta`.
#[derive(Module)]
pub struct BatchNorm {
    gamma: Param,
    beta: Param,
    #[module(buffer)]
    running_mean: Tensor,
    #[module(buffer)]
    running_var: Tensor,
    momentum: f32,
    eps: f32,
    axis: Axis,
    train: bool,
}

impl BatchNorm {
    /// The book's form, for inputs with `features` values per example (`C·H·W` for images).
    pub fn new(features: usize, device: &Device) -> Result<BatchNorm> {
        super::check_sizes("BatchNorm", &[("features", features)])?;
        BatchNorm::build(features, Axis::Feature, 0.0, 1e-6, device)
    }

    /// Per-channel batch normalisation of `[N, channels, H, W]` inputs (PyTorch's
    /// `BatchNorm2d`).
    pub fn channels(channels: usize, device: &Device) -> Result<BatchNorm> {
        super::check_sizes("BatchNorm", &[("channels", channels)])?;
        BatchNorm::build(channels, Axis::Channel, 1.0, 1e-5, device)
    }

    fn build(d: usize, axis: Axis, var0: f32, eps: f32, device: &Device) -> Result<BatchNorm> {
        if d == 0 {
            return Err(Error::invalid("BatchNorm", "needs at least one feature"));
        }
        Ok(BatchNorm {
            gamma: Param::new(Tensor::full([d], 1.0, device)?, false)?,
            beta: Param::new(Tensor::zeros([d], DType::F32, device)?, false)?,
            running_mean: Tensor::zeros([d], DType::F32, device)?,
            running_var: Tensor::full([d], var0, device)?,
            momentum: 0.9,
            eps,
            axis,
            train: true,
        })
    }

    /// The `[N, C, S]` view normalised and the shape of its statistics, checking `x`.
    fn view(&self, x: &Tensor) -> Result<(Shape, Shape)> {
        let d = self.gamma.numel();
        let dims = x.dims();
        let n = dims.first().copied().unwrap_or(0);
        match self.axis {
            Axis::Feature if n > 0 && x.numel() == n * d => {
                Ok((Shape::from([n, d, 1]), Shape::from([d, 1])))
            }
            Axis::Channel if dims.len() == 4 && dims[1] == d && x.numel() > 0 => {
                let hw = dims[2] * dims[3];
                Ok((Shape::from([n, d, hw]), Shape::from([d, 1])))
            }
            _ => Err(Error::shapes(
                "BatchNorm",
                x.shape(),
                self.gamma.value().shape(),
                match self.axis {
                    Axis::Feature => format!("input must flatten to [N, {d}]"),
                    Axis::Channel => format!("input must be [N, {d}, H, W]"),
                },
            )),
        }
    }
}

impl Module for BatchNorm {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let (view, stat) = self.view(x)?;
        // In f32 whatever the input's dtype, as cuDNN and PyTorch's autocast do: under mixed
        // precision a channel of near-constant value has inv_std ≈ 1/√eps, and the backward's
        // inv_std² would overflow f16's 65,504 at any loss scale. `to_dtype` is free (and
        // records nothing) when the input is f32.
        let dtype = x.dtype();
        let xv = x.reshape(view)?.to_dtype(DType::F32)?;
        let gamma = self.gamma.value().to_dtype(DType::F32)?;
        let beta = self.beta.value().to_dtype(DType::F32)?;
        let y = if self.train {
            // Fused kernels both ways; the backward through the batch statistics included.
            let (y, mean, var) = xv.batch_norm_train(&gamma, &beta, self.eps)?;
            // The running statistics keep their own dtype: f32 under mixed precision (the
            // parameters stay f32 masters), f16 after `to_dtype(F16)`.
            let k = self.momentum;
            let rdt = self.running_mean.dtype();
            self.running_mean = self.running_mean.scale(k)?;
            self.running_mean.axpy_(1.0 - k, &mean.to_dtype(rdt)?)?;
            self.running_var = self.running_var.scale(k)?;
            self.running_var.axpy_(1.0 - k, &var.to_dtype(rdt)?)?;
            y
        } else {
            let mean = self
                .running_mean
                .to_dtype(DType::F32)?
                .reshape(stat.clone())?;
            let var = self
                .running_var
                .to_dtype(DType::F32)?
                .reshape(stat.clone())?;
            xv.sub(&mean)?
                .mul(&var.sqrt_eps(self.eps)?.recip()?)?
                .mul(&gamma.reshape(stat.clone())?)?
                .add(&beta.reshape(stat)?)?
        };
        y.to_dtype(dtype)?.reshape(x.shape().clone())
    }

    fn set_training(&mut self, train: bool) {
        self.train = train;
    }

    fn describe(&self) -> String {
        match self.axis {
            Axis::Feature => format!("BatchNorm({})", self.gamma.numel()),
            Axis::Channel => format!("BatchNorm2d({})", self.gamma.numel()),
        }
    }
}
