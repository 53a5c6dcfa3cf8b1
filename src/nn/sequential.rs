//! A chain of named modules, itself a module (so it nests): the book's `MultiLayerNet`,
//! `SimpleConvNet` and `DeepConvNet` are `Sequential`s; the loss is a function applied to
//! its output.
//!
//! A `Sequential` fuses a ReLU into the conv or linear layer before it (the ReLU then costs no
//! pass of its own, see [`Tensor::conv2d_relu`] and [`Tensor::linear`]). That is its own
//! business, not the [`Module`] trait's: it recognises the layers by their type.

use super::{Conv2d, Linear, Module, ModuleExt, ModuleField, Part, Relu, join};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::any::Any;

/// Named modules applied in order (PyTorch's `nn.Sequential` with an `OrderedDict`).
#[derive(Default, Module)]
pub struct Sequential {
    /// The modules' parts are named by the modules' names (`conv1.weight`), not under a
    /// field name.
    #[module(flatten)]
    layers: Layers,
}

/// The chain's modules with their names: the names are data, so this lists the children
/// itself (the one hand-written listing in the crate).
#[derive(Default)]
struct Layers(Vec<(String, Box<dyn Module>)>);

impl ModuleField for Layers {
    fn list_parts<'a>(&'a mut self, name: &str, parts: &mut Vec<(String, Part<'a>)>) {
        for (n, m) in &mut self.0 {
            parts.push((join(name, n), Part::Module(m.as_mut())));
        }
    }
}

/// Whether `m` is a plain ReLU (which [`fused_relu`] folds into the layer before it).
fn is_relu(m: &dyn Module) -> bool {
    let any: &dyn Any = m;
    any.is::<Relu>()
        || any
            .downcast_ref::<Box<dyn Module>>()
            .is_some_and(|b| is_relu(b.as_ref()))
}

/// `relu(m.forward(x))` as one fused op when `m` is a layer that has one (conv, linear);
/// `None` for any other module.
fn fused_relu(m: &mut dyn Module, x: &Tensor) -> Option<Result<Tensor>> {
    let any: &mut dyn Any = m;
    if any.is::<Linear>() {
        return any.downcast_mut::<Linear>().map(|l| l.forward_relu(x));
    }
    if any.is::<Conv2d>() {
        return any.downcast_mut::<Conv2d>().map(|c| c.forward_relu(x));
    }
    any.downcast_mut::<Box<dyn Module>>()
        .and_then(|b| fused_relu(b.as_mut(), x))
}

impl Sequential {
    /// An empty chain (the identity).
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// Appends `module` named `name`; its parameters become `name.weight`, `name.bias` ….
    pub fn add(mut self, name: &str, module: impl Module + 'static) -> Result<Sequential> {
        self.push(name, Box::new(module))?;
        Ok(self)
    }

    /// Appends a boxed module named `name` (names must be unique and free of dots).
    pub fn push(&mut self, name: &str, module: Box<dyn Module>) -> Result<()> {
        if name.is_empty() || name.contains('.') {
            return Err(Error::invalid(
                "Sequential::add",
                format!("\"{name}\" is not a valid name (non-empty, no dots)"),
            ));
        }
        if self.layers.0.iter().any(|(n, _)| n == name) {
            return Err(Error::invalid(
                "Sequential::add",
                format!("a module is already named \"{name}\""),
            ));
        }
        self.layers.0.push((name.to_string(), module));
        Ok(())
    }

    /// Number of modules in the chain.
    pub fn len(&self) -> usize {
        self.layers.0.len()
    }

    /// True for the empty chain.
    pub fn is_empty(&self) -> bool {
        self.layers.0.is_empty()
    }

    /// The output for `x` and the number of elements of `x` and of every module's output: the
    /// activations a training step keeps for backward, up to what the ops save besides.
    pub fn forward_counting(&mut self, x: &Tensor) -> Result<(Tensor, usize)> {
        let mut h = x.clone();
        let mut elements = x.numel();
        for (_, layer) in &mut self.layers.0 {
            h = layer.forward(&h)?;
            elements += h.numel();
        }
        Ok((h, elements))
    }

    /// The output of the module named `last` (and of all before it) for `x`: the features a
    /// trained classifier computes at an inner layer (PyTorch's `model[:k](x)`). An error
    /// names the modules when none is called `last`.
    pub fn forward_through(&mut self, x: &Tensor, last: &str) -> Result<Tensor> {
        let Some(i) = self.layers.0.iter().position(|(n, _)| n == last) else {
            return Err(Error::invalid(
                "Sequential::forward_through",
                format!(
                    "no module named {last:?} (the modules: {})",
                    self.names().join(", ")
                ),
            ));
        };
        self.run_to(x, i + 1)
    }

    /// The modules `0..end` on `x`; a conv or linear module followed by a plain ReLU (both
    /// before `end`) runs the pair as one fused op.
    fn run_to(&mut self, x: &Tensor, end: usize) -> Result<Tensor> {
        let mut h = x.clone();
        let mut i = 0;
        while i < end {
            let relu_next = i + 1 < end
                && self
                    .layers
                    .0
                    .get(i + 1)
                    .is_some_and(|(_, m)| is_relu(m.as_ref()));
            if relu_next && let Some(out) = fused_relu(self.layers.0[i].1.as_mut(), &h) {
                h = out?;
                i += 2;
                continue;
            }
            h = self.layers.0[i].1.forward(&h)?;
            i += 1;
        }
        Ok(h)
    }

    /// The modules' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.layers.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// One training step's forward and backward with the device synchronised around every
    /// module, for a time split by layer (benchmarks only: the syncs cost what a normal step
    /// avoids). Each module runs on a detached copy of its input, so its backward can be run
    /// and timed alone: the gradient leaving module `i` is the one entering module `i - 1`,
    /// exactly as in one backward walk. Returns `(name, forward s, backward s)` per module,
    /// then `("loss", forward + backward s, 0)`.
    pub fn profile_step(
        &mut self,
        x: &Tensor,
        loss_fn: &dyn Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Vec<(String, f64, f64)>> {
        let dev = x.device();
        let mut times = Vec::with_capacity(self.layers.0.len() + 1);
        let mut inputs = Vec::with_capacity(self.layers.0.len());
        let mut outputs = Vec::with_capacity(self.layers.0.len());
        let mut h = x.clone();
        dev.sync()?;
        for (i, (name, layer)) in self.layers.0.iter_mut().enumerate() {
            // As in training, nothing differentiates the images themselves: the first
            // layer's input takes no gradient (a convolution then skips its dx).
            let input = if i == 0 {
                h.detach()
            } else {
                h.detach().requiring_grad()?
            };
            let t = std::time::Instant::now();
            h = layer.forward(&input)?;
            dev.sync()?;
            times.push((name.clone(), t.elapsed().as_secs_f64(), 0.0));
            inputs.push(input);
            outputs.push(h.clone());
        }
        let t = std::time::Instant::now();
        let last = h.detach().requiring_grad()?;
        loss_fn(&last)?.backward()?;
        let mut d = last.grad().ok_or_else(|| {
            Error::invalid("profile_step", "the loss does not depend on the output")
        })?;
        dev.sync()?;
        let loss_time = t.elapsed().as_secs_f64();
        for i in (0..self.layers.0.len()).rev() {
            let t = std::time::Instant::now();
            if outputs[i].requires_grad() {
                outputs[i].backward_with(&d)?;
            }
            dev.sync()?;
            times[i].2 = t.elapsed().as_secs_f64();
            match inputs[i].grad() {
                Some(g) => d = g,
                None => break,
            }
        }
        times.push(("loss".to_string(), loss_time, 0.0));
        Ok(times)
    }
}

impl Module for Sequential {
    /// Runs the layers in order; a conv or linear layer followed by a plain ReLU runs the
    /// pair as one fused op (the ReLU then costs no pass of its own).
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let end = self.layers.0.len();
        self.run_to(x, end)
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self
            .layers
            .0
            .iter()
            .map(|(n, m)| format!("{n}: {}", m.describe()))
            .collect();
        format!("Sequential({})", names.join(", "))
    }
}

impl Sequential {
    /// One line per module (name, description, parameter count) and the total.
    pub fn layer_summary(&mut self) -> String {
        let mut s = String::new();
        let mut total = 0;
        for (name, layer) in &mut self.layers.0 {
            let n = layer.num_params();
            total += n;
            s.push_str(&format!(
                "  {name:<8} {:<40} {n:>8} params\n",
                layer.describe()
            ));
        }
        s.push_str(&format!("  total {total} parameters\n"));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::nn::{Init, Sigmoid};

    /// The fusion recognises conv, linear and ReLU by type, through a `Box<dyn Module>` too,
    /// and nothing else.
    #[test]
    fn fusion_recognises_its_layers_by_type() -> Result<()> {
        let dev = Device::cpu();
        let x = Tensor::randn([2, 1, 4, 4], 0.0, 1.0, 1, &dev)?;
        let mut conv = Conv2d::with_init(1, 2, 3, 1, 1, Init::He, 1, &dev)?;
        let mut fc = Linear::with_init(16, 3, Init::He, 2, &dev)?;
        let mut boxed: Box<dyn Module> = Box::new(Linear::with_init(16, 3, Init::He, 2, &dev)?);
        assert!(is_relu(&Relu));
        assert!(is_relu(&(Box::new(Relu) as Box<dyn Module>)));
        assert!(!is_relu(&Sigmoid));
        let want = conv.forward(&x)?.relu()?.to_vec::<f32>()?;
        let got = fused_relu(&mut conv, &x).transpose()?;
        assert_eq!(got.map(|t| t.to_vec::<f32>()).transpose()?, Some(want));
        let want = fc.forward(&x)?.relu()?.to_vec::<f32>()?;
        let got = fused_relu(&mut boxed, &x).transpose()?;
        assert_eq!(got.map(|t| t.to_vec::<f32>()).transpose()?, Some(want));
        assert!(fused_relu(&mut Sigmoid, &x).is_none());
        assert!(fused_relu(&mut Relu, &x).is_none());
        Ok(())
    }
}
