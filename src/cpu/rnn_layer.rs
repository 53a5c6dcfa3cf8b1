//! A recurrent layer's loop over its time steps, forward and backward (`Backend::rnn_layer`,
//! `Backend::rnn_layer_bwd`), with `W_hh` prepared for the GEMM once per sequence rather than
//! once per step: every step multiplies a few rows (the batch) by the same `[H, G·H]`
//! operand, and repacking that megabyte was a third of an LSTM training step. The products go
//! through `gemm_packed`, split across the pool; the pointwise work of each step is `rnn.rs`'s
//! cell kernel.

use super::gemm::{PackedB, gemm_packed};
use super::*;
use crate::ops::{RnnCell, RnnLayerBwd, RnnLayerFwd};

/// `W_hh` `[G·H, H]` as a GEMM operand: `[H, G·H]` (`W_hhᵀ`, read through strides) for the
/// forward's `h·W_hhᵀ`, `[G·H, H]` for the backward's `dhh·W_hh`.
fn weight<'a>(
    w: &'a CpuStorage,
    s: &RnnStep,
    transposed: bool,
    scratch: &'a mut CpuStorage,
    op: &'static str,
) -> Result<PackedB<'a>> {
    let (gh, hid) = (s.cell.gates() * s.hidden, s.hidden);
    let w = w.f32s(op)?;
    if w.len() < gh * hid {
        return Err(Error::invalid(
            op,
            format!(
                "weight_hh holds {} values, [{gh}, {hid}] needs more",
                w.len()
            ),
        ));
    }
    let scratch = scratch.f32s_mut(op)?;
    Ok(match transposed {
        true => PackedB::new(hid, gh, Mat::new(w, 1, hid), scratch),
        false => PackedB::new(gh, hid, Mat::new(w, hid, 1), scratch),
    })
}

/// Runs `f` on a thread of the rayon pool (in place when this is one already): the packing
/// and every product of the loop then fork from inside the pool, where the other threads pick up their parts
/// as they spin, rather than being injected from outside with a wake-up and a blocking wait
/// each.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

impl CpuBackend {
    pub(super) fn rnn_layer(&self, s: &RnnStep, o: RnnLayerFwd<'_, CpuStorage>) -> Result<()> {
        const OP: &str = "rnn_layer";
        let (dt, gh, hid) = (DType::F32, s.cell.gates() * s.hidden, s.hidden);
        let mut scratch = self.alloc(PackedB::scratch_len(hid, gh), dt, OP)?;
        let mut h = self.alloc(s.state(), dt, OP)?;
        let mut hh = self.alloc(s.batch * gh, dt, OP)?;
        let mut cs = o.cs;
        on_pool(|| {
            let wt = weight(o.w_hh, s, true, &mut scratch, OP)?;
            for t in 0..s.steps {
                let prev = if t == 0 { o.h0 } else { &h }.f32s(OP)?;
                if prev.len() < s.state() {
                    return Err(Error::invalid(OP, "the initial state is short"));
                }
                gemm_packed(
                    s.batch,
                    1.0,
                    Mat::new(prev, hid, 1),
                    &wt,
                    0.0,
                    hh.f32s_mut(OP)?,
                );
                let bufs = RnnCellFwd {
                    xw: o.xw,
                    hh: &hh,
                    bias: o.bias,
                    hprev: &mut *o.hprev,
                    cs: cs.as_deref_mut(),
                    act: &mut *o.act,
                    out: &mut *o.out,
                    h: &mut h,
                };
                self.rnn_cell(&RnnStep { t, ..*s }, bufs)?;
            }
            Ok(())
        })
    }

    pub(super) fn rnn_layer_bwd(&self, s: &RnnStep, o: RnnLayerBwd<'_, CpuStorage>) -> Result<()> {
        const OP: &str = "rnn_layer_backward";
        let (dt, gh, hid) = (DType::F32, s.cell.gates() * s.hidden, s.hidden);
        let mut scratch = self.alloc(PackedB::scratch_len(gh, hid), dt, OP)?;
        let mut dhh = self.alloc(s.batch * gh, dt, OP)?;
        // The GRU's cell leaves the part of h_{t-1}'s gradient that bypasses W_hh in dh.
        let beta = if s.cell == RnnCell::Gru { 1.0 } else { 0.0 };
        let (mut dc, mut dhh_all) = (o.dc, o.dhh_all);
        on_pool(|| {
            let w = weight(o.w_hh, s, false, &mut scratch, OP)?;
            for t in (0..s.steps).rev() {
                let bufs = RnnCellBwd {
                    act: o.act,
                    hprev: o.hprev,
                    cs: o.cs,
                    gout: o.gout,
                    dh: &mut *o.dh,
                    dc: dc.as_deref_mut(),
                    dxw: &mut *o.dxw,
                    dhh: &mut dhh,
                    dhh_all: dhh_all.as_deref_mut(),
                };
                // The RNN's and LSTM's recurrent-side gradient is the step's row of dxw:
                // multiplied where it is, not copied.
                let gru = s.cell == RnnCell::Gru;
                self.cell_bwd(&RnnStep { t, ..*s }, bufs, false)?;
                let a = match gru {
                    true => Mat::new(dhh.f32s(OP)?, gh, 1),
                    false => Mat::new(&o.dxw.f32s(OP)?[t * s.batch * gh..], gh, 1),
                };
                gemm_packed(s.batch, 1.0, a, &w, beta, o.dh.f32s_mut(OP)?);
            }
            Ok(())
        })
    }
}
