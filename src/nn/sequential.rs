//! A chain of named modules, itself a module (so it nests): the book's `MultiLayerNet`,
//! `SimpleConvNet` and `DeepConvNet` are `Sequential`s; the loss is a function applied to
//! its output.

use super::{Module, ModuleExt, Part};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Named modules applied in order (PyTorch's `nn.Sequential` with an `OrderedDict`).
#[derive(Default)]
pub struct Sequential {
    layers: Vec<(String, Box<dyn Module>)>,
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
        if self.layers.iter().any(|(n, _)| n == name) {
            return Err(Error::invalid(
                "Sequential::add",
                format!("a module is already named \"{name}\""),
            ));
        }
        self.layers.push((name.to_string(), module));
        Ok(())
    }

    /// Number of modules in the chain.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True for the empty chain.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The output for `x` and the number of elements of `x` and of every module's output: the
    /// activations a training step keeps for backward, up to what the ops save besides.
    pub fn forward_counting(&mut self, x: &Tensor) -> Result<(Tensor, usize)> {
        let mut h = x.clone();
        let mut elements = x.numel();
        for (_, layer) in &mut self.layers {
            h = layer.forward(&h)?;
            elements += h.numel();
        }
        Ok((h, elements))
    }

    /// The modules' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.layers.iter().map(|(n, _)| n.as_str()).collect()
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
        let mut times = Vec::with_capacity(self.layers.len() + 1);
        let mut inputs = Vec::with_capacity(self.layers.len());
        let mut outputs = Vec::with_capacity(self.layers.len());
        let mut h = x.clone();
        dev.sync()?;
        for (i, (name, layer)) in self.layers.iter_mut().enumerate() {
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
        for i in (0..self.layers.len()).rev() {
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
    /// Runs the layers in order; a layer followed by a plain ReLU runs the pair as its fused
    /// [`Module::forward_relu`] where it has one (conv and linear layers: the ReLU then costs
    /// no pass of its own).
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let mut i = 0;
        while i < self.layers.len() {
            let relu_next = self.layers.get(i + 1).is_some_and(|(_, m)| m.is_relu());
            if relu_next && let Some(out) = self.layers[i].1.forward_relu(&h) {
                h = out?;
                i += 2;
                continue;
            }
            h = self.layers[i].1.forward(&h)?;
            i += 1;
        }
        Ok(h)
    }

    fn parts(&mut self) -> Vec<(String, Part<'_>)> {
        self.layers
            .iter_mut()
            .map(|(n, m)| (n.clone(), Part::Module(m.as_mut())))
            .collect()
    }

    fn describe(&self) -> String {
        let names: Vec<String> = self
            .layers
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
        for (name, layer) in &mut self.layers {
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
