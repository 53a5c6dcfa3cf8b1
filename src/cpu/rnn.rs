//! The fused pointwise work of one time step of a recurrent cell (RNN, GRU, LSTM), forward
//! and backward: the reference of `shaders/rnn.wgsl`. Buffer roles are documented on
//! [`RnnCellFwd`] and [`RnnCellBwd`].
//!
//! Each batch row is a handful of loops over contiguous gate blocks of `H` values, with a
//! branch-free exponential, so the compiler vectorises them; where the CPU has AVX-512 the
//! row functions are compiled a second time for it and chosen at run time. A step's rows are
//! split across the rayon pool when the step is large (`row_blocks`).

use super::*;
use crate::ops::{RnnCell, RnnCellBwd, RnnCellFwd, RnnStep};

/// `eˣ` to about 2 ulp without a branch or a call (so loops over it vectorise): `2ⁿ·p(r)` with
/// `n` the nearest integer to `x·log₂e`, `r = x - n·ln 2` (Cody–Waite, two parts) and `p` the
/// degree-6 Taylor polynomial on `|r| ≤ ln 2 / 2`. Clamped to the finite range of f32 (NaN
/// stays NaN).
#[inline(always)]
fn exp(x: f32) -> f32 {
    // 1.5·2²³: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // `shifted` lies in [2²³, 2²⁴), where the mantissa counts units: its bits less ROUND's
    // are n (two's complement), without `n as i32`, whose saturating conversion does not
    // vectorise (it went lane by lane through scalar registers).
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// `out[k] = f(a[k] + b[k] + c[k])`.
#[inline(always)]
fn sum3(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32) -> f32) {
    for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = f(a + b + c);
    }
}

/// One batch row of a forward step: `x`, `hh`, `bias` are the row's `G·H` projections, `prev`
/// its `h_{t-1}` (`c_{t-1}` for the LSTM), `act` its `S·H` saved values; writes the new state
/// to `h` (and the LSTM's cell state to `c`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fwd_row(
    cell: RnnCell,
    hid: usize,
    x: &[f32],
    hh: &[f32],
    bias: &[f32],
    prev: &[f32],
    act: &mut [f32],
    h: &mut [f32],
    c: &mut [f32],
) {
    match cell {
        RnnCell::Tanh => {
            sum3(&mut act[..hid], x, hh, bias, tanh);
            h.copy_from_slice(&act[..hid]);
        }
        RnnCell::Gru => {
            let (rz, rest) = act.split_at_mut(2 * hid);
            let (n, hn) = rest.split_at_mut(hid);
            sum3(rz, &x[..2 * hid], &hh[..2 * hid], &bias[..2 * hid], sigmoid);
            for ((o, &a), &b) in hn.iter_mut().zip(&hh[2 * hid..]).zip(&bias[2 * hid..]) {
                *o = a + b;
            }
            let (r, z) = rz.split_at(hid);
            for ((((o, &xn), &r), &hn), ((hv, &z), &p)) in n
                .iter_mut()
                .zip(&x[2 * hid..])
                .zip(r)
                .zip(hn.iter())
                .zip(h.iter_mut().zip(z).zip(prev))
            {
                *o = tanh(xn + r * hn);
                *hv = (1.0 - z) * *o + z * p;
            }
        }
        RnnCell::Lstm => {
            let (ifg, o) = act.split_at_mut(3 * hid);
            sum3(
                &mut ifg[..2 * hid],
                &x[..2 * hid],
                &hh[..2 * hid],
                &bias[..2 * hid],
                sigmoid,
            );
            let (x3, h3, b3) = (
                &x[2 * hid..3 * hid],
                &hh[2 * hid..3 * hid],
                &bias[2 * hid..3 * hid],
            );
            sum3(&mut ifg[2 * hid..], x3, h3, b3, tanh);
            sum3(o, &x[3 * hid..], &hh[3 * hid..], &bias[3 * hid..], sigmoid);
            let (i, fg) = ifg.split_at(hid);
            let (f, g) = fg.split_at(hid);
            for ((((cv, hv), &og), (&iv, &fv)), (&gv, &p)) in c
                .iter_mut()
                .zip(h.iter_mut())
                .zip(o.iter())
                .zip(i.iter().zip(f))
                .zip(g.iter().zip(prev))
            {
                *cv = fv * p + iv * gv;
                *hv = og * tanh(*cv);
            }
        }
    }
}

/// One batch row of a backward step: `act` the saved values, `prev` `h_{t-1}` (GRU) or
/// `c_{t-1}` (LSTM), `c` the LSTM's `c_t`, `dh` the total gradient of `h_t`, `dc_in` the
/// LSTM's gradient of `c_t` from step `t + 1`; writes the gate gradients `dx` (input side)
/// and `dhh` (recurrent side), and `dh_out` (GRU: `dh ⊙ z`) or `dc_out` (LSTM: `c_{t-1}`'s).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bwd_row(
    cell: RnnCell,
    hid: usize,
    act: &[f32],
    prev: &[f32],
    c: &[f32],
    dh: &[f32],
    dc_in: &[f32],
    dx: &mut [f32],
    dhh: &mut [f32],
    dh_out: &mut [f32],
    dc_out: &mut [f32],
) {
    match cell {
        RnnCell::Tanh => {
            for (((o, q), &v), &d) in dx.iter_mut().zip(dhh.iter_mut()).zip(act).zip(dh) {
                *o = d * (1.0 - v * v);
                *q = *o;
            }
        }
        RnnCell::Gru => {
            let (r, rest) = act.split_at(hid);
            let (z, rest) = rest.split_at(hid);
            let (n, hn) = rest.split_at(hid);
            let (dxr, dxrest) = dx.split_at_mut(hid);
            let (dxz, dxn) = dxrest.split_at_mut(hid);
            let (dhr, dhrest) = dhh.split_at_mut(hid);
            let (dhz, dhn) = dhrest.split_at_mut(hid);
            for j in 0..hid {
                let d = dh[j];
                let dn = d * (1.0 - z[j]) * (1.0 - n[j] * n[j]);
                let dz = d * (prev[j] - n[j]) * z[j] * (1.0 - z[j]);
                let dr = dn * hn[j] * r[j] * (1.0 - r[j]);
                dxr[j] = dr;
                dxz[j] = dz;
                dxn[j] = dn;
                dhr[j] = dr;
                dhz[j] = dz;
                dhn[j] = dn * r[j];
                dh_out[j] = d * z[j];
            }
        }
        RnnCell::Lstm => {
            let (i, rest) = act.split_at(hid);
            let (f, rest) = rest.split_at(hid);
            let (g, o) = rest.split_at(hid);
            let (di, rest) = dx.split_at_mut(hid);
            let (df, rest) = rest.split_at_mut(hid);
            let (dg, dout) = rest.split_at_mut(hid);
            for j in 0..hid {
                let tc = tanh(c[j]);
                let dct = dc_in[j] + dh[j] * o[j] * (1.0 - tc * tc);
                di[j] = dct * g[j] * i[j] * (1.0 - i[j]);
                df[j] = dct * prev[j] * f[j] * (1.0 - f[j]);
                dg[j] = dct * i[j] * (1.0 - g[j] * g[j]);
                dout[j] = dh[j] * tc * o[j] * (1.0 - o[j]);
                dc_out[j] = dct * f[j];
            }
            dhh.copy_from_slice(dx);
        }
    }
}

/// The row functions compiled for AVX-512 (the same source, vectorised 16 wide).
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::*;

    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn fwd_row(
        cell: RnnCell,
        hid: usize,
        x: &[f32],
        hh: &[f32],
        bias: &[f32],
        prev: &[f32],
        act: &mut [f32],
        h: &mut [f32],
        c: &mut [f32],
    ) {
        super::fwd_row(cell, hid, x, hh, bias, prev, act, h, c)
    }

    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn bwd_row(
        cell: RnnCell,
        hid: usize,
        act: &[f32],
        prev: &[f32],
        c: &[f32],
        dh: &[f32],
        dc_in: &[f32],
        dx: &mut [f32],
        dhh: &mut [f32],
        dh_out: &mut [f32],
        dc_out: &mut [f32],
    ) {
        super::bwd_row(cell, hid, act, prev, c, dh, dc_in, dx, dhh, dh_out, dc_out)
    }
}

/// Whether the AVX-512 row functions can run here.
fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::avx512::supported()
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn missing(op: &'static str, what: &str) -> Error {
    Error::invalid(op, format!("the LSTM needs its {what} buffer"))
}

/// State elements (`batch · hidden`) from which a step's rows are split across the pool.
const CELL_PARALLEL_MIN: usize = 1 << 12;

/// Runs `f(first_row, blocks)` over blocks of a step's `batch` rows: `outs` are the step's
/// output arrays, `widths` their values per row (0 for an array the cell does not use), and
/// each block gets the same rows of every one. The blocks run in parallel when the step has
/// `units ≥ CELL_PARALLEL_MIN` state elements (each row is computed by the same code
/// whatever the split).
fn row_blocks<const K: usize>(
    batch: usize,
    units: usize,
    outs: [&mut [f32]; K],
    widths: [usize; K],
    f: impl Fn(usize, [&mut [f32]; K]) + Sync,
) {
    let threads = rayon::current_num_threads();
    let per = match threads > 1 && units >= CELL_PARALLEL_MIN {
        true => batch.div_ceil(threads),
        false => batch,
    };
    if per >= batch {
        return f(0, outs);
    }
    let f = &f;
    rayon::scope(|sc| {
        let mut rest = outs;
        for b0 in (0..batch).step_by(per) {
            let rows = per.min(batch - b0);
            let block: [&mut [f32]; K] = std::array::from_fn(|k| {
                let (here, after) = std::mem::take(&mut rest[k]).split_at_mut(rows * widths[k]);
                rest[k] = after;
                here
            });
            sc.spawn(move |_| f(b0, block));
        }
    });
}

/// Rows `t` of `v` viewed as `[rows, width]`.
fn row(v: &[f32], t: usize, width: usize) -> &[f32] {
    &v[t * width..(t + 1) * width]
}

impl CpuBackend {
    pub(super) fn rnn_cell(&self, s: &RnnStep, o: RnnCellFwd<'_, CpuStorage>) -> Result<()> {
        const OP: &str = "rnn_cell";
        let (hid, n, t, b) = (s.hidden, s.state(), s.t, s.batch);
        let lstm = s.cell == RnnCell::Lstm;
        let (g, sv) = (s.cell.gates() * hid, s.cell.saved() * hid);
        let xw = row(o.xw.f32s(OP)?, t, b * g);
        let (hh, bias) = (o.hh.f32s(OP)?, o.bias.f32s(OP)?);
        let hprev = o.hprev.f32s_mut(OP)?;
        let act = &mut o.act.f32s_mut(OP)?[t * b * sv..(t + 1) * b * sv];
        let out = o.out.f32s_mut(OP)?;
        let h = &mut o.h.f32s_mut(OP)?[..n];
        let cs = match o.cs {
            Some(c) => Some(c.f32s_mut(OP)?),
            None if lstm => return Err(missing(OP, "cell-state")),
            None => None,
        };
        // The LSTM's c_{t-1} and c_t rows, or (others) an empty c.
        let (prev_c, c_t): (&[f32], &mut [f32]) = match cs {
            Some(cs) => {
                let (before, after) = cs.split_at_mut((t + 1) * n);
                (&before[t * n..], &mut after[..n])
            }
            None => (&[], &mut []),
        };
        let prev_h = &hprev[t * n..(t + 1) * n];
        let wide = wide();
        let widths = [sv, hid, if lstm { hid } else { 0 }];
        row_blocks(b, n, [act, &mut *h, c_t], widths, |b0, [act, h, c]| {
            for (r, (a, hv)) in act
                .chunks_exact_mut(sv)
                .zip(h.chunks_exact_mut(hid))
                .enumerate()
            {
                let bi = b0 + r;
                let (x, hr) = (row(xw, bi, g), row(hh, bi, g));
                let prev = if lstm {
                    row(prev_c, bi, hid)
                } else {
                    row(prev_h, bi, hid)
                };
                let cv: &mut [f32] = if lstm {
                    &mut c[r * hid..(r + 1) * hid]
                } else {
                    &mut []
                };
                if wide {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `wide()` checked that the CPU has AVX-512F.
                    unsafe {
                        wide::fwd_row(s.cell, hid, x, hr, bias, prev, a, hv, cv)
                    };
                } else {
                    fwd_row(s.cell, hid, x, hr, bias, prev, a, hv, cv);
                }
            }
        });
        out[t * n..(t + 1) * n].copy_from_slice(h);
        if t + 1 < s.steps {
            hprev[(t + 1) * n..(t + 2) * n].copy_from_slice(h);
        }
        if lstm && t + 1 == s.steps {
            out[s.steps * n..(s.steps + 1) * n].copy_from_slice(c_t);
        }
        Ok(())
    }

    pub(super) fn rnn_cell_bwd(&self, s: &RnnStep, io: RnnCellBwd<'_, CpuStorage>) -> Result<()> {
        const OP: &str = "rnn_cell_backward";
        let (hid, n, t, b) = (s.hidden, s.state(), s.t, s.batch);
        let last = t + 1 == s.steps;
        let (g, sv) = (s.cell.gates() * hid, s.cell.saved() * hid);
        let act = row(io.act.f32s(OP)?, t, b * sv);
        let gout = io.gout.f32s(OP)?;
        let dh = &mut io.dh.f32s_mut(OP)?[..n];
        // The total gradient of h_t: the output's, plus the recurrent one but at the last step.
        let mut dh_t = row(gout, t, n).to_vec();
        if !last {
            dh_t.iter_mut().zip(dh.iter()).for_each(|(a, &b)| *a += b);
        }
        let dxw = &mut io.dxw.f32s_mut(OP)?[t * b * g..(t + 1) * b * g];
        let dhh = &mut io.dhh.f32s_mut(OP)?[..b * g];
        let (prev, c, dc_in, dc) = match s.cell {
            RnnCell::Lstm => {
                let cs = io.cs.ok_or_else(|| missing(OP, "cell-state"))?.f32s(OP)?;
                let dc = io.dc.ok_or_else(|| missing(OP, "dc"))?.f32s_mut(OP)?;
                let dc_in = if last {
                    row(gout, s.steps, n).to_vec()
                } else {
                    dc[..n].to_vec()
                };
                (row(cs, t, n), row(cs, t + 1, n), dc_in, Some(dc))
            }
            RnnCell::Gru => (row(io.hprev.f32s(OP)?, t, n), &[][..], Vec::new(), None),
            RnnCell::Tanh => (&[][..], &[][..], Vec::new(), None),
        };
        let (lstm, gru) = (s.cell == RnnCell::Lstm, s.cell == RnnCell::Gru);
        let wide = wide();
        let dho: &mut [f32] = if gru { dh } else { &mut [] };
        let dco: &mut [f32] = match dc {
            Some(dc) => &mut dc[..n],
            None => &mut [],
        };
        let widths = [g, g, if gru { hid } else { 0 }, if lstm { hid } else { 0 }];
        row_blocks(
            b,
            n,
            [dxw, &mut *dhh, dho, dco],
            widths,
            |b0, [dx, dq, dho, dco]| {
                for (r, (dx, dq)) in dx
                    .chunks_exact_mut(g)
                    .zip(dq.chunks_exact_mut(g))
                    .enumerate()
                {
                    let bi = b0 + r;
                    let a = row(act, bi, sv);
                    let p = if lstm || gru { row(prev, bi, hid) } else { &[] };
                    let cv = if lstm { row(c, bi, hid) } else { &[] };
                    let dci = if lstm { row(&dc_in, bi, hid) } else { &[] };
                    let d = row(&dh_t, bi, hid);
                    let dho: &mut [f32] = if gru {
                        &mut dho[r * hid..(r + 1) * hid]
                    } else {
                        &mut []
                    };
                    let dco: &mut [f32] = if lstm {
                        &mut dco[r * hid..(r + 1) * hid]
                    } else {
                        &mut []
                    };
                    if wide {
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `wide()` checked that the CPU has AVX-512F.
                        unsafe {
                            wide::bwd_row(s.cell, hid, a, p, cv, d, dci, dx, dq, dho, dco)
                        };
                    } else {
                        bwd_row(s.cell, hid, a, p, cv, d, dci, dx, dq, dho, dco);
                    }
                }
            },
        );
        if let Some(all) = io.dhh_all {
            all.f32s_mut(OP)?[t * b * g..(t + 1) * b * g].copy_from_slice(dhh);
        }
        Ok(())
    }
}
