//! A recurrent layer over a whole sequence as one autograd node: per time step one GEMM for
//! the recurrent projection and one fused kernel for the cell's pointwise work, forward and
//! backward (`Backend::rnn_layer` and `Backend::rnn_layer_bwd` run the loop over the steps;
//! backpropagation through time: `W_hh`'s gradient is one GEMM over every step's gate
//! gradients, summed). The input projection `x·W_ihᵀ + b_ih` is the caller's (one GEMM
//! over the sequence, through the ordinary matmul node).

use super::*;
use crate::autograd::record_needs;
use crate::ops::{RnnCell, RnnLayerBwd, RnnLayerFwd, RnnStep};

impl Tensor {
    /// One recurrent layer: `xw` `[T, B, G·H]` (the input projection of every step, `b_ih`
    /// included; `G` the cell's gate count), `w_hh` `[G·H, H]`, `b_hh` `[G·H]`, the initial
    /// state `h0` `[B, H]` and, for the LSTM, `c0` `[B, H]`. Returns `[T, B, H]`, the state
    /// after every step (the last row is `h_T`), with the LSTM's final cell state appended as
    /// row `T` (`[T + 1, B, H]`).
    pub(crate) fn rnn_layer(
        cell: RnnCell,
        xw: &Tensor,
        w_hh: &Tensor,
        b_hh: &Tensor,
        h0: &Tensor,
        c0: Option<&Tensor>,
    ) -> Result<Tensor> {
        const OP: &str = "rnn_layer";
        let lstm = cell == RnnCell::Lstm;
        let c0 = match (lstm, c0) {
            (true, Some(c)) => c,
            (true, None) => return Err(Error::invalid(OP, "the LSTM needs an initial cell state")),
            (false, _) => h0,
        };
        for t in [xw, w_hh, b_hh, h0, c0] {
            want(OP, t, DType::F32)?;
        }
        let [steps, batch, gh] = xw.dims() else {
            return Err(Error::invalid(
                OP,
                format!(
                    "the input projection is {}, not [steps, batch, gates·hidden]",
                    xw.shape
                ),
            ));
        };
        let (steps, batch, gh) = (*steps, *batch, *gh);
        let hidden = gh / cell.gates();
        if steps == 0 || batch == 0 || hidden == 0 || gh % cell.gates() != 0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "{}: input projection {} (needs steps, batch ≥ 1 and a multiple of {} gates)",
                    cell.name(),
                    xw.shape,
                    cell.gates()
                ),
            ));
        }
        let expect = |t: &Tensor, dims: &[usize], what: &str| -> Result<()> {
            if t.dims() == dims {
                return Ok(());
            }
            Err(Error::invalid(
                OP,
                format!("{}: {what} is {}, expected {dims:?}", cell.name(), t.shape),
            ))
        };
        expect(w_hh, &[gh, hidden], "weight_hh")?;
        expect(b_hh, &[gh], "bias_hh")?;
        expect(h0, &[batch, hidden], "the initial state h0")?;
        expect(c0, &[batch, hidden], "the initial cell state c0")?;
        let n = batch * hidden;
        let out_rows = steps + usize::from(lstm);
        let step = move |t: usize| RnnStep {
            cell,
            steps,
            batch,
            hidden,
            t,
        };
        let dt = DType::F32;
        let state_copy = |len: usize, total: usize| BlockCopy {
            outer: 1,
            len,
            inner: 1,
            src_dim: len,
            dst_dim: total,
            src_off: 0,
            dst_off: 0,
        };
        let (out, act, hprev, cs) = backend!(
            OP, dt, [xw => x, w_hh => w, b_hh => bias, h0 => h0b, c0 => c0b],
            |be| {
                let mut hprev = be.alloc(steps * n, dt, OP)?;
                be.copy_block(h0b, &mut hprev, &state_copy(n, steps * n))?;
                let mut cs = match lstm {
                    true => {
                        let mut c = be.alloc((steps + 1) * n, dt, OP)?;
                        be.copy_block(c0b, &mut c, &state_copy(n, (steps + 1) * n))?;
                        Some(c)
                    }
                    false => None,
                };
                let mut act = be.alloc(steps * n * cell.saved(), dt, OP)?;
                let mut out = be.alloc(out_rows * n, dt, OP)?;
                let bufs = RnnLayerFwd {
                    xw: x,
                    w_hh: w,
                    bias,
                    h0: h0b,
                    hprev: &mut hprev,
                    cs: cs.as_mut(),
                    act: &mut act,
                    out: &mut out,
                };
                be.rnn_layer(&step(0), bufs)?;
                let sh = |dims: &[usize]| Shape::new(dims.to_vec());
                Ok::<_, Error>((
                    Tensor::from_parts(sh(&[out_rows, batch, hidden]), dt, out.into()),
                    Tensor::from_parts(sh(&[steps, batch, cell.saved() * hidden]), dt, act.into()),
                    Tensor::from_parts(sh(&[steps, batch, hidden]), dt, hprev.into()),
                    cs.map(|c| Tensor::from_parts(sh(&[steps + 1, batch, hidden]), dt, c.into())),
                ))
            }
        )?;
        let w = w_hh.detach();
        let mut inputs = vec![xw, w_hh, b_hh, h0];
        if lstm {
            inputs.push(c0);
        }
        Ok(record_needs(out, OP, &inputs, move |g, _| {
            let grads = rnn_layer_backward(g, &act, &hprev, cs.as_ref(), &w, step(0))?;
            let (dxw, dw, db, dh0, dc0) = grads;
            let mut v = vec![Some(dxw), Some(dw), Some(db), Some(dh0)];
            if let Some(dc0) = dc0 {
                v.push(Some(dc0));
            }
            Ok(v)
        }))
    }
}

/// The gradients of [`Tensor::rnn_layer`]'s inputs from its output's `g`: `xw`, `w_hh`,
/// `b_hh`, `h0` and (LSTM) `c0`. `shape` gives the cell and sizes (its `t` is unused).
fn rnn_layer_backward(
    g: &Tensor,
    act: &Tensor,
    hprev: &Tensor,
    cs: Option<&Tensor>,
    w: &Tensor,
    shape: RnnStep,
) -> Result<(Tensor, Tensor, Tensor, Tensor, Option<Tensor>)> {
    const OP: &str = "rnn_layer_backward";
    let RnnStep {
        cell,
        steps,
        batch,
        hidden,
        ..
    } = shape;
    let (lstm, gru) = (cell == RnnCell::Lstm, cell == RnnCell::Gru);
    let (n, gh) = (batch * hidden, cell.gates() * hidden);
    want(OP, g, DType::F32)?;
    let dt = DType::F32;
    let cs_t = cs.unwrap_or(hprev);
    let sh = |dims: &[usize]| Shape::new(dims.to_vec());
    backend!(OP, dt, [g => gb, act => ab, hprev => hb, cs_t => cb, w => wb], |be| {
        let mut dh = be.alloc(n, dt, OP)?;
        let mut dc = match lstm {
            true => Some(be.alloc(n, dt, OP)?),
            false => None,
        };
        let mut dxw = be.alloc(steps * batch * gh, dt, OP)?;
        let mut dhh_all = match gru {
            true => Some(be.alloc(steps * batch * gh, dt, OP)?),
            false => None,
        };
        let bufs = RnnLayerBwd {
            act: ab,
            hprev: hb,
            cs: lstm.then_some(cb),
            gout: gb,
            w_hh: wb,
            dh: &mut dh,
            dc: dc.as_mut(),
            dxw: &mut dxw,
            dhh_all: dhh_all.as_mut(),
        };
        be.rnn_layer_bwd(&shape, bufs)?;
        // Backpropagation through time: W_hh and b_hh get every step's gradient, summed.
        let src = dhh_all.as_ref().unwrap_or(&dxw);
        let mut dw = be.alloc(gh * hidden, dt, OP)?;
        let wspec = MatmulSpec {
            m: gh,
            n: hidden,
            k: steps * batch,
            trans_a: true,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        };
        be.matmul(src, hb, &mut dw, &wspec)?;
        let mut db = be.alloc(gh, dt, OP)?;
        be.sum_rows(src, &mut db, steps * batch, gh, 1.0)?;
        Ok((
            Tensor::from_parts(sh(&[steps, batch, gh]), dt, dxw.into()),
            Tensor::from_parts(sh(&[gh, hidden]), dt, dw.into()),
            Tensor::from_parts(sh(&[gh]), dt, db.into()),
            Tensor::from_parts(sh(&[batch, hidden]), dt, dh.into()),
            dc.map(|c| Tensor::from_parts(sh(&[batch, hidden]), dt, c.into())),
        ))
    })
}
