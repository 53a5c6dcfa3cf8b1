//! The fused optimizer updates (one kernel for a parameter, one for up to seven) and the
//! dynamic loss scaler's state ops of mixed precision.

use super::*;

impl Tensor {
    /// One optimizer update in place: `self` is the parameter, `grad` its gradient, `s1`/`s2`
    /// the optimizer's state tensors (as many as [`OptimKind::state_count`]), `guard` a loss
    /// scaler's state ([`crate::optim::LossScaler::state`]; the identity scaler outside mixed
    /// precision): the gradient is divided by its scale and the update skipped while its
    /// non-finite flag is set.
    pub(crate) fn optim_update_(
        &mut self,
        grad: &Tensor,
        s1: Option<&mut Tensor>,
        s2: Option<&mut Tensor>,
        guard: &Tensor,
        step: &OptimStep,
    ) -> Result<()> {
        const OP: &str = "optim_update_";
        want(OP, self, DType::F32)?;
        want(OP, grad, DType::F32)?;
        want(OP, guard, DType::U32)?;
        same_shape(OP, self, grad)?;
        same_device(OP, &[self, guard])?;
        let mut states: Vec<&mut Tensor> = [s1, s2].into_iter().flatten().collect();
        if states.len() < step.kind.state_count() {
            return Err(Error::invalid(
                OP,
                format!(
                    "{:?} needs {} state tensors, got {}",
                    step.kind,
                    step.kind.state_count(),
                    states.len()
                ),
            ));
        }
        for st in states.iter() {
            want(OP, st, DType::F32)?;
            same_shape(OP, self, st)?;
            same_device(OP, &[self, st])?;
        }
        same_device(OP, &[self, grad])?;
        let n = self.numel();
        let mut it = states.iter_mut();
        let (a, b) = (it.next(), it.next());
        let sa = match a {
            Some(t) => Some(t.storage_mut()?),
            None => None,
        };
        let sb = match b {
            Some(t) => Some(t.storage_mut()?),
            None => None,
        };
        let g = &*grad.storage;
        match self.storage_mut()? {
            Storage::Cpu(w) => {
                let Storage::Cpu(g) = g else {
                    unreachable!("same_device checked the operands")
                };
                let Storage::Cpu(guard) = &*guard.storage else {
                    unreachable!("same_device checked the operands")
                };
                CpuBackend.optim_update(
                    step,
                    w,
                    g,
                    sa.and_then(as_cpu),
                    sb.and_then(as_cpu),
                    guard,
                    n,
                )
            }
            Storage::Gpu(w) => {
                let Storage::Gpu(g) = g else {
                    unreachable!("same_device checked the operands")
                };
                let ctx = w.ctx().clone();
                let Storage::Gpu(guard) = &*guard.storage else {
                    unreachable!("same_device checked the operands")
                };
                ctx.optim_update(
                    step,
                    w,
                    g,
                    sa.and_then(as_gpu),
                    sb.and_then(as_gpu),
                    guard,
                    n,
                )
            }
        }
    }

    /// [`Tensor::optim_update_`] for many parameters at once, each with its own weight decay:
    /// on a GPU one dispatch updates up to eight tensors (a multi-tensor step), elsewhere
    /// each is updated in turn. Every target is checked before anything is updated.
    pub(crate) fn optim_update_many_(
        targets: &mut [OptimTarget<'_>],
        guard: &Tensor,
        step: &OptimStep,
    ) -> Result<()> {
        const OP: &str = "optim_update_";
        want(OP, guard, DType::U32)?;
        for t in targets.iter() {
            want(OP, t.param, DType::F32)?;
            want(OP, t.grad, DType::F32)?;
            same_shape(OP, t.param, t.grad)?;
            same_device(OP, &[t.param, t.grad, guard])?;
            let states = t.s1.is_some() as usize + t.s2.is_some() as usize;
            if states < step.kind.state_count() {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "{:?} needs {} state tensors, got {states}",
                        step.kind,
                        step.kind.state_count()
                    ),
                ));
            }
            for st in [&t.s1, &t.s2].into_iter().flatten() {
                want(OP, st, DType::F32)?;
                same_shape(OP, t.param, st)?;
                same_device(OP, &[t.param, st])?;
            }
        }
        let Storage::Gpu(gbuf) = &*guard.storage else {
            for t in targets.iter_mut() {
                let s = OptimStep {
                    weight_decay: t.weight_decay,
                    ..*step
                };
                t.param.optim_update_(
                    t.grad,
                    t.s1.as_deref_mut(),
                    t.s2.as_deref_mut(),
                    guard,
                    &s,
                )?;
            }
            return Ok(());
        };
        let ctx = gbuf.ctx().clone();
        let mut slots = Vec::with_capacity(targets.len());
        for t in targets.iter_mut() {
            let n = t.param.numel();
            let Storage::Gpu(g) = &*t.grad.storage else {
                unreachable!("same_device checked the operands")
            };
            let s1 = match t.s1.as_deref_mut() {
                Some(x) => as_gpu(x.storage_mut()?),
                None => None,
            };
            let s2 = match t.s2.as_deref_mut() {
                Some(x) => as_gpu(x.storage_mut()?),
                None => None,
            };
            let Some(w) = as_gpu(t.param.storage_mut()?) else {
                unreachable!("same_device checked the operands")
            };
            slots.push(crate::gpu::OptimSlot {
                w,
                g,
                s1,
                s2,
                n,
                weight_decay: t.weight_decay,
            });
        }
        ctx.optim_update_many(step, &mut slots, gbuf)
    }

    /// Multiplies `self` in place by the scale of a loss-scaler state (u32 `[4]`).
    pub(crate) fn scaler_scale_(&mut self, state: &Tensor) -> Result<()> {
        const OP: &str = "loss scaling";
        want_float(OP, self, self.dtype)?;
        same_device(OP, &[self, state])?;
        let n = self.numel();
        match (self.storage_mut()?, &*state.storage) {
            (Storage::Cpu(x), Storage::Cpu(st)) => CpuBackend.scaler_scale(x, st, n),
            (Storage::Gpu(x), Storage::Gpu(st)) => st.ctx().clone().scaler_scale(x, st, n),
            _ => unreachable!("same_device checked the operands"),
        }
    }

    /// Raises the state's non-finite flag if `self` holds an inf or NaN.
    pub(crate) fn scaler_check(&self, state: &mut Tensor) -> Result<()> {
        const OP: &str = "loss scaling";
        want_float(OP, self, self.dtype)?;
        same_device(OP, &[self, state])?;
        let n = self.numel();
        match (&*self.storage, state.storage_mut()?) {
            (Storage::Cpu(x), Storage::Cpu(st)) => CpuBackend.scaler_check(x, st, n),
            (Storage::Gpu(x), Storage::Gpu(st)) => x.ctx().clone().scaler_check(x, st, n),
            _ => unreachable!("same_device checked the operands"),
        }
    }

    /// A fresh loss-scaler state (u32 `[4]`) on `device`, made by a kernel (no upload).
    pub(crate) fn scaler_new(device: &Device, init_scale: f32) -> Result<Tensor> {
        let mut state = Tensor::zeros([4], DType::U32, device)?;
        match state.storage_mut()? {
            Storage::Cpu(st) => CpuBackend.scaler_init(st, init_scale)?,
            Storage::Gpu(st) => st.ctx().clone().scaler_init(st, init_scale)?,
        }
        Ok(state)
    }

    /// The end-of-step update of a loss-scaler state.
    pub(crate) fn scaler_update_(state: &mut Tensor, growth_interval: u32) -> Result<()> {
        match state.storage_mut()? {
            Storage::Cpu(st) => CpuBackend.scaler_update(st, growth_interval),
            Storage::Gpu(st) => st.ctx().clone().scaler_update(st, growth_interval),
        }
    }
}

/// One parameter of [`crate::ops::Kernels::optim_update_many_`]: the parameter, its gradient, the
/// optimizer's state tensors for it and its weight decay.
pub struct OptimTarget<'a> {
    /// Updated in place.
    pub param: &'a mut Tensor,
    /// Its gradient (f32).
    pub grad: &'a Tensor,
    /// The first state tensor, if the rule has one.
    pub s1: Option<&'a mut Tensor>,
    /// The second state tensor, if the rule has two.
    pub s2: Option<&'a mut Tensor>,
    /// λ for this parameter (0 for biases).
    pub weight_decay: f32,
}

fn as_cpu(s: &mut Storage) -> Option<&mut crate::cpu::CpuStorage> {
    match s {
        Storage::Cpu(c) => Some(c),
        Storage::Gpu(_) => None,
    }
}

fn as_gpu(s: &mut Storage) -> Option<&mut crate::gpu::GpuBuffer> {
    match s {
        Storage::Gpu(b) => Some(b),
        Storage::Cpu(_) => None,
    }
}
