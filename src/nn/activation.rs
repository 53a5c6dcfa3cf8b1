//! ReLU and Sigmoid (the book's `Relu`, `Sigmoid`): each caches its output.

use super::{ForwardCtx, Layer, no_forward};
use crate::error::Result;
use crate::tensor::Tensor;

/// `max(x, 0)`; backward passes dout where the output was positive.
#[derive(Default)]
pub struct Relu {
    out: Option<Tensor>,
}

impl Relu {
    /// A ReLU.
    pub fn new() -> Relu {
        Relu::default()
    }
}

impl Layer for Relu {
    fn kind(&self) -> &'static str {
        "Relu"
    }

    fn forward(&mut self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let y = x.relu()?;
        self.out = if ctx.train { Some(y.clone()) } else { None };
        Ok(y)
    }

    fn backward(&mut self, dout: &Tensor) -> Result<Tensor> {
        // y > 0 exactly where x > 0, so the output serves as the mask.
        dout.relu_backward(self.out.as_ref().ok_or_else(|| no_forward("Relu"))?)
    }

    fn set_name(&mut self, _: &str) {}

    fn describe(&self) -> String {
        "Relu".into()
    }
}

/// `1 / (1 + e^-x)`; backward `dout · y (1 - y)`.
#[derive(Default)]
pub struct Sigmoid {
    out: Option<Tensor>,
}

impl Sigmoid {
    /// A sigmoid.
    pub fn new() -> Sigmoid {
        Sigmoid::default()
    }
}

impl Layer for Sigmoid {
    fn kind(&self) -> &'static str {
        "Sigmoid"
    }

    fn forward(&mut self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let y = x.sigmoid()?;
        self.out = if ctx.train { Some(y.clone()) } else { None };
        Ok(y)
    }

    fn backward(&mut self, dout: &Tensor) -> Result<Tensor> {
        dout.sigmoid_backward(self.out.as_ref().ok_or_else(|| no_forward("Sigmoid"))?)
    }

    fn set_name(&mut self, _: &str) {}

    fn describe(&self) -> String {
        "Sigmoid".into()
    }
}
