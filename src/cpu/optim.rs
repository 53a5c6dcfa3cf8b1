//! The optimizer update rules (`OptimKind`) and the dynamic loss scaler's state ops.

#[allow(unused_imports)]
use super::*;

impl CpuBackend {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn optim_update(
        &self,
        s: &OptimStep,
        w: &mut CpuStorage,
        g: &CpuStorage,
        s1: Option<&mut CpuStorage>,
        s2: Option<&mut CpuStorage>,
        guard: &CpuStorage,
        n: usize,
    ) -> Result<()> {
        const OP: &str = "optimizer update";
        let guard = guard.u32s(OP)?;
        if guard.get(1).copied().unwrap_or(0) != 0 {
            return Ok(()); // the loss scaler saw a non-finite gradient: skip the step
        }
        let scale = f32::from_bits(guard[0]);
        let lr_t = s.adam_lr_t(guard.get(3).copied().unwrap_or(0));
        let need = s.kind.state_count();
        let have = s1.is_some() as usize + s2.is_some() as usize;
        if have < need {
            return Err(Error::invalid(
                OP,
                format!("{:?} needs {need} state tensors, got {have}", s.kind),
            ));
        }
        let (w, g) = (&mut w.f32s_mut(OP)?[..n], &g.f32s(OP)?[..n]);
        let mut s1 = match s1 {
            Some(b) => Some(&mut b.f32s_mut(OP)?[..n]),
            None => None,
        };
        let mut s2 = match s2 {
            Some(b) => Some(&mut b.f32s_mut(OP)?[..n]),
            None => None,
        };
        // The same expressions, in the same order, as shaders/optim.wgsl.
        if s.kind == OptimKind::Sgd {
            // Plain SGD (d2l's language models) as one loop the compiler vectorises.
            for (w, &g) in w.iter_mut().zip(g) {
                let gi = g / scale + s.weight_decay * *w;
                *w -= s.lr * gi;
            }
            return Ok(());
        }
        for i in 0..n {
            let l2 = if s.kind == OptimKind::AdamW {
                0.0
            } else {
                s.weight_decay
            };
            let gi = g[i] / scale + l2 * w[i];
            match s.kind {
                OptimKind::Sgd => w[i] -= s.lr * gi,
                OptimKind::Momentum => {
                    let v = s1
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *v = s.beta1 * *v - s.lr * gi;
                    w[i] += *v;
                }
                OptimKind::Nesterov => {
                    let v = s1
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *v = s.beta1 * *v - s.lr * gi;
                    w[i] += s.beta1 * s.beta1 * *v - (1.0 + s.beta1) * s.lr * gi;
                }
                OptimKind::AdaGrad => {
                    let h = s1
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *h += gi * gi;
                    w[i] -= s.lr * gi / (h.sqrt() + s.eps);
                }
                OptimKind::RmsProp => {
                    let h = s1
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *h = s.beta1 * *h + (1.0 - s.beta1) * gi * gi;
                    w[i] -= s.lr * gi / (h.sqrt() + s.eps);
                }
                OptimKind::Adam | OptimKind::AdamW => {
                    let m = s1
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *m += (1.0 - s.beta1) * (gi - *m);
                    let mi = *m;
                    let v = s2
                        .as_deref_mut()
                        .map(|v| &mut v[i])
                        .ok_or_else(|| Error::invalid(OP, "missing state"))?;
                    *v += (1.0 - s.beta2) * (gi * gi - *v);
                    // AdamW's decoupled decay; × 1 leaves Adam's w bit for bit.
                    let keep = if s.kind == OptimKind::AdamW {
                        1.0 - s.lr * s.weight_decay
                    } else {
                        1.0
                    };
                    w[i] = w[i] * keep - lr_t * mi / (v.sqrt() + s.eps);
                }
            }
        }
        Ok(())
    }

    pub(super) fn scaler_init(&self, state: &mut CpuStorage, init_scale: f32) -> Result<()> {
        state.u32s_mut("scaler")?[..4].copy_from_slice(&[init_scale.to_bits(), 0, 0, 0]);
        Ok(())
    }

    pub(super) fn scaler_scale(
        &self,
        x: &mut CpuStorage,
        state: &CpuStorage,
        n: usize,
    ) -> Result<()> {
        let scale = f32::from_bits(state.u32s("scaler")?[0]);
        match x {
            CpuStorage::F32(v) => v[..n].iter_mut().for_each(|v| *v *= scale),
            CpuStorage::F16(v) => v[..n]
                .iter_mut()
                .for_each(|v| *v = f16::from_f32(v.to_f32() * scale)),
            other => {
                return Err(Error::DTypeMismatch {
                    op: "scaler",
                    expected: DType::F32,
                    got: other.dtype(),
                });
            }
        }
        Ok(())
    }

    pub(super) fn scaler_check(
        &self,
        x: &CpuStorage,
        state: &mut CpuStorage,
        n: usize,
    ) -> Result<()> {
        let bad = match x {
            CpuStorage::F32(v) => v[..n].iter().any(|v| !v.is_finite()),
            CpuStorage::F16(v) => v[..n].iter().any(|v| !v.is_finite()),
            other => {
                return Err(Error::DTypeMismatch {
                    op: "scaler",
                    expected: DType::F32,
                    got: other.dtype(),
                });
            }
        };
        if bad {
            state.u32s_mut("scaler")?[1] = 1;
        }
        Ok(())
    }

    pub(super) fn scaler_update(&self, state: &mut CpuStorage, growth_interval: u32) -> Result<()> {
        // The same steps as shaders/scaler.wgsl `update`.
        let st = state.u32s_mut("scaler")?;
        let mut scale = f32::from_bits(st[0]);
        if st[1] != 0 {
            scale *= 0.5;
            st[2] = 0;
            st[3] += 1;
        } else {
            st[2] += 1;
            if st[2] >= growth_interval {
                scale *= 2.0;
                st[2] = 0;
            }
        }
        st[0] = scale.to_bits();
        st[1] = 0;
        Ok(())
    }
}
