//! Convolution on the CPU through GEMMs, where the direct AVX-512 kernel of `direct.rs` does
//! not apply: image by image in parallel, Caffe-style (below 64 output pixels per image it is
//! instead one GEMM over the whole batch, see `BATCHED_BELOW_OHW`). Each image's columns are
//! built `[C·KH·KW, OH·OW]` in a per-thread buffer that fits in cache, and one GEMM with the
//! weights `[FN, C·KH·KW]` writes that image's NCHW output directly (no transpose pass, no
//! batch-sized column matrix). Weight gradients are summed per fixed block of images and the
//! blocks added in order, so the result is the same bit for bit on any number of threads.

use super::gemm::{Mat, gemm, sgemm, sum_f64};
use crate::ops::Conv2dGeom;
use rayon::prelude::*;

/// The output columns `ox` whose input column `ox·stride + k - pad` lies inside `0..w`.
fn valid_range(out: usize, k: usize, stride: usize, pad: usize, w: usize) -> (usize, usize) {
    // ox·stride + k ≥ pad  ⇔  ox ≥ ceil((pad - k) / stride);  ox·stride + k - pad < w.
    let lo = pad.saturating_sub(k).div_ceil(stride);
    let hi = if w + pad > k {
        (w + pad - k).div_ceil(stride)
    } else {
        0
    };
    (lo.min(out), hi.min(out).max(lo.min(out)))
}

/// One image's columns in the transposed layout `[C·KH·KW, OH·OW]`. Each output line is a
/// zero margin, a (strided) copy of one input row, and a zero margin: no per-element tests.
fn im2col_image(x: &[f32], col: &mut [f32], g: &Conv2dGeom) {
    let (oh, ow, s) = (g.out_h(), g.out_w(), g.stride);
    let mut row = 0;
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            let (y_lo, y_hi) = valid_range(oh, ky, s, g.pad, g.h);
            for kx in 0..g.kw {
                let (x_lo, x_hi) = valid_range(ow, kx, s, g.pad, g.w);
                let dst = &mut col[row * oh * ow..][..oh * ow];
                dst[..y_lo * ow].fill(0.0);
                dst[y_hi * ow..].fill(0.0);
                for oy in y_lo..y_hi {
                    let iy = oy * s + ky - g.pad;
                    let src = &plane[iy * g.w..][..g.w];
                    let line = &mut dst[oy * ow..][..ow];
                    line[..x_lo].fill(0.0);
                    line[x_hi..].fill(0.0);
                    if x_lo == x_hi {
                        continue; // this tap lies in the padding for every output column
                    }
                    let ix0 = x_lo * s + kx - g.pad;
                    if s == 1 {
                        line[x_lo..x_hi].copy_from_slice(&src[ix0..ix0 + (x_hi - x_lo)]);
                    } else {
                        for (v, ix) in line[x_lo..x_hi].iter_mut().zip((ix0..).step_by(s)) {
                            *v = src[ix];
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Adjoint of [`im2col_image`]: adds the columns back into one image `dx` (zeroed first).
fn col2im_image(col: &[f32], dx: &mut [f32], g: &Conv2dGeom) {
    let (oh, ow, s) = (g.out_h(), g.out_w(), g.stride);
    dx.fill(0.0);
    let mut row = 0;
    for c in 0..g.c {
        let plane = &mut dx[c * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            let (y_lo, y_hi) = valid_range(oh, ky, s, g.pad, g.h);
            for kx in 0..g.kw {
                let (x_lo, x_hi) = valid_range(ow, kx, s, g.pad, g.w);
                let src = &col[row * oh * ow..][..oh * ow];
                for oy in y_lo..y_hi {
                    let iy = oy * s + ky - g.pad;
                    let line = &mut plane[iy * g.w..][..g.w];
                    if x_lo == x_hi {
                        continue; // this tap lies in the padding for every output column
                    }
                    let ix0 = x_lo * s + kx - g.pad;
                    let from = &src[oy * ow + x_lo..oy * ow + x_hi];
                    if s == 1 {
                        line[ix0..ix0 + from.len()]
                            .iter_mut()
                            .zip(from)
                            .for_each(|(d, &v)| *d += v);
                    } else {
                        for (&v, ix) in from.iter().zip((ix0..).step_by(s)) {
                            line[ix] += v;
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Output pixels per image below which a convolution runs as one GEMM over the whole batch:
/// image by image, a late ResNet stage (1×1 to 7×7 outputs, 512 channels) would be a
/// matrix-vector product that rereads megabytes of weights per image.
const BATCHED_BELOW_OHW: usize = 64;

/// The kernel taps of a small convolution that reach the image for at least one output pixel
/// (`ys` rows, `xs` columns). The others multiply padding only: a 3×3 convolution with pad 1
/// on a 1×1 map (ResNet-18's last stage at 28 px) has one live tap of nine, and the batched
/// path below leaves the dead ones out of its products altogether.
struct LiveTaps {
    ys: Vec<usize>,
    xs: Vec<usize>,
}

impl LiveTaps {
    fn of(g: &Conv2dGeom) -> LiveTaps {
        let live = |out: usize, k: usize, len: usize| -> Vec<usize> {
            (0..k)
                .filter(|&t| {
                    let (lo, hi) = valid_range(out, t, g.stride, g.pad, len);
                    lo < hi
                })
                .collect()
        };
        LiveTaps {
            ys: live(g.out_h(), g.kh, g.h),
            xs: live(g.out_w(), g.kw, g.w),
        }
    }

    /// Columns of the product: `C · live rows · live columns`.
    fn ckk(&self, g: &Conv2dGeom) -> usize {
        g.c * self.ys.len() * self.xs.len()
    }

    /// Calls `f(k, tap)` for each live tap `(c, ky, kx)` in column order, `tap` being its
    /// index in the full `[C, KH, KW]` weight row.
    fn each(&self, g: &Conv2dGeom, mut f: impl FnMut(usize, usize)) {
        let mut k = 0;
        for c in 0..g.c {
            for &ky in &self.ys {
                for &kx in &self.xs {
                    f(k, (c * g.kh + ky) * g.kw + kx);
                    k += 1;
                }
            }
        }
    }

    /// The live columns of the weights `[fout, C·KH·KW]` as `[fout, ckk]`.
    fn weights(&self, w: &[f32], g: &Conv2dGeom, fout: usize) -> Vec<f32> {
        let (full, ckk) = (g.c * g.kh * g.kw, self.ckk(g));
        let mut out = vec![0f32; fout * ckk];
        for f in 0..fout {
            self.each(g, |k, tap| out[f * ckk + k] = w[f * full + tap]);
        }
        out
    }

    /// Every image's live columns as rows, `[N·OH·OW, ckk]`, written in place (pixel by
    /// pixel, no transposition), padding as 0.
    fn rows(&self, x: &[f32], g: &Conv2dGeom) -> Vec<f32> {
        let (ckk, ohw, ow) = (self.ckk(g), g.out_h() * g.out_w(), g.out_w());
        let x_per = g.c * g.h * g.w;
        // Every element is written below: a recycled buffer needs no clearing.
        let mut rows = super::pool::take_f32(g.n * ohw * ckk);
        if ckk == 0 {
            return rows; // every output lies in the padding
        }
        let nx = self.xs.len();
        rows.par_chunks_mut(ohw * ckk)
            .enumerate()
            .for_each(|(n, r)| {
                let img = &x[n * x_per..][..x_per];
                for (p, row) in r.chunks_exact_mut(ckk).enumerate() {
                    let (oy, ox) = (p / ow, p % ow);
                    // One line of live columns per (channel, live row) of the window.
                    let mut lines = row.chunks_exact_mut(nx);
                    for plane in img.chunks_exact(g.h * g.w) {
                        for &ky in &self.ys {
                            let Some(line) = lines.next() else { return };
                            // Padding taps wrap below 0 to huge values: one test each.
                            let iy = (oy * g.stride + ky).wrapping_sub(g.pad);
                            if iy >= g.h {
                                line.fill(0.0);
                                continue;
                            }
                            let src = &plane[iy * g.w..][..g.w];
                            for (v, &kx) in line.iter_mut().zip(&self.xs) {
                                let ix = (ox * g.stride + kx).wrapping_sub(g.pad);
                                *v = if ix < g.w { src[ix] } else { 0.0 };
                            }
                        }
                    }
                }
            });
        rows
    }

    /// Adjoint of [`LiveTaps::rows`] for one image: adds its rows `[OH·OW, ckk]` into `dx`
    /// (zeroed first), in a fixed order.
    fn add_rows(&self, r: &[f32], dx: &mut [f32], g: &Conv2dGeom) {
        let (ckk, ow) = (self.ckk(g), g.out_w());
        dx.fill(0.0);
        let nx = self.xs.len();
        for (p, row) in r.chunks_exact(ckk).enumerate() {
            let (oy, ox) = (p / ow, p % ow);
            let mut lines = row.chunks_exact(nx);
            for plane in dx.chunks_exact_mut(g.h * g.w) {
                for &ky in &self.ys {
                    let Some(line) = lines.next() else { return };
                    let iy = (oy * g.stride + ky).wrapping_sub(g.pad);
                    if iy >= g.h {
                        continue;
                    }
                    let dst = &mut plane[iy * g.w..][..g.w];
                    for (&v, &kx) in line.iter().zip(&self.xs) {
                        let ix = (ox * g.stride + kx).wrapping_sub(g.pad);
                        if ix < g.w {
                            dst[ix] += v;
                        }
                    }
                }
            }
        }
    }
}

/// [`conv2d_forward`] for small outputs: one `[N·OH·OW, ckk] · W'ᵀ` product over the live
/// taps ([`LiveTaps`]), then the layout change to NCHW with the bias.
fn conv2d_forward_batched(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
    g: &Conv2dGeom,
    fout: usize,
) {
    let ohw = g.out_h() * g.out_w();
    let live = LiveTaps::of(g);
    let ckk = live.ckk(g);
    let rows = live.rows(x, g);
    let wl = live.weights(w, g, fout);
    let mut prod = super::pool::take_f32(g.n * ohw * fout); // written by the GEMM (beta 0)
    let a = Mat {
        data: &rows,
        rs: ckk,
        cs: 1,
    };
    let wt = Mat {
        data: &wl,
        rs: 1,
        cs: ckk,
    };
    gemm(g.n * ohw, ckk, fout, 1.0, a, wt, 0.0, &mut prod);
    out[..g.n * fout * ohw]
        .par_chunks_mut(fout * ohw)
        .zip(prod.par_chunks(ohw * fout))
        .for_each(|(o, pr)| {
            for (f, line) in o.chunks_exact_mut(ohw).enumerate() {
                for (p, v) in line.iter_mut().enumerate() {
                    *v = pr[p * fout + f] + b[f];
                }
            }
        });
    super::pool::give_f32(rows);
    super::pool::give_f32(prod);
}

/// Backward of [`conv2d_forward_batched`]: `dW' = doutᵀ · rows` and `drows = dout · W'` as two
/// batch-wide products over the live taps (the dead taps' weight gradients are 0), `dx` by
/// adding the rows back image by image.
#[allow(clippy::too_many_arguments)]
fn conv2d_backward_batched(
    x: &[f32],
    w: &[f32],
    dout: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    g: &Conv2dGeom,
    fout: usize,
) {
    let ohw = g.out_h() * g.out_w();
    let live = LiveTaps::of(g);
    let ckk = live.ckk(g);
    let rows = live.rows(x, g);
    let wl = live.weights(w, g, fout);
    // dout [N, F, OH·OW] as rows [N·OH·OW, F].
    let mut drows = super::pool::take_f32(g.n * ohw * fout); // fully written below
    drows
        .par_chunks_mut(ohw * fout)
        .zip(dout.par_chunks(fout * ohw))
        .for_each(|(r, d)| {
            for (f, line) in d.chunks_exact(ohw).enumerate() {
                for (p, &v) in line.iter().enumerate() {
                    r[p * fout + f] = v;
                }
            }
        });
    let m = g.n * ohw;
    let dt = Mat {
        data: &drows,
        rs: 1,
        cs: fout,
    };
    let rm = Mat {
        data: &rows,
        rs: ckk,
        cs: 1,
    };
    let mut dwl = vec![0f32; fout * ckk];
    gemm(fout, m, ckk, 1.0, dt, rm, 0.0, &mut dwl);
    let full = g.c * g.kh * g.kw;
    dw[..fout * full].fill(0.0);
    for f in 0..fout {
        live.each(g, |k, tap| dw[f * full + tap] = dwl[f * ckk + k]);
    }
    let dm = Mat {
        data: &drows,
        rs: fout,
        cs: 1,
    };
    let wm = Mat {
        data: &wl,
        rs: ckk,
        cs: 1,
    };
    let x_per = g.c * g.h * g.w;
    let mut dcols = Vec::new();
    if let Some(dx) = dx {
        dcols = super::pool::take_f32(m * ckk); // written by the GEMM (beta 0)
        gemm(m, fout, ckk, 1.0, dm, wm, 0.0, &mut dcols);
        if ckk == 0 {
            dx[..g.n * x_per].fill(0.0); // no tap reaches the image
        } else {
            dx[..g.n * x_per]
                .par_chunks_mut(x_per)
                .zip(dcols.par_chunks(ohw * ckk))
                .for_each(|(dx_n, dr)| live.add_rows(dr, dx_n, g));
        }
    }
    for v in [rows, drows, dcols] {
        super::pool::give_f32(v);
    }
    for (f, d) in db[..fout].iter_mut().enumerate() {
        let sum: f64 = (0..g.n)
            .map(|n| sum_f64(&dout[(n * fout + f) * ohw..][..ohw]))
            .sum();
        *d = sum as f32;
    }
}

/// `out = W ⋆ x + b`, `w` being `[fout, C·KH·KW]`: the direct AVX-512 convolution where it
/// applies (`direct.rs`), one batch-wide GEMM for small outputs, else im2col image by image.
pub(crate) fn conv2d_forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
    g: &Conv2dGeom,
    fout: usize,
) {
    if super::direct::applies(g) {
        super::direct::forward(x, w, b, out, g, fout)
    } else if g.out_h() * g.out_w() < BATCHED_BELOW_OHW {
        conv2d_forward_batched(x, w, b, out, g, fout)
    } else {
        conv2d_forward_columns(x, w, b, out, g, fout)
    }
}

/// Backward of [`conv2d_forward`], by the same choice of path.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward(
    x: &[f32],
    w: &[f32],
    dout: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    g: &Conv2dGeom,
    fout: usize,
) {
    if super::direct::applies(g) {
        super::direct::backward(x, w, dout, dx, dw, db, g, fout)
    } else if g.out_h() * g.out_w() < BATCHED_BELOW_OHW {
        conv2d_backward_batched(x, w, dout, dx, dw, db, g, fout)
    } else {
        conv2d_backward_columns(x, w, dout, dx, dw, db, g, fout)
    }
}

/// A convolution's input gradient alone, `dx[n] = col2im(Wᵀ · dout[n])` for every image in
/// parallel (the adjoint of the convolution: a transposed convolution's forward, which has no
/// convolution input to take a weight gradient from).
pub(crate) fn conv2d_input_grad(
    w: &[f32],
    dout: &[f32],
    dx: &mut [f32],
    g: &Conv2dGeom,
    fout: usize,
) {
    let (ckk, ohw) = (g.c * g.kh * g.kw, g.out_h() * g.out_w());
    let x_per = g.c * g.h * g.w;
    if x_per == 0 {
        return;
    }
    dx[..g.n * x_per]
        .par_chunks_mut(x_per)
        .enumerate()
        .for_each_init(
            || vec![0f32; ckk * ohw],
            |dcol, (n, dx_n)| {
                let dm = Mat {
                    data: &dout[n * fout * ohw..][..fout * ohw],
                    rs: ohw,
                    cs: 1,
                };
                // dcol = Wᵀ [ckk, fout] · dout_n [fout, ohw]
                let w_t = Mat {
                    data: w,
                    rs: 1,
                    cs: ckk,
                };
                sgemm(ckk, fout, ohw, 1.0, w_t, dm, 0.0, dcol, ohw);
                col2im_image(dcol, dx_n, g);
            },
        );
}

/// `out[n] = W · cols(x[n]) + b` for every image, in parallel, the columns of one image at a
/// time in a per-thread buffer.
pub(crate) fn conv2d_forward_columns(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
    g: &Conv2dGeom,
    fout: usize,
) {
    let (ckk, ohw) = (g.c * g.kh * g.kw, g.out_h() * g.out_w());
    let x_per = g.c * g.h * g.w;
    out[..g.n * fout * ohw]
        .par_chunks_mut(fout * ohw)
        .enumerate()
        .for_each_init(
            || vec![0f32; ckk * ohw],
            |col, (n, o)| {
                im2col_image(&x[n * x_per..][..x_per], col, g);
                for (f, line) in o.chunks_exact_mut(ohw).enumerate() {
                    line.fill(b[f]);
                }
                let wm = Mat {
                    data: w,
                    rs: ckk,
                    cs: 1,
                };
                let cm = Mat {
                    data: col,
                    rs: ohw,
                    cs: 1,
                };
                sgemm(fout, ckk, ohw, 1.0, wm, cm, 1.0, o, ohw);
            },
        );
}

/// Images per weight-gradient block: blocks are summed in order, whatever the thread count.
const GRAD_BLOCK: usize = 4;

/// Adds the per-block `(dW, db)` partial sums in block order into `dw` and `db` (db summed in
/// f64), so the result is the same on any number of threads.
pub(crate) fn add_blocks(blocks: &[(Vec<f32>, Vec<f64>)], dw: &mut [f32], db: &mut [f32]) {
    dw.fill(0.0);
    let mut db64 = vec![0f64; db.len()];
    for (dw_part, db_part) in blocks {
        dw.iter_mut().zip(dw_part).for_each(|(a, b)| *a += b);
        db64.iter_mut().zip(db_part).for_each(|(a, b)| *a += b);
    }
    db.iter_mut().zip(&db64).for_each(|(a, &b)| *a = b as f32);
}

/// `dx [n, x_per]` cut into weight-gradient blocks of `block` images, or as many `None`s
/// when `dx` is not wanted.
pub(crate) fn grad_blocks(
    dx: Option<&mut [f32]>,
    n: usize,
    x_per: usize,
    block: usize,
) -> Vec<Option<&mut [f32]>> {
    match dx {
        // Images without pixels (a padded empty input): an empty slice per block, as
        // `chunks_mut` takes no zero size.
        Some(_) if x_per == 0 => (0..n.div_ceil(block))
            .map(|_| Some(Default::default()))
            .collect(),
        Some(dx) => dx[..n * x_per]
            .chunks_mut(block * x_per)
            .map(Some)
            .collect(),
        None => (0..n.div_ceil(block)).map(|_| None).collect(),
    }
}

/// Backward of [`conv2d_forward_columns`]: `dx` per image, `dw = Σ dout[n] · cols(x[n])ᵀ`,
/// `db = Σ dout`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward_columns(
    x: &[f32],
    w: &[f32],
    dout: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    g: &Conv2dGeom,
    fout: usize,
) {
    let (ckk, ohw) = (g.c * g.kh * g.kw, g.out_h() * g.out_w());
    let x_per = g.c * g.h * g.w;
    let blocks: Vec<(Vec<f32>, Vec<f64>)> = grad_blocks(dx, g.n, x_per, GRAD_BLOCK)
        .into_par_iter()
        .enumerate()
        .map(|(blk, mut dx_blk)| {
            let mut col = vec![0f32; ckk * ohw];
            let mut dcol = vec![0f32; ckk * ohw];
            let mut dw_part = vec![0f32; fout * ckk];
            let mut db_part = vec![0f64; fout];
            for n in blk * GRAD_BLOCK..g.n.min((blk + 1) * GRAD_BLOCK) {
                let j = n - blk * GRAD_BLOCK;
                let d = &dout[n * fout * ohw..][..fout * ohw];
                im2col_image(&x[n * x_per..][..x_per], &mut col, g);
                let dm = Mat {
                    data: d,
                    rs: ohw,
                    cs: 1,
                };
                // dW += dout_n [fout, ohw] · colᵀ [ohw, ckk]
                let col_t = Mat {
                    data: &col,
                    rs: 1,
                    cs: ohw,
                };
                sgemm(fout, ohw, ckk, 1.0, dm, col_t, 1.0, &mut dw_part, ckk);
                if let Some(dx_blk) = dx_blk.as_deref_mut() {
                    // dcol = Wᵀ [ckk, fout] · dout_n [fout, ohw]
                    let w_t = Mat {
                        data: w,
                        rs: 1,
                        cs: ckk,
                    };
                    sgemm(ckk, fout, ohw, 1.0, w_t, dm, 0.0, &mut dcol, ohw);
                    col2im_image(&dcol, &mut dx_blk[j * x_per..][..x_per], g);
                }
                for (f, line) in d.chunks_exact(ohw).enumerate() {
                    db_part[f] += sum_f64(line);
                }
            }
            (dw_part, db_part)
        })
        .collect();
    add_blocks(&blocks, &mut dw[..fout * ckk], &mut db[..fout]);
}
