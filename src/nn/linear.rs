//! Affine (fully connected) layer: `out = x · W + b`, W `[in, out]` as in the book.
//! Inputs of any rank are flattened to `[N, in]` (the book's `x.reshape(x.shape[0], -1)`).
//! One [`Tensor::linear`] op (a GPU adds the bias, and a following ReLU that
//! [`Sequential`](super::Sequential) fuses in, in the GEMM's epilogue); its backward is
//! dW = xᵀ·dout and dx = dout·Wᵀ through matmul's transpose flags, db = Σ dout.

use super::{Init, Module, Param, Part, flat_rows, param};
use crate::DType;
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// `Affine` in the book.
pub struct Linear {
    weight: Param,
    bias: Param,
}

impl Linear {
    /// `in_features → out_features`, weights drawn with `init` and `seed`, bias 0.
    pub fn new(
        in_features: usize,
        out_features: usize,
        init: Init,
        seed: u64,
        device: &Device,
    ) -> Result<Linear> {
        Ok(Linear {
            weight: Param::new(
                init.tensor(&[in_features, out_features], in_features, seed, device)?,
                true,
            )?,
            bias: Param::new(Tensor::zeros([out_features], DType::F32, device)?, false)?,
        })
    }

    /// The weight `[in, out]`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The bias `[out]`.
    pub fn bias(&self) -> &Param {
        &self.bias
    }

    /// `x · W + b` (then ReLU when `relu`) as one [`Tensor::linear`] op.
    fn affine(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let w = self.weight.value();
        let n = flat_rows("Linear", x, w.dims()[0], w)?;
        let dt = x.dtype();
        x.reshape([n, w.dims()[0]])?.linear(
            &w.to_dtype(dt)?,
            &self.bias.value().to_dtype(dt)?,
            relu,
        )
    }
}

impl Module for Linear {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.affine(x, false)
    }

    fn forward_relu(&mut self, x: &Tensor) -> Option<Result<Tensor>> {
        Some(self.affine(x, true))
    }

    fn parts(&mut self) -> Vec<(String, Part<'_>)> {
        vec![
            param("weight", &mut self.weight),
            param("bias", &mut self.bias),
        ]
    }

    fn describe(&self) -> String {
        let d = self.weight.value().dims();
        format!("Linear({}→{})", d[0], d[1])
    }
}
