//! GEMM and convolution for the CPU backend, on matrixmultiply's kernels and rayon.
//!
//! `gemm` splits C into row (or column) blocks across the rayon pool; every element is still
//! computed by one sequential kernel call, so results do not depend on the thread count.
//! The convolution runs image by image in parallel, Caffe-style: each image's columns are
//! built `[C·KH·KW, OH·OW]` in a per-thread buffer that fits in cache, and one GEMM with the
//! weights `[FN, C·KH·KW]` writes that image's NCHW output directly (no transpose pass, no
//! batch-sized column matrix). Weight gradients are summed per fixed block of images and the
//! blocks added in order, so the result is the same bit for bit on any number of threads.

use crate::ops::Conv2dGeom;
use rayon::prelude::*;

/// A strided matrix operand: element (i, j) is at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// Raw pointer that may cross threads: each thread writes a disjoint block of C.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[allow(clippy::too_many_arguments)] // the BLAS signature: dimensions, scalars, operands
/// Single-threaded `C = alpha A B + beta C`, C row-major `[m, n]` with row stride `ldc`.
fn sgemm_raw(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: Mat,
    b: Mat,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(k == 0 || (m - 1) * a.rs + (k - 1) * a.cs < a.data.len());
    debug_assert!(k == 0 || (k - 1) * b.rs + (n - 1) * b.cs < b.data.len());
    // SAFETY: the callers slice `a`, `b` and `c` to hold every element the strides reach
    // (checked above in debug builds) and C blocks given to different threads are disjoint.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c,
            ldc as isize,
            1,
        );
    }
}

/// Products smaller than this (m·n·k) run on one thread: splitting costs more than it saves.
const PARALLEL_MIN: usize = 1 << 18;

/// `C = alpha A B + beta C` for row-major C `[m, n]`, split across the rayon pool.
#[allow(clippy::too_many_arguments)] // the BLAS signature: dimensions, scalars, operands
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: Mat,
    b: Mat,
    beta: f32,
    c: &mut [f32],
) {
    let c = &mut c[..m * n];
    let threads = rayon::current_num_threads();
    if threads <= 1 || m * n * k < PARALLEL_MIN {
        sgemm_raw(m, k, n, alpha, a, b, beta, c.as_mut_ptr(), n);
        return;
    }
    if m >= 4 * threads {
        let rows = m.div_ceil(threads);
        c.par_chunks_mut(rows * n)
            .enumerate()
            .for_each(|(i, block)| {
                let r0 = i * rows;
                let mb = block.len() / n;
                let a_blk = Mat {
                    data: &a.data[r0 * a.rs..],
                    ..a
                };
                sgemm_raw(mb, k, n, alpha, a_blk, b, beta, block.as_mut_ptr(), n);
            });
    } else {
        let cols = n.div_ceil(threads);
        let base = SendPtr(c.as_mut_ptr());
        (0..n.div_ceil(cols)).into_par_iter().for_each(|i| {
            let c0 = i * cols;
            let nb = cols.min(n - c0);
            let b_blk = Mat {
                data: &b.data[c0 * b.cs..],
                ..b
            };
            let ptr = base;
            // SAFETY: column block [c0, c0 + nb) of every row belongs to this task alone.
            sgemm_raw(m, k, nb, alpha, a, b_blk, beta, unsafe { ptr.0.add(c0) }, n);
        });
    }
}

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

/// `out[n] = W · cols(x[n]) + b` for every image, in parallel. `w` is `[fout, C·KH·KW]`.
pub(crate) fn conv2d_forward(
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
                sgemm_raw(fout, ckk, ohw, 1.0, wm, cm, 1.0, o.as_mut_ptr(), ohw);
            },
        );
}

/// Images per weight-gradient block: blocks are summed in order, whatever the thread count.
const GRAD_BLOCK: usize = 4;

/// Backward of [`conv2d_forward`]: `dx` per image, `dw = Σ dout[n] · cols(x[n])ᵀ`,
/// `db = Σ dout`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward(
    x: &[f32],
    w: &[f32],
    dout: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    g: &Conv2dGeom,
    fout: usize,
) {
    let (ckk, ohw) = (g.c * g.kh * g.kw, g.out_h() * g.out_w());
    let x_per = g.c * g.h * g.w;
    let blocks: Vec<(Vec<f32>, Vec<f64>)> = dx[..g.n * x_per]
        .par_chunks_mut(GRAD_BLOCK * x_per)
        .enumerate()
        .map(|(blk, dx_blk)| {
            let mut col = vec![0f32; ckk * ohw];
            let mut dcol = vec![0f32; ckk * ohw];
            let mut dw_part = vec![0f32; fout * ckk];
            let mut db_part = vec![0f64; fout];
            for (j, dx_n) in dx_blk.chunks_exact_mut(x_per).enumerate() {
                let n = blk * GRAD_BLOCK + j;
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
                sgemm_raw(
                    fout,
                    ohw,
                    ckk,
                    1.0,
                    dm,
                    col_t,
                    1.0,
                    dw_part.as_mut_ptr(),
                    ckk,
                );
                // dcol = Wᵀ [ckk, fout] · dout_n [fout, ohw]
                let w_t = Mat {
                    data: w,
                    rs: 1,
                    cs: ckk,
                };
                sgemm_raw(ckk, fout, ohw, 1.0, w_t, dm, 0.0, dcol.as_mut_ptr(), ohw);
                col2im_image(&dcol, dx_n, g);
                for (f, line) in d.chunks_exact(ohw).enumerate() {
                    db_part[f] += line.iter().map(|&v| v as f64).sum::<f64>();
                }
            }
            (dw_part, db_part)
        })
        .collect();
    dw[..fout * ckk].fill(0.0);
    let mut db64 = vec![0f64; fout];
    for (dw_part, db_part) in &blocks {
        dw.iter_mut().zip(dw_part).for_each(|(a, b)| *a += b);
        db64.iter_mut().zip(db_part).for_each(|(a, b)| *a += b);
    }
    db[..fout]
        .iter_mut()
        .zip(&db64)
        .for_each(|(a, &b)| *a = b as f32);
}
