//! Layers, as in the book's `common/layers.py`: `forward` caches what `backward` needs,
//! `backward` returns dx and leaves the parameter gradients on the device in [`Param::grad`].
//!
//! Layers are written once against [`Tensor`]'s checked ops, so the same code runs on the CPU
//! backend and on every GPU. Nothing here reads from the device.

mod activation;
mod batchnorm;
mod conv;
mod dropout;
mod init;
mod linear;
mod loss;
mod pool;
mod sequential;

pub use activation::{Relu, Sigmoid};
pub use batchnorm::BatchNorm;
pub use conv::Conv2d;
pub use dropout::{Dropout, DropoutMode};
pub use init::Init;
pub use linear::Linear;
pub use loss::SoftmaxWithLoss;
pub use pool::MaxPool2d;
pub use sequential::Sequential;

use crate::error::Result;
use crate::tensor::Tensor;

/// A trainable tensor with its name (`conv1.weight`) and last gradient.
#[derive(Debug)]
pub struct Param {
    /// Full name, `<layer>.<weight|bias|gamma|beta>`.
    pub name: String,
    /// The value.
    pub value: Tensor,
    /// The gradient from the last backward, if any.
    pub grad: Option<Tensor>,
    /// Whether L2 weight decay applies (weights yes, biases no — as the book).
    pub decay: bool,
}

impl Param {
    pub(crate) fn new(name: &str, value: Tensor, decay: bool) -> Param {
        Param {
            name: name.to_string(),
            value,
            grad: None,
            decay,
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.value.numel()
    }
}

/// What a forward pass needs to know besides its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardCtx {
    /// Training mode (dropout active, batch statistics) or evaluation.
    pub train: bool,
    /// Counter of training forwards, mixed into dropout seeds so every step draws a new mask
    /// while a given (seed, step) always draws the same one on every device.
    pub step: u64,
}

/// One layer.
pub trait Layer: Send {
    /// The layer type, e.g. "Conv2d".
    fn kind(&self) -> &'static str;
    /// Forward; caches what backward needs when `ctx.train`.
    fn forward(&mut self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor>;
    /// Backward of the last forward: returns dx, stores parameter gradients.
    fn backward(&mut self, dout: &Tensor) -> Result<Tensor>;
    /// Trainable parameters.
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }
    /// Trainable parameters, mutably (optimizers).
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }
    /// Non-trainable state saved in checkpoints (BatchNorm running statistics).
    fn buffers_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        Vec::new()
    }
    /// Gives the layer its name; parameters become `<name>.weight` etc.
    fn set_name(&mut self, name: &str);
    /// A one-line description (`Conv2d(1→16, 3x3, stride 1, pad 1)`).
    fn describe(&self) -> String;
}

/// Error for a backward without a training forward.
pub(crate) fn no_forward(layer: &'static str) -> crate::Error {
    crate::Error::invalid(
        "backward",
        format!("{layer}: backward called before a training-mode forward"),
    )
}
