//! Activations as modules (the book's `Relu`, `Sigmoid`, and d2l's tanh and leaky ReLU);
//! their backward rules live with the ops ([`Tensor::relu`], [`Tensor::sigmoid`] …).

use super::Module;
use crate::error::Result;
use crate::tensor::Tensor;

/// `max(x, 0)`.
#[derive(Clone, Copy, Debug, Default, Module)]
pub struct Relu;

impl Relu {
    /// A ReLU.
    pub fn new() -> Relu {
        Relu
    }
}

impl Module for Relu {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        x.relu()
    }

    fn describe(&self) -> String {
        "Relu".into()
    }
}

/// `1 / (1 + e^-x)`.
#[derive(Clone, Copy, Debug, Default, Module)]
pub struct Sigmoid;

impl Sigmoid {
    /// A sigmoid.
    pub fn new() -> Sigmoid {
        Sigmoid
    }
}

impl Module for Sigmoid {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        x.sigmoid()
    }

    fn describe(&self) -> String {
        "Sigmoid".into()
    }
}

/// `tanh(x)`.
#[derive(Clone, Copy, Debug, Default, Module)]
pub struct Tanh;

impl Module for Tanh {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        x.tanh()
    }

    fn describe(&self) -> String {
        "Tanh".into()
    }
}

/// `x` where positive, else `negative_slope · x`.
#[derive(Clone, Copy, Debug, Module)]
pub struct LeakyRelu {
    /// The slope for negative inputs (PyTorch's default: 0.01; DCGAN's: 0.2).
    pub negative_slope: f32,
}

impl Module for LeakyRelu {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        x.leaky_relu(self.negative_slope)
    }

    fn describe(&self) -> String {
        format!("LeakyRelu({})", self.negative_slope)
    }
}
