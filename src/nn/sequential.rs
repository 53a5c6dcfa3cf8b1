//! A stack of named layers ending in [`SoftmaxWithLoss`]: the book's `MultiLayerNet`,
//! `SimpleConvNet` and `DeepConvNet` are all `Sequential`s.

use super::{ForwardCtx, Layer, Param, SoftmaxWithLoss};
use crate::DType;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::optim::LossScaler;
use crate::tensor::Tensor;

/// Named layers applied in order.
pub struct Sequential {
    layers: Vec<(String, Box<dyn Layer>)>,
    loss: SoftmaxWithLoss,
    train: bool,
    step: u64,
    device: Device,
    activations: usize,
    compute: DType,
    masters: Vec<Tensor>,
}

impl Sequential {
    /// An empty model on `device` (in training mode).
    pub fn new(device: &Device) -> Sequential {
        Sequential {
            layers: Vec::new(),
            loss: SoftmaxWithLoss::new(),
            train: true,
            step: 0,
            device: device.clone(),
            activations: 0,
            compute: DType::F32,
            masters: Vec::new(),
        }
    }

    /// The dtype training computes in: F32, or F16 for mixed precision — then each training
    /// [`Sequential::loss`] runs the layers on f16 copies of the (f32, master) parameters and
    /// an f16 input, and the gradients come out in f16. Evaluation uses the master weights.
    pub fn set_compute_dtype(&mut self, dtype: DType) -> Result<()> {
        if !dtype.is_float() {
            return Err(Error::invalid(
                "set_compute_dtype",
                format!("{dtype} is not a float dtype"),
            ));
        }
        self.restore_masters();
        self.compute = dtype;
        Ok(())
    }

    /// See [`Sequential::set_compute_dtype`].
    pub fn compute_dtype(&self) -> DType {
        self.compute
    }

    fn swap_in_compute_copies(&mut self) -> Result<()> {
        let dtype = self.compute;
        if !self.masters.is_empty() || self.dtype() == dtype {
            return Ok(());
        }
        let mut masters = Vec::new();
        for p in self.params_mut() {
            let copy = p.value.to_dtype(dtype)?;
            masters.push(std::mem::replace(&mut p.value, copy));
        }
        self.masters = masters;
        Ok(())
    }

    fn restore_masters(&mut self) {
        let masters = std::mem::take(&mut self.masters);
        if masters.is_empty() {
            return;
        }
        for (p, m) in self.params_mut().into_iter().zip(masters) {
            p.value = m;
        }
    }

    /// Appends `layer` named `name`; its parameters become `name.weight`, `name.bias` ….
    pub fn add(mut self, name: &str, mut layer: impl Layer + 'static) -> Result<Sequential> {
        if self.layers.iter().any(|(n, _)| n == name) {
            return Err(Error::invalid(
                "Sequential::add",
                format!("a layer is already named \"{name}\""),
            ));
        }
        layer.set_name(name);
        self.layers.push((name.to_string(), Box::new(layer)));
        Ok(self)
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Training mode: dropout active, batch statistics.
    pub fn train(&mut self) {
        self.train = true;
    }

    /// Evaluation mode: dropout off, running statistics.
    pub fn eval(&mut self) {
        self.train = false;
    }

    /// Whether in training mode.
    pub fn is_training(&self) -> bool {
        self.train
    }

    /// Training forwards so far (seeds the dropout masks; saved in checkpoints).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Sets the training-forward counter (when resuming).
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// Logits for `x`. In training mode this counts as one step and caches for backward.
    pub fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let ctx = ForwardCtx {
            train: self.train,
            step: self.step,
        };
        let mut h = x.clone();
        self.activations = x.numel();
        for (_, layer) in &mut self.layers {
            h = layer.forward(&h, &ctx)?;
            self.activations += h.numel();
        }
        if self.train {
            self.step += 1;
        }
        Ok(h)
    }

    /// Forward through the layers and the loss: the mean loss `[1]`, on the device (in the
    /// compute dtype when training).
    pub fn loss(&mut self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        let x = if self.train && self.compute != self.dtype() {
            self.swap_in_compute_copies()?;
            x.to_dtype(self.compute)?
        } else {
            x.clone()
        };
        let r = self
            .forward(&x)
            .and_then(|logits| self.loss.forward(&logits, labels));
        if r.is_err() {
            self.restore_masters();
        }
        r
    }

    /// Backward from the loss with gradient scale `dout` (1.0 normally); leaves every
    /// parameter's gradient in [`Param::grad`] and returns dx.
    pub fn backward(&mut self, dout: f32) -> Result<Tensor> {
        let d = self.loss.backward(dout);
        self.backward_from(d)
    }

    /// Backward with the loss gradient multiplied by `scaler`'s current scale on the device
    /// (mixed precision: small f16 gradients stay representable).
    pub fn backward_scaled(&mut self, scaler: &LossScaler) -> Result<Tensor> {
        let d = self
            .loss
            .backward(1.0)
            .and_then(|mut d| scaler.scale_(&mut d).map(|_| d));
        self.backward_from(d)
    }

    fn backward_from(&mut self, d: Result<Tensor>) -> Result<Tensor> {
        let r = d.and_then(|mut d| {
            for (_, layer) in self.layers.iter_mut().rev() {
                d = layer.backward(&d)?;
            }
            Ok(d)
        });
        self.restore_masters();
        r
    }

    /// Class probabilities of the last [`Sequential::loss`] (on the device).
    pub fn last_probs(&self) -> Option<&Tensor> {
        self.loss.probs()
    }

    /// Elements of the input and of every layer's output in the last forward (the activations
    /// a training step keeps for backward, up to the layers' own caches).
    pub fn last_activation_elements(&self) -> usize {
        self.activations
    }

    /// Converts every parameter and buffer to `dtype` on the model's device (f32 ↔ f16), e.g.
    /// for f16 inference of a model trained in f32. Gradients are dropped.
    pub fn to_dtype(&mut self, dtype: DType) -> Result<()> {
        for p in self.params_mut() {
            p.value = p.value.to_dtype(dtype)?;
            p.grad = None;
        }
        for (_, t) in self.buffers_mut() {
            *t = t.to_dtype(dtype)?;
        }
        Ok(())
    }

    /// The dtype of the parameters (f32 unless converted with [`Sequential::to_dtype`]).
    pub fn dtype(&self) -> DType {
        self.params()
            .first()
            .map(|p| p.value.dtype())
            .unwrap_or(DType::F32)
    }

    /// One training forward + backward with the device synchronised around every layer, for
    /// a time split by layer (benchmarks only: the syncs cost what a normal step avoids).
    /// Returns `(layer name, forward seconds, backward seconds)`, the loss last.
    pub fn profile_step(&mut self, x: &Tensor, labels: &Tensor) -> Result<Vec<(String, f64, f64)>> {
        let dev = self.device.clone();
        let ctx = ForwardCtx {
            train: self.train,
            step: self.step,
        };
        let mut times = Vec::with_capacity(self.layers.len() + 1);
        let mut h = x.clone();
        dev.sync()?;
        for (name, layer) in &mut self.layers {
            let t = std::time::Instant::now();
            h = layer.forward(&h, &ctx)?;
            dev.sync()?;
            times.push((name.clone(), t.elapsed().as_secs_f64(), 0.0));
        }
        if self.train {
            self.step += 1;
        }
        let t = std::time::Instant::now();
        self.loss.forward(&h, labels)?;
        let mut d = self.loss.backward(1.0)?;
        dev.sync()?;
        let loss_time = t.elapsed().as_secs_f64();
        for (i, (_, layer)) in self.layers.iter_mut().enumerate().rev() {
            let t = std::time::Instant::now();
            d = layer.backward(&d)?;
            dev.sync()?;
            times[i].2 = t.elapsed().as_secs_f64();
        }
        times.push(("loss".to_string(), loss_time, 0.0));
        Ok(times)
    }

    /// All trainable parameters, in layer order.
    pub fn params(&self) -> Vec<&Param> {
        self.layers.iter().flat_map(|(_, l)| l.params()).collect()
    }

    /// All trainable parameters, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|(_, l)| l.params_mut())
            .collect()
    }

    /// Non-trainable state (BatchNorm running statistics), by name.
    pub fn buffers_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        self.layers
            .iter_mut()
            .flat_map(|(_, l)| l.buffers_mut())
            .collect()
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.params().iter().map(|p| p.numel()).sum()
    }

    /// One line per layer plus the parameter count.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (name, layer) in &self.layers {
            let n: usize = layer.params().iter().map(|p| p.numel()).sum();
            s.push_str(&format!(
                "  {name:<8} {:<40} {n:>8} params\n",
                layer.describe()
            ));
        }
        s.push_str(&format!(
            "  total {} parameters, on {}\n",
            self.num_params(),
            self.device
        ));
        s
    }
}
