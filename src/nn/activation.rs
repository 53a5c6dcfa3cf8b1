//! ReLU and Sigmoid (the book's `Relu`, `Sigmoid`) as modules; their backward rules live
//! with the ops ([`Tensor::relu`], [`Tensor::sigmoid`]).

use super::Module;
use crate::error::Result;
use crate::tensor::Tensor;

/// `max(x, 0)`.
#[derive(Clone, Copy, Debug, Default)]
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
#[derive(Clone, Copy, Debug, Default)]
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
