//! Weight initialisation (the book's ch.6): a fixed std, Xavier or He, drawn from a seed; and
//! PyTorch's `xavier_uniform_`, which d2l uses for every network it trains.

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
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))` (Glorot & Bengio; PyTorch's
    /// `xavier_uniform_`, d2l's `init_cnn`).
    XavierUniform,
    /// Uniform in `±gain·√(3 / fan_in)` with `gain = √(2 / (1 + a²))` for a leaky ReLU of
    /// negative slope `a` (PyTorch's `kaiming_uniform_(a=…)`; `a = 0` is He's uniform form).
    /// [`Init::TORCH_DEFAULT`] (`a = √5`) gives `±1/√fan_in`, PyTorch's default for
    /// `nn.Linear` and `nn.Conv2d` weights.
    KaimingUniform(f32),
}

impl Init {
    /// PyTorch's default for `nn.Linear` and `nn.Conv2d` weights: `kaiming_uniform_(a=√5)`,
    /// uniform in `±1/√fan_in` (the layers' `new` constructors use it, with a bias uniform in
    /// the same range).
    pub const TORCH_DEFAULT: Init = Init::KaimingUniform(2.236_068);

    /// The standard deviation for a layer with `fan_in` inputs per output (for
    /// `XavierUniform` that of its uniform distribution, with `fan_out = fan_in`).
    pub fn std(self, fan_in: usize) -> f32 {
        match self {
            Init::Std(s) => s,
            Init::Xavier => (1.0 / fan_in as f64).sqrt() as f32,
            Init::He => (2.0 / fan_in as f64).sqrt() as f32,
            Init::XavierUniform => (1.0 / fan_in as f64).sqrt() as f32,
            Init::KaimingUniform(a) => kaiming_gain(a) / (fan_in.max(1) as f64).sqrt() as f32,
        }
    }

    /// A weight tensor of `shape` drawn with `seed`: `[in, out]` for Linear, `[out, in, k, k]`
    /// for Conv2d (the fan-out is read from the shape).
    pub fn tensor(
        self,
        shape: &[usize],
        fan_in: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        match self {
            Init::XavierUniform => {
                let fan_out = match shape {
                    [_, out] => *out,
                    [out, _, rest @ ..] => *out * rest.iter().product::<usize>(),
                    _ => fan_in,
                };
                let a = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt() as f32;
                Tensor::rand_uniform(shape, -a, a, seed, device)
            }
            Init::KaimingUniform(a) => {
                let bound = kaiming_gain(a) * (3.0 / fan_in.max(1) as f64).sqrt() as f32;
                Tensor::rand_uniform(shape, -bound, bound, seed, device)
            }
            _ => Tensor::randn(shape, 0.0, self.std(fan_in), seed, device),
        }
    }
}

/// `√(2 / (1 + a²))`: the gain of a leaky ReLU with negative slope `a` (PyTorch's
/// `calculate_gain("leaky_relu", a)`).
fn kaiming_gain(a: f32) -> f32 {
    let a = a as f64;
    (2.0 / (1.0 + a * a)).sqrt() as f32
}

/// `1/√fan_in`: PyTorch's default range for `nn.Linear` and `nn.Conv2d` biases.
pub(crate) fn torch_bias_bound(fan_in: usize) -> f32 {
    (1.0 / fan_in.max(1) as f64).sqrt() as f32
}
