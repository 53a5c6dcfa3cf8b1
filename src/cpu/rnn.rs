//! The fused pointwise work of one time step of a recurrent cell (RNN, GRU, LSTM), forward
//! and backward: the reference of `shaders/rnn.wgsl`. Buffer roles are documented on
//! `Backend::rnn_cell` and `Backend::rnn_cell_bwd`.

use super::*;
use crate::ops::{RnnCell, RnnCellBwd, RnnCellFwd, RnnStep};

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn missing(op: &'static str, what: &str) -> Error {
    Error::invalid(op, format!("the LSTM needs its {what} buffer"))
}

impl CpuBackend {
    pub(super) fn rnn_cell(&self, s: &RnnStep, o: RnnCellFwd<'_, CpuStorage>) -> Result<()> {
        const OP: &str = "rnn_cell";
        let (hid, n, t) = (s.hidden, s.state(), s.t);
        let g = s.cell.gates() * hid;
        let xw = &o.xw.f32s(OP)?[t * s.batch * g..(t + 1) * s.batch * g];
        let (hh, bias) = (o.hh.f32s(OP)?, o.bias.f32s(OP)?);
        let hprev = o.hprev.f32s_mut(OP)?;
        let sv = s.cell.saved() * hid;
        let act = &mut o.act.f32s_mut(OP)?[t * s.batch * sv..(t + 1) * s.batch * sv];
        let out = o.out.f32s_mut(OP)?;
        let h = o.h.f32s_mut(OP)?;
        let mut cs = match o.cs {
            Some(c) => Some(c.f32s_mut(OP)?),
            None => None,
        };
        for b in 0..s.batch {
            let (xr, hr) = (&xw[b * g..(b + 1) * g], &hh[b * g..(b + 1) * g]);
            let ar = &mut act[b * sv..(b + 1) * sv];
            for j in 0..hid {
                let pre = |k: usize| xr[k * hid + j] + hr[k * hid + j] + bias[k * hid + j];
                let e = b * hid + j;
                let new_h = match s.cell {
                    RnnCell::Tanh => {
                        let v = pre(0).tanh();
                        ar[j] = v;
                        v
                    }
                    RnnCell::Gru => {
                        let r = sigmoid(pre(0));
                        let z = sigmoid(pre(1));
                        let hn = hr[2 * hid + j] + bias[2 * hid + j];
                        let nn = (xr[2 * hid + j] + r * hn).tanh();
                        ar[j] = r;
                        ar[hid + j] = z;
                        ar[2 * hid + j] = nn;
                        ar[3 * hid + j] = hn;
                        (1.0 - z) * nn + z * hprev[t * n + e]
                    }
                    RnnCell::Lstm => {
                        let cs = cs.as_deref_mut().ok_or_else(|| missing(OP, "cell-state"))?;
                        let ig = sigmoid(pre(0));
                        let fg = sigmoid(pre(1));
                        let gg = pre(2).tanh();
                        let og = sigmoid(pre(3));
                        ar[j] = ig;
                        ar[hid + j] = fg;
                        ar[2 * hid + j] = gg;
                        ar[3 * hid + j] = og;
                        let c = fg * cs[t * n + e] + ig * gg;
                        cs[(t + 1) * n + e] = c;
                        if t + 1 == s.steps {
                            out[s.steps * n + e] = c;
                        }
                        og * c.tanh()
                    }
                };
                out[t * n + e] = new_h;
                h[e] = new_h;
                if t + 1 < s.steps {
                    hprev[(t + 1) * n + e] = new_h;
                }
            }
        }
        Ok(())
    }

    pub(super) fn rnn_cell_bwd(&self, s: &RnnStep, io: RnnCellBwd<'_, CpuStorage>) -> Result<()> {
        const OP: &str = "rnn_cell_backward";
        let (hid, n, t) = (s.hidden, s.state(), s.t);
        let last = t + 1 == s.steps;
        let g = s.cell.gates() * hid;
        let sv = s.cell.saved() * hid;
        let act = &io.act.f32s(OP)?[t * s.batch * sv..(t + 1) * s.batch * sv];
        let hprev = io.hprev.f32s(OP)?;
        let gout = io.gout.f32s(OP)?;
        let dh = io.dh.f32s_mut(OP)?;
        let dxw = &mut io.dxw.f32s_mut(OP)?[t * s.batch * g..(t + 1) * s.batch * g];
        let dhh = io.dhh.f32s_mut(OP)?;
        let mut dhh_all = match io.dhh_all {
            Some(d) => Some(&mut d.f32s_mut(OP)?[t * s.batch * g..(t + 1) * s.batch * g]),
            None => None,
        };
        let cs = match io.cs {
            Some(c) => Some(c.f32s(OP)?),
            None => None,
        };
        let mut dc = match io.dc {
            Some(d) => Some(d.f32s_mut(OP)?),
            None => None,
        };
        for b in 0..s.batch {
            let ar = &act[b * sv..(b + 1) * sv];
            for j in 0..hid {
                let e = b * hid + j;
                let dh_t = gout[t * n + e] + if last { 0.0 } else { dh[e] };
                let row = b * g;
                match s.cell {
                    RnnCell::Tanh => {
                        let v = ar[j];
                        let d = dh_t * (1.0 - v * v);
                        dxw[row + j] = d;
                        dhh[row + j] = d;
                    }
                    RnnCell::Gru => {
                        let (r, z, nn, hn) = (ar[j], ar[hid + j], ar[2 * hid + j], ar[3 * hid + j]);
                        let dn = dh_t * (1.0 - z) * (1.0 - nn * nn);
                        let dz = dh_t * (hprev[t * n + e] - nn) * z * (1.0 - z);
                        let dr = dn * hn * r * (1.0 - r);
                        dxw[row + j] = dr;
                        dxw[row + hid + j] = dz;
                        dxw[row + 2 * hid + j] = dn;
                        dhh[row + j] = dr;
                        dhh[row + hid + j] = dz;
                        dhh[row + 2 * hid + j] = dn * r;
                        if let Some(all) = dhh_all.as_deref_mut() {
                            all[row + j] = dr;
                            all[row + hid + j] = dz;
                            all[row + 2 * hid + j] = dn * r;
                        }
                        dh[e] = dh_t * z;
                    }
                    RnnCell::Lstm => {
                        let cs = cs.ok_or_else(|| missing(OP, "cell-state"))?;
                        let dc = dc.as_deref_mut().ok_or_else(|| missing(OP, "dc"))?;
                        let (ig, fg, gg, og) =
                            (ar[j], ar[hid + j], ar[2 * hid + j], ar[3 * hid + j]);
                        let c = cs[(t + 1) * n + e];
                        let tc = c.tanh();
                        let dc_in = if last { gout[s.steps * n + e] } else { dc[e] };
                        let dct = dc_in + dh_t * og * (1.0 - tc * tc);
                        let d = [
                            dct * gg * ig * (1.0 - ig),
                            dct * cs[t * n + e] * fg * (1.0 - fg),
                            dct * ig * (1.0 - gg * gg),
                            dh_t * tc * og * (1.0 - og),
                        ];
                        for (k, v) in d.into_iter().enumerate() {
                            dxw[row + k * hid + j] = v;
                            dhh[row + k * hid + j] = v;
                        }
                        dc[e] = dct * fg;
                    }
                }
            }
        }
        Ok(())
    }
}
