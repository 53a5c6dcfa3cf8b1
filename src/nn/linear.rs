//! Affine (fully connected) layer: `out = x · W + b`, W `[in, out]` as in the book.
//! Inputs of any rank are flattened to `[N, in]` (the book's `x.reshape(x.shape[0], -1)`).
//! One [`Tensor::linear`] op (a GPU adds the bias, and a following ReLU that
//! [`Sequential`](super::Sequential) fuses in, in the GEMM's epilogue); its backward is
//! dW = xᵀ·dout and dx = dout·Wᵀ through matmul's transpose flags, db = Σ dout.

use super::{Init, Module, Param, flat_rows};
use crate::DType;
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// `Affine` in the book; PyTorch's `nn.Linear` (whose weight is stored transposed, `[out, in]`).
#[derive(Module)]
pub struct Linear {
    weight: Param,
    bias: Param,
}

impl Linear {
    /// `in_features → out_features` with PyTorch's default initialisation: weight and bias
    /// uniform in `±1/√in_features` (`kaiming_uniform_(a=√5)` for the weight), drawn from the
    /// global generator ([`crate::manual_seed`]), so two layers built one after another differ.
    pub fn new(in_features: usize, out_features: usize, device: &Device) -> Result<Linear> {
        super::check_sizes(
            "Linear",
            &[("in_features", in_features), ("out_features", out_features)],
        )?;
        let mut seeds = crate::rng::SplitMix64::new(crate::rng::next_seed());
        let bound = super::init::torch_bias_bound(in_features);
        Ok(Linear {
            weight: Param::new(
                Init::TORCH_DEFAULT.tensor(
                    &[in_features, out_features],
                    in_features,
                    seeds.next_u64(),
                    device,
                )?,
                true,
            )?,
            bias: Param::new(
                Tensor::rand_uniform([out_features], -bound, bound, seeds.next_u64(), device)?,
                false,
            )?,
        })
    }

    /// `in_features → out_features`, weights drawn with `init` and `seed`, bias 0 (the book's
    /// layers, and every network in [`crate::models`]).
    pub fn with_init(
        in_features: usize,
        out_features: usize,
        init: Init,
        seed: u64,
        device: &Device,
    ) -> Result<Linear> {
        super::check_sizes(
            "Linear",
            &[("in_features", in_features), ("out_features", out_features)],
        )?;
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

    /// `relu(x · W + b)` as one op: [`Sequential`](super::Sequential) runs a `Linear`
    /// followed by a `Relu` through it.
    pub(crate) fn forward_relu(&mut self, x: &Tensor) -> Result<Tensor> {
        self.affine(x, true)
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

    fn describe(&self) -> String {
        let d = self.weight.value().dims();
        format!("Linear({}→{})", d[0], d[1])
    }
}
