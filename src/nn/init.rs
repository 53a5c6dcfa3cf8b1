//! Weight initialisation (the book's ch.6): a fixed std, Xavier or He, drawn from a seed.

use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// How to draw initial weights (biases start at 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Normal with this standard deviation (the book's `weight_init_std = 0.01`).
    Std(f32),
    /// Normal with std `sqrt(1 / fan_in)` (for sigmoid/tanh).
    Xavier,
    /// Normal with std `sqrt(2 / fan_in)` (for ReLU).
    He,
}

impl Init {
    /// The standard deviation for a layer with `fan_in` inputs per output.
    pub fn std(self, fan_in: usize) -> f32 {
        match self {
            Init::Std(s) => s,
            Init::Xavier => (1.0 / fan_in as f64).sqrt() as f32,
            Init::He => (2.0 / fan_in as f64).sqrt() as f32,
        }
    }

    /// A weight tensor of `shape` drawn with `seed`.
    pub fn tensor(
        self,
        shape: &[usize],
        fan_in: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        Tensor::randn(shape, 0.0, self.std(fan_in), seed, device)
    }
}
