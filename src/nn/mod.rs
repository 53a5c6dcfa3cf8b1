//! Modules: forward-only building blocks over tensors, as PyTorch's `torch.nn`.
//!
//! A module's `forward` is ordinary tensor code; its backward comes from [`crate::autograd`]
//! (each op recorded in the forward knows its own backward rule), so a module never writes
//! one. A module names what it owns through [`Module::parts`] — parameters ([`Param`]: leaves
//! that require gradients), buffers (running statistics), counters (dropout's step) and child
//! modules — and [`ModuleExt`] walks that tree: dotted names as in a PyTorch state dict
//! (`layer1.0.conv1.weight`), train/eval, `zero_grad`, parameter counts, dtype changes.
//!
//! A residual block is a plain struct:
//!
//! ```
//! use wgnn::nn::{BatchNorm, Conv2d, Init, Module, Part, child};
//! use wgnn::{Device, Result, Tensor};
//!
//! struct Residual { conv: Conv2d, bn: BatchNorm }
//!
//! impl Module for Residual {
//!     fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
//!         let y = self.bn.forward(&self.conv.forward(x)?)?;
//!         y.add(x)?.relu()
//!     }
//!     fn parts(&mut self) -> Vec<(String, Part<'_>)> {
//!         vec![child("conv", &mut self.conv), child("bn", &mut self.bn)]
//!     }
//! }
//! ```
//!
//! Layers cast their parameters to the dtype of their input (a recorded cast), so the same
//! model runs f32, or f16 with f32 master weights under mixed precision, without a copy of it.

mod activation;
mod batchnorm;
mod conv;
mod dropout;
mod embedding;
mod init;
mod linear;
pub mod loss;
mod pool;
mod sequential;

pub use activation::{LeakyRelu, Relu, Sigmoid, Tanh};
pub use batchnorm::BatchNorm;
pub use conv::Conv2d;
pub use dropout::{Dropout, DropoutMode};
pub use embedding::Embedding;
pub use init::Init;
pub use linear::Linear;
pub use loss::{
    Reduction, bce_with_logits, cross_entropy, cross_entropy_with, mse_loss, nll_loss,
    nll_loss_with,
};
pub use pool::{AvgPool2d, GlobalAvgPool2d, MaxPool2d};
pub use sequential::Sequential;

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A trainable tensor: a leaf of the autograd graph whose gradient backward accumulates.
#[derive(Debug)]
pub struct Param {
    value: Tensor,
    decay: bool,
}

impl Param {
    /// `value` as a trainable parameter; `decay` says whether L2 weight decay applies to it
    /// (weights yes, biases and BatchNorm's scale and shift no — as the book).
    pub fn new(value: Tensor, decay: bool) -> Result<Param> {
        Ok(Param {
            value: value.requiring_grad()?,
            decay,
        })
    }

    /// The current value (a leaf that requires a gradient).
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// Replaces the value (a checkpoint load, a dtype change); the gradient is cleared.
    pub fn set_value(&mut self, value: Tensor) -> Result<()> {
        self.value = value.requiring_grad()?;
        Ok(())
    }

    /// The value, for in-place updates (optimizers).
    pub(crate) fn value_mut(&mut self) -> &mut Tensor {
        &mut self.value
    }

    /// The gradient accumulated since the last [`Param::zero_grad`].
    pub fn grad(&self) -> Option<Tensor> {
        self.value.grad()
    }

    /// Sets (or with `None` clears) the gradient, e.g. a hand-computed one.
    pub fn set_grad(&self, grad: Option<Tensor>) -> Result<()> {
        self.value.set_grad(grad)
    }

    /// Clears the gradient.
    pub fn zero_grad(&self) {
        self.value.zero_grad();
    }

    /// Whether L2 weight decay applies.
    pub fn decay(&self) -> bool {
        self.decay
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.value.numel()
    }
}

/// One thing a module owns, as listed by [`Module::parts`].
pub enum Part<'a> {
    /// A trainable parameter.
    Param(&'a mut Param),
    /// Non-trainable state saved in checkpoints (BatchNorm's running statistics).
    Buffer(&'a mut Tensor),
    /// A host-side counter saved in checkpoints (dropout's step, which seeds its masks).
    Counter(&'a mut u64),
    /// A child module; its parts are named `<name>.<part>`.
    Module(&'a mut dyn Module),
}

/// `(name, Part::Param(p))`.
pub fn param<'a>(name: &str, p: &'a mut Param) -> (String, Part<'a>) {
    (name.to_string(), Part::Param(p))
}

/// `(name, Part::Buffer(t))`.
pub fn buffer<'a>(name: &str, t: &'a mut Tensor) -> (String, Part<'a>) {
    (name.to_string(), Part::Buffer(t))
}

/// `(name, Part::Module(m))`.
pub fn child<'a>(name: &str, m: &'a mut dyn Module) -> (String, Part<'a>) {
    (name.to_string(), Part::Module(m))
}

/// A network or a piece of one: forward only; the backward comes from autograd.
pub trait Module: Send {
    /// The output for `x`. In training mode this may update state (BatchNorm's running
    /// statistics, dropout's step).
    fn forward(&mut self, x: &Tensor) -> Result<Tensor>;

    /// What this module owns, by name: parameters, buffers, counters and child modules (each
    /// listed once; the walk in [`ModuleExt`] recurses into children).
    fn parts(&mut self) -> Vec<(String, Part<'_>)> {
        Vec::new()
    }

    /// Switches this module's own behaviour between training (`true`) and evaluation; the
    /// walk in [`ModuleExt::set_train`] calls it on every module of a tree.
    fn set_training(&mut self, _train: bool) {}

    /// A one-line description (`Conv2d(1→16, 3x3, stride 1, pad 1)`).
    fn describe(&self) -> String {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full).to_string()
    }

    /// Whether this module is a plain ReLU, which [`Sequential`] fuses into the module before
    /// it when that one has [`Module::forward_relu`].
    fn is_relu(&self) -> bool {
        false
    }

    /// `forward(x)` followed by ReLU as one fused op, for modules that have one (`Conv2d`,
    /// `Linear`); `None` (the default) when not.
    fn forward_relu(&mut self, _x: &Tensor) -> Option<Result<Tensor>> {
        None
    }
}

impl Module for Box<dyn Module> {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        (**self).forward(x)
    }
    fn parts(&mut self) -> Vec<(String, Part<'_>)> {
        (**self).parts()
    }
    fn set_training(&mut self, train: bool) {
        (**self).set_training(train)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn is_relu(&self) -> bool {
        (**self).is_relu()
    }
    fn forward_relu(&mut self, x: &Tensor) -> Option<Result<Tensor>> {
        (**self).forward_relu(x)
    }
}

/// Every part below `m`, children flattened, with dotted names.
fn flatten<'a>(m: &'a mut dyn Module, prefix: &str, out: &mut Vec<(String, Part<'a>)>) {
    for (name, part) in m.parts() {
        let full = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        match part {
            Part::Module(c) => flatten(c, &full, out),
            other => out.push((full, other)),
        }
    }
}

/// The parts below `m` that `pick` keeps, with their dotted names.
fn named<'a, T>(m: &'a mut dyn Module, pick: impl Fn(Part<'a>) -> Option<T>) -> Vec<(String, T)> {
    let mut parts = Vec::new();
    flatten(m, "", &mut parts);
    parts
        .into_iter()
        .filter_map(|(n, p)| pick(p).map(|t| (n, t)))
        .collect()
}

fn set_train_rec(m: &mut dyn Module, train: bool) {
    m.set_training(train);
    for (_, part) in m.parts() {
        if let Part::Module(c) = part {
            set_train_rec(c, train);
        }
    }
}

/// What every module can do through its parts (implemented for every [`Module`]).
pub trait ModuleExt {
    /// This module as a trait object.
    fn as_module(&mut self) -> &mut dyn Module;

    /// Every parameter with its dotted name, in declaration order.
    fn named_parameters(&mut self) -> Vec<(String, &mut Param)> {
        named(self.as_module(), |p| match p {
            Part::Param(p) => Some(p),
            _ => None,
        })
    }

    /// Every buffer with its dotted name.
    fn named_buffers(&mut self) -> Vec<(String, &mut Tensor)> {
        named(self.as_module(), |p| match p {
            Part::Buffer(t) => Some(t),
            _ => None,
        })
    }

    /// Every counter with its dotted name.
    fn named_counters(&mut self) -> Vec<(String, &mut u64)> {
        named(self.as_module(), |p| match p {
            Part::Counter(c) => Some(c),
            _ => None,
        })
    }

    /// Training (`true`: dropout on, batch statistics) or evaluation mode, for the whole tree.
    fn set_train(&mut self, train: bool) {
        set_train_rec(self.as_module(), train);
    }

    /// Training mode for the whole tree.
    fn train(&mut self) {
        self.set_train(true);
    }

    /// Evaluation mode for the whole tree.
    fn eval(&mut self) {
        self.set_train(false);
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&mut self) {
        for (_, p) in self.named_parameters() {
            p.zero_grad();
        }
    }

    /// Number of trainable scalars.
    fn num_params(&mut self) -> usize {
        self.named_parameters().iter().map(|(_, p)| p.numel()).sum()
    }

    /// The dtype of the parameters (f32 unless converted with [`ModuleExt::to_dtype`]).
    fn dtype(&mut self) -> DType {
        self.named_parameters()
            .first()
            .map(|(_, p)| p.value().dtype())
            .unwrap_or(DType::F32)
    }

    /// The device of the parameters (the CPU for a module without any).
    fn device(&mut self) -> Device {
        self.named_parameters()
            .first()
            .map(|(_, p)| p.value().device())
            .unwrap_or(Device::Cpu)
    }

    /// Converts every parameter and buffer to `dtype` on its device (f32 ↔ f16), e.g. for f16
    /// inference of a model trained in f32. Gradients are dropped.
    fn to_dtype(&mut self, dtype: DType) -> Result<()> {
        if !dtype.is_float() {
            return Err(Error::invalid(
                "to_dtype",
                format!("parameters must be float, not {dtype}"),
            ));
        }
        for (_, p) in self.named_parameters() {
            let v = p.value().detach().to_dtype(dtype)?;
            p.set_value(v)?;
        }
        for (_, t) in self.named_buffers() {
            *t = t.to_dtype(dtype)?;
        }
        Ok(())
    }

    /// One line per parameter (name, shape) and the total.
    fn summary(&mut self) -> String {
        let mut s = format!("  {}\n", self.as_module().describe());
        let mut total = 0;
        let mut device = None;
        for (name, p) in self.named_parameters() {
            total += p.numel();
            device.get_or_insert_with(|| p.value().device());
            s.push_str(&format!(
                "    {name:<16} {:<16} {:>8}\n",
                p.value().shape().to_string(),
                p.numel()
            ));
        }
        s.push_str(&format!(
            "  total {total} parameters, on {}\n",
            device.unwrap_or(Device::Cpu)
        ));
        s
    }
}

impl<T: Module> ModuleExt for T {
    fn as_module(&mut self) -> &mut dyn Module {
        self
    }
}

impl ModuleExt for dyn Module + '_ {
    fn as_module(&mut self) -> &mut dyn Module {
        self
    }
}

/// Checks that `x` flattens to `[N, features]` for `op`, returning N.
pub(crate) fn flat_rows(
    op: &'static str,
    x: &Tensor,
    features: usize,
    like: &Tensor,
) -> Result<usize> {
    let n = x.dims().first().copied().unwrap_or(0);
    if n == 0 || x.numel() != n * features {
        return Err(Error::shapes(
            op,
            x.shape(),
            like.shape(),
            format!("input must flatten to [N, {features}]"),
        ));
    }
    Ok(n)
}
