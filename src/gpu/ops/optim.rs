//! The optimizer family (`shaders/optim.wgsl`): one parameter tensor per dispatch, or up to
//! [`MULTI_SLOTS`] tensors in one dispatch (a multi-tensor step, as PyTorch's `foreach` /
//! fused optimizers), where the adapter allows the 4·7 + 1 storage bindings.

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{KernelDef, optim as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::{OptimKind, OptimStep};

/// Tensors one `update_multi` dispatch updates.
pub(crate) const MULTI_SLOTS: usize = 7;

uniform! {
    /// The uniform block of optim.wgsl (`struct Params`).
    pub(crate) struct OptimParams {
        n: u32,
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        wd: f32,
        lr_t: f32,
        /// Adam's `t` (saturating), for the bias correction after skipped steps.
        t: u32,
        ln_beta1: f32,
        ln_beta2: f32,
        /// Tensors in an `update_multi` dispatch.
        count: u32,
        _p0: u32,
        /// First element of each slot in the dispatch's index space (two vec4s in WGSL).
        starts: [u32; 8],
        /// Each slot's weight decay.
        wds: [f32; 8],
    }
}

impl OptimParams {
    fn new(s: &OptimStep, n: usize) -> Result<OptimParams> {
        let (ln_beta1, ln_beta2) = s.ln_betas();
        Ok(OptimParams {
            n: u32_of(OP, n)?,
            lr: s.lr,
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.eps,
            wd: s.weight_decay,
            lr_t: s.lr_t,
            t: u32::try_from(s.t).unwrap_or(u32::MAX),
            ln_beta1,
            ln_beta2,
            count: 1,
            _p0: 0,
            starts: [0; 8],
            wds: [0.0; 8],
        })
    }
}

const OP: &str = "optimizer update";

/// The rule's index in optim.wgsl (`KIND`).
fn kind_index(k: OptimKind) -> u32 {
    match k {
        OptimKind::Sgd => 0,
        OptimKind::Momentum => 1,
        OptimKind::Nesterov => 2,
        OptimKind::AdaGrad => 3,
        OptimKind::RmsProp => 4,
        OptimKind::Adam => 5,
        OptimKind::AdamW => 6,
    }
}

/// `kernel` specialised for the rule `kind`.
fn key(kernel: &'static KernelDef, kind: OptimKind) -> KernelKey {
    KernelKey::new(kernel)
        .constant("KIND", kind_index(kind))
        .constant("STATES", kind.state_count() as u32)
}

/// One parameter of a multi-tensor update: its values, gradient, state tensors (as many as
/// the rule has), element count and weight decay.
pub struct OptimSlot<'a> {
    /// The parameter, updated in place.
    pub w: &'a mut GpuBuffer,
    /// Its gradient.
    pub g: &'a GpuBuffer,
    /// The first state tensor (velocity, h or Adam's m).
    pub s1: Option<&'a mut GpuBuffer>,
    /// The second (Adam's v).
    pub s2: Option<&'a mut GpuBuffer>,
    /// Elements.
    pub n: usize,
    /// Weight decay λ of this parameter (0 for biases).
    pub weight_decay: f32,
}

impl OptimSlot<'_> {
    /// (w, g, s1, s2) to bind; a missing state binds the parameter (never written then).
    fn buffers(&self, kind: OptimKind) -> Result<[&GpuBuffer; 4]> {
        let need = kind.state_count();
        let have = self.s1.is_some() as usize + self.s2.is_some() as usize;
        if have < need {
            return Err(Error::invalid(
                OP,
                format!("{kind:?} needs {need} state tensors, got {have}"),
            ));
        }
        let w: &GpuBuffer = self.w;
        Ok([
            w,
            self.g,
            self.s1.as_deref().unwrap_or(w),
            self.s2.as_deref().unwrap_or(w),
        ])
    }
}

impl GpuContext {
    /// One tensor's update (`update`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn optim_single(
        &self,
        s: &OptimStep,
        w: &mut GpuBuffer,
        g: &GpuBuffer,
        s1: Option<&mut GpuBuffer>,
        s2: Option<&mut GpuBuffer>,
        guard: &GpuBuffer,
        n: usize,
    ) -> Result<()> {
        let slot = OptimSlot {
            w,
            g,
            s1,
            s2,
            n,
            weight_decay: s.weight_decay,
        };
        let [w, g, s1, s2] = slot.buffers(s.kind)?;
        let p = OptimParams::new(s, n)?;
        self.dispatch(
            &key(&k::UPDATE, s.kind),
            bytemuck::bytes_of(&p),
            &[(1, w), (2, g), (3, s1), (4, s2), (5, guard)],
            self.grid(n, 256)?,
        )
    }

    /// Updates every slot with rule `s` (its `weight_decay` is taken per slot): one dispatch
    /// per `MULTI_SLOTS` (7) tensors, or one per tensor where the adapter allows fewer than
    /// the 29 storage bindings of `update_multi`.
    pub fn optim_update_many(
        &self,
        s: &OptimStep,
        slots: &mut [OptimSlot<'_>],
        guard: &GpuBuffer,
    ) -> Result<()> {
        if (self.max_storage_buffers as usize) < 4 * MULTI_SLOTS + 1 {
            for slot in slots.iter_mut() {
                let step = OptimStep {
                    weight_decay: slot.weight_decay,
                    ..*s
                };
                self.optim_single(
                    &step,
                    slot.w,
                    slot.g,
                    slot.s1.as_deref_mut(),
                    slot.s2.as_deref_mut(),
                    guard,
                    slot.n,
                )?;
            }
            return Ok(());
        }
        for group in slots.chunks(MULTI_SLOTS) {
            let mut p = OptimParams::new(s, 0)?;
            let mut total = 0usize;
            let mut bindings: Vec<(u32, &GpuBuffer)> = Vec::with_capacity(4 * MULTI_SLOTS + 1);
            for (j, slot) in group.iter().enumerate() {
                p.starts[j] = u32_of(OP, total)?;
                p.wds[j] = slot.weight_decay;
                total += slot.n;
                for (b, buf) in slot.buffers(s.kind)?.into_iter().enumerate() {
                    bindings.push((10 + 4 * j as u32 + b as u32, buf));
                }
            }
            if total == 0 {
                continue;
            }
            // Unused slots repeat slot 0 (never reached: their start is past the end).
            let first = group[0].buffers(s.kind)?;
            for j in group.len()..MULTI_SLOTS {
                p.starts[j] = u32_of(OP, total)?;
                for (b, buf) in first.into_iter().enumerate() {
                    bindings.push((10 + 4 * j as u32 + b as u32, buf));
                }
            }
            p.n = u32_of(OP, total)?;
            p.count = group.len() as u32;
            bindings.push((5, guard));
            self.dispatch(
                &key(&k::UPDATE_MULTI, s.kind),
                bytemuck::bytes_of(&p),
                &bindings,
                self.grid(total, 256)?,
            )?;
        }
        Ok(())
    }
}
