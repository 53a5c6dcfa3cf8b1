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

/// `out[k] = a[k] + b[k] + c[k]`.
#[inline(always)]
fn add3(out: &mut [f32], a: &[f32], b: &[f32], c: &[f32]) {
    for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = a + b + c;
    }
}

/// The cells' activations, applied in place over a slice: the row functions are written once
/// over this trait and compiled with [`Portable`] (plain loops the compiler vectorises) and,
/// where the CPU has it, `wide::Avx512` (the same exponential, with the division replaced by
/// a reciprocal estimate and one Newton step, several times the division's throughput).
trait Act {
    fn sigmoid(v: &mut [f32]);
    fn tanh(v: &mut [f32]);
}

/// [`Act`] in plain Rust.
struct Portable;

impl Act for Portable {
    #[inline(always)]
    fn sigmoid(v: &mut [f32]) {
        v.iter_mut().for_each(|x| *x = sigmoid(*x));
    }

    #[inline(always)]
    fn tanh(v: &mut [f32]) {
        v.iter_mut().for_each(|x| *x = tanh(*x));
    }
}

/// One batch row of a forward step: `x`, `hh`, `bias` are the row's `G·H` projections, `prev`
/// its `h_{t-1}` (`c_{t-1}` for the LSTM), `act` its `S·H` saved values; writes the new state
/// to `h` (and the LSTM's cell state to `c`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fwd_row<A: Act>(
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
            let a = &mut act[..hid];
            add3(a, x, hh, bias);
            A::tanh(a);
            h.copy_from_slice(a);
        }
        RnnCell::Gru => {
            let (rz, rest) = act.split_at_mut(2 * hid);
            let (n, hn) = rest.split_at_mut(hid);
            add3(rz, &x[..2 * hid], &hh[..2 * hid], &bias[..2 * hid]);
            A::sigmoid(rz);
            for ((o, &a), &b) in hn.iter_mut().zip(&hh[2 * hid..]).zip(&bias[2 * hid..]) {
                *o = a + b;
            }
            let (r, z) = rz.split_at(hid);
            for (((o, &xn), &r), &hn) in n.iter_mut().zip(&x[2 * hid..]).zip(r).zip(hn.iter()) {
                *o = xn + r * hn;
            }
            A::tanh(n);
            for (((hv, &n), &z), &p) in h.iter_mut().zip(n.iter()).zip(z).zip(prev) {
                *hv = (1.0 - z) * n + z * p;
            }
        }
        RnnCell::Lstm => {
            let (ifg, o) = act.split_at_mut(3 * hid);
            let (x, hh, bias) = (&x[..4 * hid], &hh[..4 * hid], &bias[..4 * hid]);
            add3(
                &mut ifg[..2 * hid],
                &x[..2 * hid],
                &hh[..2 * hid],
                &bias[..2 * hid],
            );
            A::sigmoid(&mut ifg[..2 * hid]);
            let g = &mut ifg[2 * hid..];
            add3(
                g,
                &x[2 * hid..3 * hid],
                &hh[2 * hid..3 * hid],
                &bias[2 * hid..3 * hid],
            );
            A::tanh(g);
            add3(o, &x[3 * hid..], &hh[3 * hid..], &bias[3 * hid..]);
            A::sigmoid(o);
            let (i, fg) = ifg.split_at(hid);
            let (f, g) = fg.split_at(hid);
            for ((cv, (&iv, &fv)), (&gv, &p)) in
                c.iter_mut().zip(i.iter().zip(f)).zip(g.iter().zip(prev))
            {
                *cv = fv * p + iv * gv;
            }
            // h = o ⊙ tanh(c), tanh taken in place in h.
            h.copy_from_slice(c);
            A::tanh(h);
            h.iter_mut().zip(o.iter()).for_each(|(hv, &og)| *hv *= og);
        }
    }
}

/// One batch row of a backward step: `act` the saved values, `prev` `h_{t-1}` (GRU) or
/// `c_{t-1}` (LSTM), `c` the LSTM's `c_t`, `dh` the total gradient of `h_t`, `dc_in` the
/// LSTM's gradient of `c_t` from step `t + 1`; writes the gate gradients `dx` (input side)
/// and `dhh` (recurrent side: for the RNN and LSTM a copy of `dx`, skipped when `dhh` is
/// empty), and `dh_out` (GRU: `dh ⊙ z`) or `dc_out` (LSTM: `c_{t-1}`'s).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bwd_row<A: Act>(
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
            for ((o, &v), &d) in dx.iter_mut().zip(act).zip(dh) {
                *o = d * (1.0 - v * v);
            }
            if !dhh.is_empty() {
                dhh.copy_from_slice(dx);
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
            // tanh(c_t) first, in the o gate's slot (each unit reads it before writing it).
            dout.copy_from_slice(&c[..hid]);
            A::tanh(dout);
            for j in 0..hid {
                let tc = dout[j];
                let dct = dc_in[j] + dh[j] * o[j] * (1.0 - tc * tc);
                di[j] = dct * g[j] * i[j] * (1.0 - i[j]);
                df[j] = dct * prev[j] * f[j] * (1.0 - f[j]);
                dg[j] = dct * i[j] * (1.0 - g[j] * g[j]);
                dout[j] = dh[j] * tc * o[j] * (1.0 - o[j]);
                dc_out[j] = dct * f[j];
            }
            if !dhh.is_empty() {
                dhh.copy_from_slice(dx);
            }
        }
    }
}

/// The row functions compiled for AVX-512 (the same source, vectorised 16 wide), with the
/// activations of [`wide::Avx512`].
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::*;
    use std::arch::x86_64::*;

    /// [`Act`] in AVX-512 intrinsics: only used by the `target_feature` functions below.
    pub(super) struct Avx512;

    impl Act for Avx512 {
        #[inline(always)]
        fn sigmoid(v: &mut [f32]) {
            // SAFETY: only the AVX-512 row functions below use `Avx512`.
            unsafe { each16::<false>(v) }
        }

        #[inline(always)]
        fn tanh(v: &mut [f32]) {
            // SAFETY: as in `sigmoid`.
            unsafe { each16::<true>(v) }
        }
    }

    /// `v[k] = tanh(v[k])` (`TANH`) or `sigmoid(v[k])`, sixteen at a time (the tail masked).
    ///
    /// # Safety
    /// AVX-512F must be present.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn each16<const TANH: bool>(v: &mut [f32]) {
        let f = |x| match TANH {
            true => tanh16(x),
            false => sigmoid16(x),
        };
        let mut chunks = v.chunks_exact_mut(16);
        for c in &mut chunks {
            // SAFETY: 16 values of `c`, read and written; AVX-512F by the contract.
            unsafe { _mm512_storeu_ps(c.as_mut_ptr(), f(_mm512_loadu_ps(c.as_ptr()))) };
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mask = ((1u32 << tail.len()) - 1) as __mmask16;
            // SAFETY: the masked lanes are the tail's values.
            unsafe {
                let x = _mm512_maskz_loadu_ps(mask, tail.as_ptr());
                _mm512_mask_storeu_ps(tail.as_mut_ptr(), mask, f(x));
            }
        }
    }

    /// [`super::exp`] on sixteen lanes (fused multiply-adds, so the last bit may differ).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn exp16(x: __m512) -> __m512 {
        const ROUND: f32 = 12_582_912.0;
        let s = _mm512_set1_ps;
        // max/min return their second operand when either is NaN: NaN stays NaN.
        let x = _mm512_min_ps(s(88.0), _mm512_max_ps(s(-87.0), x));
        let shifted = _mm512_fmadd_ps(x, s(std::f32::consts::LOG2_E), s(ROUND));
        let n = _mm512_sub_ps(shifted, s(ROUND));
        let r = _mm512_fnmadd_ps(n, s(0.693_359_4), x);
        let r = _mm512_fmadd_ps(n, s(2.121_944_4e-4), r);
        let mut p = s(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, s(c));
        }
        let n_bits = _mm512_sub_epi32(
            _mm512_castps_si512(shifted),
            _mm512_set1_epi32(ROUND.to_bits() as i32),
        );
        let scale = _mm512_slli_epi32::<23>(_mm512_add_epi32(n_bits, _mm512_set1_epi32(127)));
        _mm512_mul_ps(p, _mm512_castsi512_ps(scale))
    }

    /// `1 / d`: the 14-bit estimate and one Newton step (about 1 ulp).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn recip16(d: __m512) -> __m512 {
        let r = _mm512_rcp14_ps(d);
        _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
    }

    /// `1 / (1 + e^{-x})`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn sigmoid16(x: __m512) -> __m512 {
        let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
        recip16(_mm512_add_ps(_mm512_set1_ps(1.0), e))
    }

    /// `1 - 2 / (e^{2x} + 1)`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn tanh16(x: __m512) -> __m512 {
        let e = exp16(_mm512_add_ps(x, x));
        let q = recip16(_mm512_add_ps(e, _mm512_set1_ps(1.0)));
        _mm512_fnmadd_ps(_mm512_set1_ps(2.0), q, _mm512_set1_ps(1.0))
    }

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
        super::fwd_row::<Avx512>(cell, hid, x, hh, bias, prev, act, h, c)
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
        super::bwd_row::<Avx512>(cell, hid, act, prev, c, dh, dc_in, dx, dhh, dh_out, dc_out)
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
                    fwd_row::<Portable>(s.cell, hid, x, hr, bias, prev, a, hv, cv);
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
        self.cell_bwd(s, io, true)
    }

    /// [`Backend::rnn_cell_bwd`]; the RNN's and LSTM's `dhh` (a copy of the step's row of
    /// `dxw`) is written only when `copy_dhh` (`rnn_layer_bwd` multiplies that row in place).
    pub(super) fn cell_bwd(
        &self,
        s: &RnnStep,
        io: RnnCellBwd<'_, CpuStorage>,
        copy_dhh: bool,
    ) -> Result<()> {
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
        let (lstm, gru) = (s.cell == RnnCell::Lstm, s.cell == RnnCell::Gru);
        let dhh_width = if gru || copy_dhh { g } else { 0 };
        let dhh = &mut io.dhh.f32s_mut(OP)?[..b * dhh_width];
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
        let wide = wide();
        let dho: &mut [f32] = if gru { dh } else { &mut [] };
        let dco: &mut [f32] = match dc {
            Some(dc) => &mut dc[..n],
            None => &mut [],
        };
        let widths = [
            g,
            dhh_width,
            if gru { hid } else { 0 },
            if lstm { hid } else { 0 },
        ];
        row_blocks(
            b,
            n,
            [dxw, &mut *dhh, dho, dco],
            widths,
            |b0, [dx, dq, dho, dco]| {
                for (r, dx) in dx.chunks_exact_mut(g).enumerate() {
                    let dq = &mut dq[r * dhh_width..(r + 1) * dhh_width];
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
                        bwd_row::<Portable>(s.cell, hid, a, p, cv, d, dci, dx, dq, dho, dco);
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
