//! Optimizers with the book's formulas and defaults (`common/optimizer.py`), plus L2 weight
//! decay. Each update is one kernel per parameter on the parameter's device; state tensors
//! (velocity, squared-gradient sums, Adam moments) live beside the parameters and never leave
//! the device.

use crate::DType;
use crate::autograd::no_grad;
use crate::error::{Error, Result};
use crate::nn::Param;
use crate::ops::{OptimKind, OptimStep};
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// An optimizer and its per-parameter state.
pub struct Optimizer {
    kind: OptimKind,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    /// Adam's ε is added to the bias-corrected `√v̂` (PyTorch's form) instead of `√v`.
    eps_on_corrected: bool,
    weight_decay: f32,
    t: u64,
    state: BTreeMap<String, Vec<Tensor>>,
    /// The scale-1, never-skipping scaler state used outside mixed precision.
    identity: Option<Tensor>,
}

impl Optimizer {
    /// Checks the hyperparameters as PyTorch's constructors do: a finite learning rate, ε and
    /// weight decay ≥ 0, and momentum, decay rate and betas in `[0, 1)`; the error names the
    /// one out of range. [`Optimizer::step`] calls it, and the examples call it where the
    /// command line gives the values.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, v: f32, range: &str| {
            Err(Error::invalid(
                "optimizer",
                format!(
                    "{:?}: {name} {v} is out of range (must be {range})",
                    self.kind
                ),
            ))
        };
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("learning rate", self.lr, "a finite number ≥ 0");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight decay", self.weight_decay, "a finite number ≥ 0");
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return bad("eps", self.eps, "a finite number ≥ 0");
        }
        let unit = |v: f32| (0.0..1.0).contains(&v);
        let (b1, b2) = match self.kind {
            OptimKind::Momentum | OptimKind::Nesterov => (Some("momentum"), None),
            OptimKind::RmsProp => (Some("decay rate"), None),
            OptimKind::Adam | OptimKind::AdamW => (Some("beta1"), Some("beta2")),
            OptimKind::Sgd | OptimKind::AdaGrad => (None, None),
        };
        if let Some(name) = b1
            && !unit(self.beta1)
        {
            return bad(name, self.beta1, "in [0, 1)");
        }
        if let Some(name) = b2
            && !unit(self.beta2)
        {
            return bad(name, self.beta2, "in [0, 1)");
        }
        Ok(())
    }

    fn new(kind: OptimKind, lr: f32, beta1: f32, beta2: f32) -> Optimizer {
        Optimizer {
            kind,
            lr,
            beta1,
            beta2,
            eps: 1e-7,
            eps_on_corrected: false,
            weight_decay: 0.0,
            t: 0,
            state: BTreeMap::new(),
            identity: None,
        }
    }

    /// SGD (book default lr 0.01).
    pub fn sgd(lr: f32) -> Optimizer {
        Optimizer::new(OptimKind::Sgd, lr, 0.0, 0.0)
    }

    /// Momentum SGD (book defaults 0.01, 0.9).
    pub fn momentum(lr: f32, momentum: f32) -> Optimizer {
        Optimizer::new(OptimKind::Momentum, lr, momentum, 0.0)
    }

    /// Nesterov's accelerated gradient (book defaults 0.01, 0.9).
    pub fn nesterov(lr: f32, momentum: f32) -> Optimizer {
        Optimizer::new(OptimKind::Nesterov, lr, momentum, 0.0)
    }

    /// AdaGrad (book default lr 0.01).
    pub fn adagrad(lr: f32) -> Optimizer {
        Optimizer::new(OptimKind::AdaGrad, lr, 0.0, 0.0)
    }

    /// RMSprop (book defaults 0.01, decay 0.99).
    pub fn rmsprop(lr: f32, decay_rate: f32) -> Optimizer {
        Optimizer::new(OptimKind::RmsProp, lr, decay_rate, 0.0)
    }

    /// Adam (book defaults 0.001, 0.9, 0.999).
    pub fn adam(lr: f32, beta1: f32, beta2: f32) -> Optimizer {
        Optimizer::new(OptimKind::Adam, lr, beta1, beta2)
    }

    /// AdamW (PyTorch's defaults: 0.001, 0.9, 0.999, λ = 0.01): Adam with the weight decay
    /// decoupled from the gradient, on parameters that take decay (weights, not biases).
    pub fn adamw(lr: f32, beta1: f32, beta2: f32, weight_decay: f32) -> Optimizer {
        Optimizer::new(OptimKind::AdamW, lr, beta1, beta2).with_weight_decay(weight_decay)
    }

    /// By name with the book's defaults: sgd, momentum, nesterov, adagrad, rmsprop, adam;
    /// and adamw with PyTorch's.
    pub fn by_name(name: &str, lr: Option<f32>) -> Result<Optimizer> {
        let o = match name.to_ascii_lowercase().as_str() {
            "sgd" => Optimizer::sgd(0.01),
            "momentum" => Optimizer::momentum(0.01, 0.9),
            "nesterov" => Optimizer::nesterov(0.01, 0.9),
            "adagrad" => Optimizer::adagrad(0.01),
            "rmsprop" => Optimizer::rmsprop(0.01, 0.99),
            "adam" => Optimizer::adam(0.001, 0.9, 0.999),
            "adamw" => Optimizer::adamw(0.001, 0.9, 0.999, 0.01),
            other => {
                return Err(Error::invalid(
                    "optimizer",
                    format!(
                        "unknown optimizer \"{other}\" (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw)"
                    ),
                ));
            }
        };
        Ok(match lr {
            Some(lr) => o.with_lr(lr),
            None => o,
        })
    }

    /// Sets the learning rate.
    pub fn with_lr(mut self, lr: f32) -> Optimizer {
        self.lr = lr;
        self
    }

    /// Adam and AdamW with PyTorch's ε: `lr·m̂/(√v̂ + eps)` on the bias-corrected moments, as
    /// `torch.optim.Adam(eps=…)` (PyTorch's default is 1e-8), instead of the book's
    /// `lr_t·m/(√v + 1e-7)`. The two differ where gradients are tiny and in the first steps,
    /// where PyTorch's ε is effectively smaller by `√(1 − β2ᵗ)`; a twin of a PyTorch script
    /// that must follow its updates uses this. Other rules keep their ε. (Under
    /// [`Optimizer::step_scaled`], ε's correction counts the steps the scaler skipped.)
    pub fn with_torch_eps(mut self, eps: f32) -> Optimizer {
        self.eps = eps;
        self.eps_on_corrected = true;
        self
    }

    /// L2 weight decay λ on weights (the book's `0.5 λ ‖W‖²` added to the loss).
    pub fn with_weight_decay(mut self, lambda: f32) -> Optimizer {
        self.weight_decay = lambda;
        self
    }

    /// The rule.
    pub fn kind(&self) -> OptimKind {
        self.kind
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        self.lr
    }

    /// Changes the learning rate of the next updates (a schedule's per-step value); the
    /// state tensors are kept.
    pub fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    /// Updates taken so far (Adam's `t`).
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The hyper-parameters of the next update (Adam's bias correction computed in f64).
    fn next_step(&self, t: u64) -> OptimStep {
        let adam = matches!(self.kind, OptimKind::Adam | OptimKind::AdamW);
        let correction2 = (1.0 - (self.beta2 as f64).powf(t as f64)).sqrt();
        let lr_t = if adam {
            (self.lr as f64 * correction2 / (1.0 - (self.beta1 as f64).powf(t as f64))) as f32
        } else {
            self.lr
        };
        // lr·m̂/(√v̂ + ε) = lr_t·m/(√v + ε·√(1 − β2ᵗ)): PyTorch's ε in the book's kernel.
        let eps = if adam && self.eps_on_corrected {
            (self.eps as f64 * correction2) as f32
        } else {
            self.eps
        };
        OptimStep {
            kind: self.kind,
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps,
            weight_decay: 0.0,
            lr_t,
            t,
        }
    }

    /// Applies one update to every parameter that has a gradient, each known by its name
    /// (the key of its state: `model.named_parameters()`, or several models' lists joined
    /// with distinct prefixes). The update runs without recording (inside `no_grad`).
    /// Hyperparameters out of range are refused by name before anything changes.
    pub fn step<'a>(
        &mut self,
        params: impl IntoIterator<Item = (String, &'a mut Param)>,
    ) -> Result<()> {
        self.validate()?;
        let params: Vec<(String, &mut Param)> = params.into_iter().collect();
        let device = match params.iter().find(|(_, p)| p.grad().is_some()) {
            Some((_, p)) => p.value().device(),
            None => return Ok(()),
        };
        let guard = match self.identity.take() {
            Some(g) if g.device().same(&device) => g,
            _ => LossScaler::identity(&device)?.state,
        };
        let with_grads: Vec<_> = params
            .into_iter()
            .map(|(n, p)| {
                let g = p.grad();
                ((n, p), g)
            })
            .collect();
        let r = self.update_all(with_grads, &guard);
        self.identity = Some(guard);
        r
    }

    /// The mixed-precision step: checks every gradient for inf/NaN into `scaler`'s flag, then
    /// updates with the gradients divided by the loss scale — or, when the flag is set, not at
    /// all — and lets the scaler adjust its scale. All on the device: no readback, no submit.
    /// A skipped step does not count as an Adam step: the kernels take the scaler's count of
    /// skipped steps out of `t` for the bias correction (as PyTorch's `GradScaler` skips
    /// `optimizer.step()`).
    /// f16 gradients are widened to f32 first, so master weights and state stay f32.
    pub fn step_scaled<'a>(
        &mut self,
        params: impl IntoIterator<Item = (String, &'a mut Param)>,
        scaler: &mut LossScaler,
    ) -> Result<()> {
        let _guard = no_grad();
        let params: Vec<(String, &mut Param)> = params.into_iter().collect();
        let mut grads = Vec::with_capacity(params.len());
        for (_, p) in &params {
            let g = match p.grad() {
                Some(g) => {
                    g.scaler_check(&mut scaler.state)?;
                    Some(g.to_dtype(DType::F32)?)
                }
                None => None,
            };
            grads.push(g);
        }
        self.update_all(params.into_iter().zip(grads), &scaler.state)?;
        Tensor::scaler_update_(&mut scaler.state, scaler.growth_interval)
    }

    fn update_all<'a>(
        &mut self,
        params: impl IntoIterator<Item = ((String, &'a mut Param), Option<Tensor>)>,
        guard: &Tensor,
    ) -> Result<()> {
        let _no_grad = no_grad();
        self.t += 1;
        let base = self.next_step(self.t);
        let n = self.kind.state_count();
        let mut with_grads = Vec::new();
        for ((name, p), grad) in params {
            let Some(grad) = grad else {
                continue;
            };
            if !self.state.contains_key(&name) {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(Tensor::zeros(
                        p.value().shape().clone(),
                        DType::F32,
                        &p.value().device(),
                    )?);
                }
                self.state.insert(name.clone(), v);
            }
            with_grads.push((name, p, grad));
        }
        // Every parameter's state, borrowed at once for one multi-tensor update.
        let mut states: std::collections::HashMap<&str, &mut Vec<Tensor>> = self
            .state
            .iter_mut()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        let weight_decay = self.weight_decay;
        let mut targets = Vec::with_capacity(with_grads.len());
        for (name, p, grad) in with_grads.iter_mut() {
            let decay = if p.decay() { weight_decay } else { 0.0 };
            let state = states.remove(name.as_str()).ok_or_else(|| {
                Error::invalid(
                    "optimizer step",
                    format!("parameter \"{name}\" listed twice"),
                )
            })?;
            let mut it = state.iter_mut();
            let (s1, s2) = (it.next(), it.next());
            targets.push(crate::OptimTarget {
                param: p.value_mut(),
                grad,
                s1,
                s2,
                weight_decay: decay,
            });
        }
        Tensor::optim_update_many_(&mut targets, guard, &base)
    }

    /// State tensors by checkpoint name: `<param>.<m|v|h|velocity>`.
    pub fn state(&self) -> Vec<(String, &Tensor)> {
        let names = self.state_names();
        self.state
            .iter()
            .flat_map(|(p, ts)| {
                ts.iter()
                    .zip(names)
                    .map(move |(t, n)| (format!("{p}.{n}"), t))
            })
            .collect()
    }

    fn state_names(&self) -> &'static [&'static str] {
        match self.kind {
            OptimKind::Sgd => &[],
            OptimKind::Momentum | OptimKind::Nesterov => &["velocity"],
            OptimKind::AdaGrad | OptimKind::RmsProp => &["h"],
            OptimKind::Adam | OptimKind::AdamW => &["m", "v"],
        }
    }

    /// Replaces the state (from a checkpoint): `tensors` holds `<param>.<state>` entries for
    /// every parameter in `param_names`, `t` the update count.
    pub fn load_state(
        &mut self,
        param_names: &[String],
        mut tensors: BTreeMap<String, Tensor>,
        t: u64,
        what: &str,
    ) -> Result<()> {
        let mut state = BTreeMap::new();
        for p in param_names {
            let present = self
                .state_names()
                .iter()
                .any(|n| tensors.contains_key(&format!("{p}.{n}")));
            if t == 0 && !present {
                continue; // saved before the first update: the state starts at zero, lazily
            }
            let mut v = Vec::new();
            for n in self.state_names() {
                let key = format!("{p}.{n}");
                let t = tensors.remove(&key).ok_or_else(|| Error::Checkpoint {
                    path: what.to_string(),
                    msg: format!(
                        "optimizer state \"optim.{key}\" is missing (saved with another optimizer?)"
                    ),
                })?;
                v.push(t);
            }
            if !v.is_empty() {
                state.insert(p.clone(), v);
            }
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(Error::Checkpoint {
                path: what.to_string(),
                msg: format!(
                    "unexpected optimizer state \"optim.{extra}\" for {:?}",
                    self.kind
                ),
            });
        }
        self.state = state;
        self.t = t;
        Ok(())
    }
}

/// Scales the gradients of `params` so that their global L2 norm is at most `max_norm`
/// (PyTorch's `clip_grad_norm_`), all on the device: the norm, the factor
/// `min(1, max_norm / norm)` and the scaling are kernels, nothing is read back. Returns the
/// norm before clipping (`[1]`, f32, on the device; `None` when no parameter has a gradient).
/// Under mixed precision the gradients are still multiplied by the loss scale at this point:
/// scale `max_norm` by it, or clip in f32 training only.
pub fn clip_grad_norm<'a>(
    params: impl IntoIterator<Item = (String, &'a mut Param)>,
    max_norm: f32,
) -> Result<Option<Tensor>> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::invalid(
            "clip_grad_norm",
            format!("max_norm must be finite and positive, got {max_norm}"),
        ));
    }
    let _guard = no_grad();
    let params: Vec<(String, &mut Param)> = params.into_iter().collect();
    let mut sumsq: Option<Tensor> = None;
    for (_, p) in &params {
        if let Some(g) = p.grad() {
            let g = g.to_dtype(DType::F32)?;
            let s = g.mul(&g)?.sum()?;
            sumsq = Some(match sumsq {
                Some(acc) => acc.add(&s)?,
                None => s,
            });
        }
    }
    let Some(sumsq) = sumsq else {
        return Ok(None);
    };
    let norm = sumsq.sqrt_eps(0.0)?;
    // min(1, r) = 1 - relu(1 - r), with r = max_norm / √(Σg² + 1e-12).
    let one = Tensor::full([1], 1.0, &norm.device())?;
    let r = sumsq.sqrt_eps(1e-12)?.recip()?.scale(max_norm)?;
    let factor = one.sub(&one.sub(&r)?.relu()?)?;
    for (_, p) in params {
        if let Some(g) = p.grad() {
            let dt = g.dtype();
            p.set_grad(Some(g.mul(&factor.to_dtype(dt)?)?))?;
        }
    }
    Ok(Some(norm))
}

/// Dynamic loss scaling for mixed-precision training (the PyTorch AMP recipe): start at 2^16;
/// on any non-finite gradient skip the step and halve the scale; double it after
/// `growth_interval` (2,000) clean steps. The state lives on the device as u32
/// `[scale bits, non-finite flag, clean steps, skipped steps]` and is only read back when
/// reported.
pub struct LossScaler {
    state: Tensor,
    growth_interval: u32,
}

impl LossScaler {
    /// A scaler on `device` starting at `init_scale`.
    pub fn new(
        init_scale: f32,
        growth_interval: u32,
        device: &crate::Device,
    ) -> Result<LossScaler> {
        if !(init_scale.is_finite() && init_scale > 0.0) || growth_interval == 0 {
            return Err(Error::invalid(
                "LossScaler",
                format!(
                    "scale must be finite and positive and the growth interval ≥ 1, got {init_scale}, {growth_interval}"
                ),
            ));
        }
        let state = Tensor::scaler_new(device, init_scale)?;
        Ok(LossScaler {
            state,
            growth_interval,
        })
    }

    /// The AMP defaults: 2^16, doubling after 2,000 clean steps.
    pub fn standard(device: &crate::Device) -> Result<LossScaler> {
        LossScaler::new(65536.0, 2000, device)
    }

    /// Scale 1, never growing: plain (unscaled) training.
    pub fn identity(device: &crate::Device) -> Result<LossScaler> {
        LossScaler::new(1.0, u32::MAX, device)
    }

    /// The device state, u32 `[scale bits, flag, clean steps, skipped steps]`.
    pub fn state(&self) -> &Tensor {
        &self.state
    }

    /// Multiplies a loss gradient by the current scale, in place, on the device.
    pub fn scale_(&self, grad: &mut Tensor) -> Result<()> {
        grad.scaler_scale_(&self.state)
    }

    /// Reads `(scale, skipped steps)` back (a sync).
    pub fn read(&self) -> Result<(f32, u64)> {
        let v = self.state.to_vec::<u32>()?;
        Ok((f32::from_bits(v[0]), v[3] as u64))
    }
}
