//! Modules: forward-only building blocks over tensors, as PyTorch's `torch.nn`.
//!
//! A module's `forward` is ordinary tensor code; its backward comes from [`crate::autograd`]
//! (each op recorded in the forward knows its own backward rule), so a module never writes
//! one. A module is a struct whose fields are what it owns — parameters ([`Param`]: leaves
//! that require gradients), buffers (running statistics), counters (dropout's step) and child
//! modules — and `#[derive(Module)]` lists them, named by field, so none can be forgotten.
//! [`ModuleExt`] walks that tree: dotted names as in a PyTorch state dict
//! (`layer1.0.conv1.weight`), `state_dict`/`load_state_dict`, train/eval, `zero_grad`,
//! parameter counts, dtype changes.
//!
//! A residual block is a plain struct:
//!
//! ```
//! use wgnn::nn::{BatchNorm, Conv2d, Module, ModuleExt};
//! use wgnn::{Device, Result, Tensor};
//!
//! #[derive(Module)]
//! struct Residual {
//!     conv: Conv2d,
//!     bn: BatchNorm,
//!     shortcut: Option<Conv2d>, // listed when present: `shortcut.weight`
//!     channels: usize,          // configuration: a constant, not listed
//! }
//!
//! impl Module for Residual {
//!     fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
//!         let y = self.bn.forward(&self.conv.forward(x)?)?;
//!         let s = match &mut self.shortcut {
//!             Some(c) => c.forward(x)?,
//!             None => x.clone(),
//!         };
//!         y.add(&s)?.relu()
//!     }
//! }
//!
//! # fn main() -> Result<()> {
//! let dev = Device::cpu();
//! let mut block = Residual {
//!     conv: Conv2d::new(4, 4, 3, 1, 1, &dev)?,
//!     bn: BatchNorm::channels(4, &dev)?,
//!     shortcut: None,
//!     channels: 4,
//! };
//! let names: Vec<String> = block.state_dict().keys().map(String::from).collect();
//! assert_eq!(names, ["conv.weight", "conv.bias", "bn.gamma", "bn.beta",
//!                    "bn.running_mean", "bn.running_var"]);
//! # Ok(()) }
//! ```
//!
//! Field attributes, `#[module(...)]`:
//!
//! | attribute | on | meaning |
//! |---|---|---|
//! | (none) | a module, [`Param`], `Option`/`Vec`/array/`BTreeMap<String, _>` of them, `Box<dyn Module>`, a config value | listed by its [`ModuleField`] impl |
//! | `skip` | anything | not listed (a cache, a config type without a `ModuleField` impl) |
//! | `buffer` | a `Tensor` | saved in the state dict, not trained |
//! | `counter` | a `u64` | saved in training checkpoints ([`Part::Counter`]) |
//! | `rename = "name"` | a listed field | listed under another name |
//! | `flatten` | a child, `Vec`, `Option` | its parts listed at this level (`0.weight`, not `blocks.0.weight`) |
//!
//! Names must be unique within a module (a `flatten` or `rename` that makes two equal is a
//! mistake the state dict cannot represent: its later entry replaces the earlier).
//!
//! A field of a type that is none of these (an unmarked `Tensor`, a `HashMap`) does not
//! compile, with a note saying which attribute to add.
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
mod rnn;
mod sequential;
mod state;

pub use crate::ops::RnnCell;
pub use activation::{LeakyRelu, Relu, Sigmoid, Tanh};
pub use batchnorm::BatchNorm;
pub use conv::{Conv2d, ConvTranspose2d};
pub use dropout::{Dropout, DropoutMode};
pub use embedding::Embedding;
pub use init::Init;
pub use linear::Linear;
pub use loss::{
    Reduction, bce_with_logits, cross_entropy, cross_entropy_with, mse_loss, nll_loss,
    nll_loss_with, smooth_l1_loss,
};
pub use pool::{AvgPool2d, GlobalAvgPool2d, MaxPool2d};
pub use rnn::{Gru, Lstm, Recurrent, Rnn, RnnOptions, RnnState};
pub use sequential::Sequential;
pub use state::{LoadReport, StateDict};

pub use wgnn_derive::Module;

use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::any::Any;

/// Refuses a layer size of 0 (`Linear::new(0, 10)`), naming the layer and the argument.
pub(crate) fn check_sizes(layer: &'static str, sizes: &[(&str, usize)]) -> Result<()> {
    match sizes.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(Error::invalid(layer, format!("{name} must be ≥ 1, got 0"))),
        None => Ok(()),
    }
}

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

/// One thing a module owns, as listed by [`Parts::parts`].
pub enum Part<'a> {
    /// A trainable parameter.
    Param(&'a mut Param),
    /// Non-trainable state saved in the state dict (BatchNorm's running statistics).
    Buffer(&'a mut Tensor),
    /// A host-side counter saved in training checkpoints (dropout's step, which seeds its
    /// masks).
    Counter(&'a mut u64),
    /// A child module; its parts are named `<name>.<part>` (an empty name lists them at this
    /// level, see `#[module(flatten)]`).
    Module(&'a mut dyn Module),
}

/// `a.b`, or the one that is not empty (flattened parts have no name of their own).
pub(crate) fn join(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}.{name}"),
    }
}

/// What a module owns, by name: parameters, buffers, counters and child modules, each
/// listed once (the walk in [`ModuleExt`] recurses into children).
///
/// `#[derive(Module)]` implements it from the struct's fields; write it by hand only for a
/// container whose names are known at run time (or implement [`ModuleField`] for that
/// container's type and derive the module that holds it, as [`Sequential`] does).
///
/// By hand, a module whose experts are named by the data:
///
/// ```
/// use wgnn::nn::{Linear, Module, ModuleExt, Part, Parts};
/// use wgnn::{Device, Result, Tensor};
///
/// struct Experts { by_name: Vec<(String, Linear)> }
///
/// impl Parts for Experts {
///     fn parts(&mut self) -> Vec<(String, Part<'_>)> {
///         self.by_name.iter_mut().map(|(n, m)| (n.clone(), Part::Module(m))).collect()
///     }
/// }
///
/// impl Module for Experts {
///     fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
///         self.by_name[0].1.forward(x)
///     }
/// }
///
/// # fn main() -> Result<()> {
/// let dev = Device::cpu();
/// let mut m = Experts { by_name: vec![("cats".into(), Linear::new(2, 2, &dev)?)] };
/// assert!(m.get_parameter("cats.weight").is_ok());
/// # Ok(()) }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not list its parameters and children",
    label = "add `#[derive(Module)]` to `{Self}`",
    note = "`#[derive(Module)]` (from `wgnn::nn::Module`) lists a module's parameters, buffers and \
            child modules from its fields"
)]
pub trait Parts {
    /// This module's own parts, in declaration order; children as [`Part::Module`].
    fn parts(&mut self) -> Vec<(String, Part<'_>)>;
}

/// A network or a piece of one, as PyTorch's `nn.Module`: forward only; the backward comes
/// from autograd.
///
/// Derive the part listing and write the forward:
///
/// ```
/// use wgnn::nn::{Linear, Module, ModuleExt};
/// use wgnn::{Device, Result, Tensor};
///
/// #[derive(Module)]
/// struct Mlp { fc1: Linear, fc2: Linear, hidden: usize }
///
/// impl Module for Mlp {
///     fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
///         self.fc2.forward(&self.fc1.forward(x)?.relu()?)
///     }
/// }
///
/// # fn main() -> Result<()> {
/// let dev = Device::cpu();
/// let mut mlp = Mlp { fc1: Linear::new(4, 8, &dev)?, fc2: Linear::new(8, 2, &dev)?, hidden: 8 };
/// let names: Vec<String> = mlp.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
/// # Ok(()) }
/// ```
///
/// The `Any` bound makes every module `'static` and lets code that holds a `dyn Module` ask
/// what it is (`(m as &dyn Any).downcast_ref::<Linear>()`).
pub trait Module: Parts + Any + Send {
    /// The output for `x`. In training mode this may update state (BatchNorm's running
    /// statistics, dropout's step).
    fn forward(&mut self, x: &Tensor) -> Result<Tensor>;

    /// Switches this module's own behaviour between training (`true`) and evaluation; the
    /// walk in [`ModuleExt::set_train`] calls it on every module of a tree.
    fn set_training(&mut self, _train: bool) {}

    /// A one-line description (`Conv2d(1→16, 3x3, stride 1, pad 1)`).
    fn describe(&self) -> String {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full).to_string()
    }
}

impl<M: Parts + ?Sized> Parts for Box<M> {
    fn parts(&mut self) -> Vec<(String, Part<'_>)> {
        (**self).parts()
    }
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        (**self).forward(x)
    }
    fn set_training(&mut self, train: bool) {
        (**self).set_training(train)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// A type that can be a field of a `#[derive(Module)]` struct: it lists its parts under the
/// field's name.
///
/// - a child module (any [`Module`], `Box<dyn Module>` included) is listed as one child;
/// - a [`Param`] is a parameter;
/// - `Option<T>` lists its value when there is one, under the same name;
/// - `Vec<T>` and `[T; N]` list element `i` as `name.i` (PyTorch's `layers.0.weight`);
/// - `BTreeMap<String, T>` lists the value of key `k` as `name.k`, in key order (PyTorch's
///   `nn.ModuleDict`; keys must be free of dots);
/// - plain configuration values (integers, floats, `bool`, `char`, `String`, `&'static str`,
///   `()`, `PhantomData`, `Duration`, and wgnn's [`Init`], [`DropoutMode`], [`DType`],
///   [`Device`], [`Shape`](crate::Shape)) are constants and list nothing.
///
/// A `Tensor` is deliberately not a `ModuleField`: mark it `#[module(buffer)]` to save it
/// in the state dict, or `#[module(skip)]`. A configuration type of your own becomes a
/// constant with an empty impl (the default lists nothing):
///
/// ```
/// #[derive(Clone, Copy)]
/// enum Pooling { Max, Mean }
/// impl wgnn::nn::ModuleField for Pooling {}
/// ```
///
/// A field the derive cannot place is a compile error, not a part silently left out of the
/// optimizer and the state dict:
///
/// ```compile_fail,E0277
/// use wgnn::nn::{Linear, Module};
/// use wgnn::{Result, Tensor};
///
/// #[derive(Module)]
/// struct Cached { fc: Linear, last: Tensor } // `last` needs #[module(buffer)] or (skip)
///
/// impl Module for Cached {
///     fn forward(&mut self, x: &Tensor) -> Result<Tensor> { self.fc.forward(x) }
/// }
/// ```
///
/// and so is a module that lists nothing because the derive was forgotten:
///
/// ```compile_fail,E0277
/// use wgnn::nn::{Linear, Module};
/// use wgnn::{Result, Tensor};
///
/// struct Forgot { fc: Linear }
///
/// impl Module for Forgot {
///     fn forward(&mut self, x: &Tensor) -> Result<Tensor> { self.fc.forward(x) }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a `#[derive(Module)]` struct",
    label = "neither a module, a parameter nor a known constant",
    note = "mark a `Tensor` field `#[module(buffer)]` (saved in the state dict) or any field \
            `#[module(skip)]` (not listed); a config type of yours becomes a constant with \
            `impl wgnn::nn::ModuleField for MyType {{}}`"
)]
pub trait ModuleField {
    /// Appends this field's parts, named `name` (or below it), to `parts`. The default lists
    /// nothing: a constant.
    fn list_parts<'a>(&'a mut self, name: &str, parts: &mut Vec<(String, Part<'a>)>) {
        let _ = (name, parts);
    }
}

impl<M: Module> ModuleField for M {
    fn list_parts<'a>(&'a mut self, name: &str, parts: &mut Vec<(String, Part<'a>)>) {
        parts.push((name.to_string(), Part::Module(self)));
    }
}

impl ModuleField for Param {
    fn list_parts<'a>(&'a mut self, name: &str, parts: &mut Vec<(String, Part<'a>)>) {
        parts.push((name.to_string(), Part::Param(self)));
    }
}

impl<T: ModuleField> ModuleField for Option<T> {
    fn list_parts<'a>(&'a mut self, name: &str, parts: &mut Vec<(String, Part<'a>)>) {
        if let Some(v) = self {
            v.list_parts(name, parts);
        }
    }
}

impl<T: ModuleField> ModuleField for Vec<T> {
    fn list_parts<'a>(&'a mut self, name: &str, parts: &mut Vec<(String, Part<'a>)>) {
        for (i, v) in self.iter_mut().enumerate() {
            v.list_parts(&join(name, &i.to_string()), parts);
        }
    }
}

impl<T: ModuleField> ModuleField for std::collections::BTreeMap<String, T> {
    fn list_parts<'a>(&'a mut self, name: &str, parts: &mut Vec<(String, Part<'a>)>) {
        for (k, v) in self.iter_mut() {
            v.list_parts(&join(name, k), parts);
        }
    }
}

impl<T: ModuleField, const N: usize> ModuleField for [T; N] {
    fn list_parts<'a>(&'a mut self, name: &str, parts: &mut Vec<(String, Part<'a>)>) {
        for (i, v) in self.iter_mut().enumerate() {
            v.list_parts(&join(name, &i.to_string()), parts);
        }
    }
}

/// Configuration values: constants that list nothing.
macro_rules! constant_fields {
    ($($t:ty),* $(,)?) => { $(impl ModuleField for $t {})* };
}

constant_fields!(
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    &'static str,
    (),
    std::time::Duration,
    Init,
    DropoutMode,
    DType,
    Device,
    crate::shape::Shape,
);

impl<T: ?Sized> ModuleField for std::marker::PhantomData<T> {}

/// Every part below `m`, children flattened, with dotted names.
pub(crate) fn flatten<'a>(m: &'a mut dyn Module, prefix: &str, out: &mut Vec<(String, Part<'a>)>) {
    for (name, part) in m.parts() {
        let full = join(prefix, &name);
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

    /// Every parameter, in the order of [`ModuleExt::named_parameters`] (PyTorch's
    /// `parameters()`); [`Param::value`] is its tensor, [`Param::grad`] its gradient.
    fn parameters(&mut self) -> Vec<&mut Param> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// The parameter with this dotted name (`"layers.0.weight"`, PyTorch's
    /// `get_parameter`); an error listing the module's parameters when there is none.
    fn get_parameter(&mut self, name: &str) -> Result<&mut Param> {
        state::get_parameter(self.as_module(), name)
    }

    /// The buffer with this dotted name (`"bn1.running_mean"`); an error listing the
    /// module's buffers when there is none.
    fn get_buffer(&mut self, name: &str) -> Result<&mut Tensor> {
        state::get_buffer(self.as_module(), name)
    }

    /// Every parameter and buffer by dotted name, in declaration order (PyTorch's
    /// `state_dict()`). The tensors share the module's storage: no copy is made.
    fn state_dict(&mut self) -> StateDict {
        state::state_dict(self.as_module())
    }

    /// Copies the tensors of `dict` into the parameters and buffers of the same names, on
    /// each one's device and in its dtype (an f32 state dict loads into an f16 model), as
    /// PyTorch's `load_state_dict(dict, strict)`.
    ///
    /// A tensor whose shape differs from the module's is always an error, naming every such
    /// tensor with both shapes. With `strict`, a name the module has and `dict` lacks
    /// (missing) or the other way round (unexpected) is an error too; without it they are
    /// listed in the returned [`LoadReport`] and the rest is loaded. On error nothing is
    /// changed. Loaded parameters lose their gradients; counters (dropout's step) are not
    /// part of a state dict.
    fn load_state_dict(&mut self, dict: &StateDict, strict: bool) -> Result<LoadReport> {
        state::load_state_dict(self.as_module(), dict, strict)
    }

    /// Writes [`ModuleExt::state_dict`] to a safetensors file (see [`StateDict::save`]).
    fn save_state_dict(&mut self, path: impl AsRef<std::path::Path>) -> Result<()> {
        self.state_dict().save(path)
    }

    /// Reads a safetensors file and loads it as [`ModuleExt::load_state_dict`] does. A
    /// damaged tensor (its checksum) or one holding NaN or infinite values is an error that
    /// names it, and nothing is loaded; to inspect such values, read the file with
    /// [`StateDict::load`], which does not judge them, and load that.
    fn load_state_dict_file(
        &mut self,
        path: impl AsRef<std::path::Path>,
        strict: bool,
    ) -> Result<LoadReport> {
        let dict = StateDict::load(&path)?;
        state::refuse_non_finite(&dict, path.as_ref())?;
        self.load_state_dict(&dict, strict)
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

impl ModuleExt for dyn Module {
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
    if n == 0 || n.checked_mul(features) != Some(x.numel()) {
        return Err(Error::shapes(
            op,
            x.shape(),
            like.shape(),
            format!("input must flatten to [N, {features}]"),
        ));
    }
    Ok(n)
}
