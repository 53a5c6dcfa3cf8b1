//! Direct stride-1 convolution for x86-64 CPUs with AVX-512: no column matrix, no packing.
//!
//! Each image is copied once into a zero-padded buffer of planes `[C, Hp, Wp]`
//! (`Hp = H + 2 pad`, `Wp = W + 2 pad`), and the output is computed over the *flat* padded
//! index `q = oy·Wp + ox`:
//!
//! ```text
//! out[f, q] = Σ_(c, ky, kx) W[f, c, ky, kx] · xpad[c·Hp·Wp + ky·Wp + kx + q]
//! ```
//!
//! so every tap `(c, ky, kx)` is one contiguous run of the padded input at a fixed offset, for
//! any kernel size and padding. The columns `ox ≥ OW` of each flat row wrap into the next row;
//! they are computed and thrown away (2 of 30 columns at 28 px). A register tile of
//! [`MR`] filters × [`TQ`] pixels (24 zmm accumulators) does 24 FMAs per 3 vector loads and 8
//! broadcasts, straight from the padded image in L1: the im2col path instead writes nine copies
//! of the image and matrixmultiply copies them again into its packed panels.
//!
//! The backward pass uses the same two ideas:
//! - `dx` is this forward kernel run on `dout` padded by `k − 1 − pad`, with the weights
//!   flipped and transposed (`W'[c, f, ky, kx] = W[f, c, kh−1−ky, kw−1−kx]`);
//! - `dW[f, (c, ky, kx)] = Σ_(oy, ox) dout[f, oy, ox] · xpad[c, ky·Wp + kx + oy·Wp + ox]` over
//!   the kept pixels only, vectorised over the filters (`dout` transposed to `[pixel, f]`): a
//!   register tile of up to 64 filters × 6 taps (16 × 24 for 16 filters) accumulates along the
//!   pixels with no horizontal sums, over a fixed block of images, and the blocks are added
//!   in order, so results do not depend on the thread count.
//!
//! The path is taken when the CPU has AVX-512F, the stride is 1, `pad < kernel size` (so the
//! backward padding `k − 1 − pad` exists) and the output has at least 64 pixels (below that the
//! batched GEMM in `gemm.rs` wins); `WGNN_CPU_CONV=im2col` turns it off, for benchmarks against
//! the im2col path and for the cross-checks. Elsewhere (other CPUs, other strides) the im2col
//! path runs unchanged.

use super::conv_gemm::grad_blocks;
use super::gemm::sum_f64;
use crate::ops::Conv2dGeom;
use rayon::prelude::*;
use std::sync::OnceLock;

/// Filters per register tile of the convolution kernel.
const MR: usize = 8;
/// Pixels per register tile of the convolution kernel: three 16-lane vectors.
const TQ: usize = 48;
/// Images per weight-gradient block (the blocks are summed in order, whatever the thread
/// count): each block's tiles reload their accumulators, so blocks are larger than the im2col
/// path's.
const GRAD_BLOCK: usize = 10;
/// Output pixels per image below which the batched GEMM is used instead.
const MIN_OUT_PIXELS: usize = 64;

/// Which convolution the CPU backend runs, from `WGNN_CPU_CONV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvPath {
    /// Direct convolution where it applies (the default on AVX-512 CPUs).
    Auto,
    /// Always im2col + GEMM.
    Im2col,
}

/// `WGNN_CPU_CONV=auto|im2col`, read once; another value is reported on stderr once and
/// treated as `auto`.
pub(crate) fn conv_path() -> ConvPath {
    static PATH: OnceLock<ConvPath> = OnceLock::new();
    *PATH.get_or_init(|| match std::env::var("WGNN_CPU_CONV").as_deref() {
        Err(_) | Ok("") | Ok("auto") | Ok("direct") => ConvPath::Auto,
        Ok("im2col") => ConvPath::Im2col,
        Ok(other) => {
            eprintln!(
                "wgnn: WGNN_CPU_CONV={other:?} is not one of auto, direct, im2col; using auto"
            );
            ConvPath::Auto
        }
    })
}

/// Whether this CPU runs the AVX-512 kernels.
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether [`forward`] and [`backward`] handle this convolution (see the module docs).
pub(crate) fn applies(g: &Conv2dGeom) -> bool {
    conv_path() == ConvPath::Auto && shape_fits(g) && has_avx512()
}

/// The shape half of [`applies`].
fn shape_fits(g: &Conv2dGeom) -> bool {
    g.stride == 1
        && g.pad < g.kh
        && g.pad < g.kw
        && g.kh <= g.h + 2 * g.pad
        && g.kw <= g.w + 2 * g.pad
        && g.out_h() * g.out_w() >= MIN_OUT_PIXELS
}

/// One image's planes on a zero-padded grid, and the flat output grid of a stride-1 kernel
/// `kh × kw` run over it.
struct Flat {
    /// Channels.
    c: usize,
    /// Unpadded height and width.
    h: usize,
    w: usize,
    /// Padding above/below and left/right.
    py: usize,
    px: usize,
    /// Padded width (the flat row length) and plane size.
    wp: usize,
    plane: usize,
    /// Output rows and (kept) output columns.
    oh: usize,
    ow: usize,
    /// Flat output length rounded up to whole register tiles.
    qr: usize,
    /// Tap offsets `c·plane + ky·wp + kx`, in `(c, ky, kx)` order.
    offs: Vec<usize>,
    /// Buffer length: every tap's run of `qr` stays inside.
    len: usize,
}

impl Flat {
    fn new(
        c: usize,
        (h, w): (usize, usize),
        (py, px): (usize, usize),
        (kh, kw): (usize, usize),
    ) -> Flat {
        let (hp, wp) = (h + 2 * py, w + 2 * px);
        let (oh, ow) = (hp + 1 - kh, wp + 1 - kw);
        let plane = hp * wp;
        let qr = (oh * wp).div_ceil(TQ) * TQ;
        let mut offs = Vec::with_capacity(c * kh * kw);
        for ch in 0..c {
            for ky in 0..kh {
                for kx in 0..kw {
                    offs.push(ch * plane + ky * wp + kx);
                }
            }
        }
        let reach = offs.last().map_or(0, |&o| o + qr);
        Flat {
            c,
            h,
            w,
            py,
            px,
            wp,
            plane,
            oh,
            ow,
            qr,
            offs,
            len: reach.max(c * plane),
        }
    }

    /// Copies one image `[c, h, w]` into `dst` (length `len`) with zero padding.
    fn fill(&self, src: &[f32], dst: &mut [f32]) {
        dst.fill(0.0);
        for (s, d) in src
            .chunks_exact(self.h * self.w)
            .zip(dst.chunks_mut(self.plane))
            .take(self.c)
        {
            for (row, line) in s.chunks_exact(self.w).enumerate() {
                let at = (row + self.py) * self.wp + self.px;
                d[at..at + self.w].copy_from_slice(line);
            }
        }
    }

    /// `src [ch, oh, ow]` transposed to `dst [oh·ow, chp]`, `chp` = `ch` rounded up to 16
    /// with zero columns: the form the weight-gradient kernel reads, one vector of filters
    /// per output pixel.
    fn transpose_out(&self, src: &[f32], ch: usize, dst: &mut [f32]) {
        let (ohw, chp) = (self.oh * self.ow, ch.div_ceil(16) * 16);
        let dst = &mut dst[..ohw * chp];
        if chp != ch {
            dst.fill(0.0);
        }
        for (f, plane) in src.chunks_exact(ohw).take(ch).enumerate() {
            for (p, &v) in plane.iter().enumerate() {
                dst[p * chp + f] = v;
            }
        }
    }

    /// The kept outputs of `flat [ch, qr]` as `out [ch, oh, ow]`, plus `bias[f]` when given.
    fn gather(&self, flat: &[f32], ch: usize, out: &mut [f32], bias: Option<&[f32]>) {
        for (f, (o, fl)) in out
            .chunks_exact_mut(self.oh * self.ow)
            .zip(flat.chunks_exact(self.qr))
            .take(ch)
            .enumerate()
        {
            let b = bias.map_or(0.0, |b| b[f]);
            for (row, line) in o.chunks_exact_mut(self.ow).enumerate() {
                for (v, &s) in line.iter_mut().zip(&fl[row * self.wp..][..self.ow]) {
                    *v = s + b;
                }
            }
        }
    }
}

/// `w [fout, taps]` as `[taps, fout rounded up to MR]`, the extra columns 0: the layout the
/// convolution kernel broadcasts from.
fn weights_by_tap(w: &[f32], fout: usize, taps: usize) -> Vec<f32> {
    let fp = fout.div_ceil(MR) * MR;
    let mut t = vec![0f32; taps * fp];
    for f in 0..fout {
        for k in 0..taps {
            t[k * fp + f] = w[f * taps + k];
        }
    }
    t
}

/// The weights of the backward-data convolution, by tap: `W'[(f, ky, kx), c] =
/// W[f, c, kh−1−ky, kw−1−kx]`, the `c` columns rounded up to MR with zeros.
fn flipped_by_tap(w: &[f32], g: &Conv2dGeom, fout: usize) -> Vec<f32> {
    let (c, kh, kw) = (g.c, g.kh, g.kw);
    let cp = c.div_ceil(MR) * MR;
    let mut t = vec![0f32; fout * kh * kw * cp];
    for f in 0..fout {
        for ch in 0..c {
            for ky in 0..kh {
                for kx in 0..kw {
                    let tap = (f * kh + ky) * kw + kx;
                    t[tap * cp + ch] = w[((f * c + ch) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx)];
                }
            }
        }
    }
    t
}

/// `out[n] = W ⋆ x[n] + b` for every image, in parallel. Call only where [`applies`] holds.
pub(crate) fn forward(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
    g: &Conv2dGeom,
    fout: usize,
) {
    let grid = Flat::new(g.c, (g.h, g.w), (g.pad, g.pad), (g.kh, g.kw));
    let wt = weights_by_tap(w, fout, grid.offs.len());
    let (x_per, o_per) = (g.c * g.h * g.w, fout * grid.oh * grid.ow);
    out[..g.n * o_per]
        .par_chunks_mut(o_per)
        .zip(x[..g.n * x_per].par_chunks(x_per))
        .for_each_init(
            || (vec![0f32; grid.len], vec![0f32; fout * grid.qr]),
            |(xp, flat), (o, xn)| {
                grid.fill(xn, xp);
                conv(xp, &grid.offs, &wt, fout, grid.qr, flat);
                grid.gather(flat, fout, o, Some(b));
            },
        );
}

/// Backward of [`forward`]: `dx` image by image, `dw` and `db` summed per fixed block of
/// [`GRAD_BLOCK`] images, the blocks added in order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    x: &[f32],
    w: &[f32],
    dout: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    g: &Conv2dGeom,
    fout: usize,
) {
    let xg = Flat::new(g.c, (g.h, g.w), (g.pad, g.pad), (g.kh, g.kw));
    let (oh, ow) = (xg.oh, xg.ow);
    // dout padded by k − 1 − pad: the flipped kernel's outputs are exactly dx's h × w.
    let dg = Flat::new(
        fout,
        (oh, ow),
        (g.kh - 1 - g.pad, g.kw - 1 - g.pad),
        (g.kh, g.kw),
    );
    let wf = flipped_by_tap(w, g, fout);
    let taps = xg.offs.len();
    let (x_per, d_per) = (g.c * g.h * g.w, fout * oh * ow);
    let blocks: Vec<(Vec<f32>, Vec<f64>)> = grad_blocks(dx, g.n, x_per, GRAD_BLOCK)
        .into_par_iter()
        .zip(x[..g.n * x_per].par_chunks(GRAD_BLOCK * x_per))
        .zip(dout[..g.n * d_per].par_chunks(GRAD_BLOCK * d_per))
        .map(|((mut dx_blk, x_blk), d_blk)| {
            let imgs = x_blk.len() / x_per;
            // Recycled buffers (megabytes a block): each is fully written before it is read.
            let take = super::pool::take_f32;
            let mut xps = take(imgs * xg.len);
            let dt_len = oh * ow * fout.div_ceil(16) * 16;
            let mut dts = take(imgs * dt_len);
            let mut dpad = take(dg.len);
            let mut flat = take(g.c * dg.qr);
            let mut db_part = vec![0f64; fout];
            for j in 0..imgs {
                let d = &d_blk[j * d_per..][..d_per];
                xg.fill(
                    &x_blk[j * x_per..][..x_per],
                    &mut xps[j * xg.len..][..xg.len],
                );
                xg.transpose_out(d, fout, &mut dts[j * dt_len..][..dt_len]);
                if let Some(dx_blk) = dx_blk.as_deref_mut() {
                    dg.fill(d, &mut dpad);
                    conv(&dpad, &dg.offs, &wf, g.c, dg.qr, &mut flat);
                    dg.gather(&flat, g.c, &mut dx_blk[j * x_per..][..x_per], None);
                }
                for (f, line) in d.chunks_exact(oh * ow).enumerate() {
                    db_part[f] += sum_f64(line);
                }
            }
            let mut dw_part = vec![0f32; fout * taps];
            let pairs: Vec<(&[f32], &[f32])> = xps
                .chunks_exact(xg.len)
                .zip(dts.chunks_exact(dt_len))
                .collect();
            wgrad(&pairs, &xg.offs, fout, (oh, ow, xg.wp), &mut dw_part);
            for v in [xps, dts, dpad, flat] {
                super::pool::give_f32(v);
            }
            (dw_part, db_part)
        })
        .collect();
    super::conv_gemm::add_blocks(&blocks, &mut dw[..fout * taps], &mut db[..fout]);
}

/// `out[f·qr + q] = Σ_k wt[k·fp + f] · x[offs[k] + q]` for `f < fout`, `q < qr`, with `fp` =
/// `fout` rounded up to [`MR`]. Panics (a bug of the caller) when an operand is too short.
fn conv(x: &[f32], offs: &[usize], wt: &[f32], fout: usize, qr: usize, out: &mut [f32]) {
    let fp = fout.div_ceil(MR) * MR;
    assert!(
        qr.is_multiple_of(TQ),
        "direct conv: {qr} pixels is not a whole number of tiles"
    );
    assert!(wt.len() >= offs.len() * fp && out.len() >= fout * qr);
    assert!(offs.iter().all(|&o| o + qr <= x.len()));
    #[cfg(target_arch = "x86_64")]
    {
        assert!(has_avx512(), "direct conv: called without AVX-512F");
        // SAFETY: AVX-512F is present (checked above) and every read and write was checked
        // against its slice: tap runs `offs[k] .. offs[k] + qr` lie in `x`, weight rows
        // `k·fp .. k·fp + fp` in `wt`, output rows `f·qr .. f·qr + qr` (f < fout) in `out`.
        unsafe { avx512::conv(x, offs, wt, fout, qr, out) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct conv: no kernel for this architecture ({fp} filters)");
}

/// `dw[f·taps + k] = Σ_(x, dt) Σ_(oy < oh, ox < ow) dt[(oy·ow + ox)·fp + f] · x[offs[k] + oy·wp + ox]`
/// (overwriting `dw`), `dt` being `dout` transposed by [`Flat::transpose_out`] (`fp` = `fout`
/// rounded up to 16). Panics (a bug of the caller) when an operand is too short.
fn wgrad(
    imgs: &[(&[f32], &[f32])],
    offs: &[usize],
    fout: usize,
    (oh, ow, wp): (usize, usize, usize),
    dw: &mut [f32],
) {
    let fp = fout.div_ceil(16) * 16;
    assert!(fout > 0 && oh > 0 && ow > 0 && ow <= wp && dw.len() >= fout * offs.len());
    let reach = (oh - 1) * wp + ow;
    for (x, dt) in imgs {
        assert!(dt.len() >= oh * ow * fp);
        assert!(offs.iter().all(|&o| o + reach <= x.len()));
    }
    #[cfg(target_arch = "x86_64")]
    {
        use avx512::wgrad_tiles as t;
        assert!(has_avx512(), "direct conv: called without AVX-512F");
        let grid = (oh, ow, wp);
        // SAFETY: AVX-512F is present and every read was checked above: `dt` rows of `fp`
        // for all oh·ow pixels, tap runs `offs[k] .. offs[k] + reach` in `x`; `dw` holds
        // fout × taps.
        unsafe {
            match fp / 16 {
                // 16 filters: as many taps as there are, up to 24 (3×3 on one channel: 9).
                1 if offs.len() <= 9 => t::<1, 9>(imgs, offs, fout, grid, dw),
                1 if offs.len() <= 12 => t::<1, 12>(imgs, offs, fout, grid, dw),
                1 => t::<1, 24>(imgs, offs, fout, grid, dw),
                2 => t::<2, 12>(imgs, offs, fout, grid, dw),
                3 => t::<3, 8>(imgs, offs, fout, grid, dw),
                _ => t::<4, 6>(imgs, offs, fout, grid, dw),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!(
        "direct conv: no kernel for this architecture ({} images)",
        imgs.len()
    );
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, TQ};
    use std::arch::x86_64::*;

    /// Vectors per pixel tile.
    const NV: usize = TQ / 16;

    /// See [`super::conv`].
    ///
    /// # Safety
    /// AVX-512F must be present, and the operands as long as [`super::conv`] checks.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn conv(
        x: &[f32],
        offs: &[usize],
        wt: &[f32],
        fout: usize,
        qr: usize,
        out: &mut [f32],
    ) {
        let fp = fout.div_ceil(MR) * MR;
        let (xp, wp, op) = (x.as_ptr(), wt.as_ptr(), out.as_mut_ptr());
        for q0 in (0..qr).step_by(TQ) {
            for f0 in (0..fout).step_by(MR) {
                let mut acc = [[_mm512_setzero_ps(); NV]; MR];
                for (k, &off) in offs.iter().enumerate() {
                    // SAFETY (all three blocks): the caller checked offs[k] + qr <= x.len(),
                    // k·fp + fp <= wt.len() and (f0 + r)·qr + qr <= out.len() for kept rows.
                    let xv = unsafe {
                        let p = xp.add(off + q0);
                        [
                            _mm512_loadu_ps(p),
                            _mm512_loadu_ps(p.add(16)),
                            _mm512_loadu_ps(p.add(32)),
                        ]
                    };
                    let wk = unsafe { wp.add(k * fp + f0) };
                    for (r, row) in acc.iter_mut().enumerate() {
                        let b = _mm512_set1_ps(unsafe { *wk.add(r) });
                        for (a, &v) in row.iter_mut().zip(&xv) {
                            *a = _mm512_fmadd_ps(b, v, *a);
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate().take(fout - f0) {
                    for (v, a) in row.iter().enumerate() {
                        unsafe { _mm512_storeu_ps(op.add((f0 + r) * qr + q0 + 16 * v), *a) };
                    }
                }
            }
        }
    }

    /// See [`super::wgrad`]: a register tile of `NF` vectors of 16 filters × `NK` taps
    /// (`NF·NK` = 24 accumulators), one vector load per filter vector and one broadcast per
    /// tap for each output pixel. The sums run along the pixels inside the accumulators, so
    /// no horizontal sums are needed; only the kept output pixels are visited.
    ///
    /// # Safety
    /// AVX-512F must be present, and the operands as long as [`super::wgrad`] checks.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn wgrad_tiles<const NF: usize, const NK: usize>(
        imgs: &[(&[f32], &[f32])],
        offs: &[usize],
        fout: usize,
        (oh, ow, wp): (usize, usize, usize),
        dw: &mut [f32],
    ) {
        let (taps, fp) = (offs.len(), fout.div_ceil(16) * 16);
        for f0 in (0..fp).step_by(16 * NF) {
            // Tails repeat the last filter vector / tap; their sums are not stored.
            let mut fv = [0usize; NF];
            for (v, f) in fv.iter_mut().enumerate() {
                *f = (f0 + 16 * v).min(fp - 16);
            }
            for k0 in (0..taps).step_by(NK) {
                let mut ks = [0usize; NK];
                for (j, k) in ks.iter_mut().enumerate() {
                    *k = offs[(k0 + j).min(taps - 1)];
                }
                let mut acc = [[_mm512_setzero_ps(); NF]; NK];
                for (x, dt) in imgs {
                    let (xp, dp) = (x.as_ptr(), dt.as_ptr());
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let (p, q) = ((oy * ow + ox) * fp, oy * wp + ox);
                            let mut d = [_mm512_setzero_ps(); NF];
                            for (dv, &f) in d.iter_mut().zip(&fv) {
                                // SAFETY: p + f + 16 <= oh·ow·fp <= dt.len() (caller).
                                *dv = unsafe { _mm512_loadu_ps(dp.add(p + f)) };
                            }
                            for (row, &k) in acc.iter_mut().zip(&ks) {
                                // SAFETY: k + q < offs[k] + reach <= x.len() (caller).
                                let b = _mm512_set1_ps(unsafe { *xp.add(k + q) });
                                for (a, &dv) in row.iter_mut().zip(&d) {
                                    *a = _mm512_fmadd_ps(b, dv, *a);
                                }
                            }
                        }
                    }
                }
                let mut lanes = [0f32; 16];
                for (j, row) in acc.iter().enumerate().take(taps - k0) {
                    for (v, a) in row.iter().enumerate() {
                        let f_base = f0 + 16 * v;
                        if f_base >= fp {
                            break;
                        }
                        // SAFETY: `lanes` holds 16 floats.
                        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *a) };
                        for (l, &val) in lanes.iter().enumerate().take(fout.saturating_sub(f_base))
                        {
                            dw[(f_base + l) * taps + k0 + j] = val;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(n: usize, c: usize, hw: (usize, usize), k: (usize, usize), pad: usize) -> Conv2dGeom {
        Conv2dGeom {
            n,
            c,
            h: hw.0,
            w: hw.1,
            kh: k.0,
            kw: k.1,
            stride: 1,
            pad,
        }
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| crate::rng::counter_uniform(seed, i as u32) * 2.0 - 1.0)
            .collect()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-5 * scale, "{what}[{i}]: {x} vs {y}");
        }
    }

    /// The direct kernels against the im2col path, forward and backward, over kernel sizes,
    /// paddings, channel and filter counts that exercise every tile tail.
    #[test]
    fn direct_convolution_matches_im2col() {
        if !has_avx512() {
            eprintln!("SKIPPED: this CPU has no AVX-512F, so the direct convolution never runs");
            return;
        }
        let cases = [
            (geom(3, 1, (28, 28), (3, 3), 1), 16),
            (geom(2, 16, (14, 14), (3, 3), 2), 32),
            (geom(5, 3, (9, 12), (3, 3), 0), 5),
            (geom(2, 7, (10, 8), (5, 5), 2), 17),
            (geom(2, 4, (8, 9), (1, 1), 0), 9),
            (geom(1, 2, (12, 7), (2, 3), 1), 3),
        ];
        for (i, (g, fout)) in cases.into_iter().enumerate() {
            assert!(shape_fits(&g), "case {i}");
            let (x_len, o_len) = (g.n * g.c * g.h * g.w, g.n * fout * g.out_h() * g.out_w());
            let w_len = fout * g.c * g.kh * g.kw;
            let (x, w, b) = (data(x_len, 1), data(w_len, 2), data(fout, 3));
            let dout = data(o_len, 4);
            let mut want = vec![0f32; o_len];
            super::super::conv_gemm::conv2d_forward_columns(&x, &w, &b, &mut want, &g, fout);
            let mut got = vec![f32::NAN; o_len];
            forward(&x, &w, &b, &mut got, &g, fout);
            close(&got, &want, &format!("case {i} out"));
            let (mut dx0, mut dw0, mut db0) =
                (vec![0f32; x_len], vec![0f32; w_len], vec![0f32; fout]);
            super::super::conv_gemm::conv2d_backward_columns(
                &x,
                &w,
                &dout,
                Some(&mut dx0),
                &mut dw0,
                &mut db0,
                &g,
                fout,
            );
            let (mut dx1, mut dw1, mut db1) = (
                vec![f32::NAN; x_len],
                vec![f32::NAN; w_len],
                vec![f32::NAN; fout],
            );
            backward(&x, &w, &dout, Some(&mut dx1), &mut dw1, &mut db1, &g, fout);
            close(&dx1, &dx0, &format!("case {i} dx"));
            // Without dx, both paths give the same dw and db bit for bit.
            let (mut dw2, mut db2) = (vec![f32::NAN; w_len], vec![f32::NAN; fout]);
            backward(&x, &w, &dout, None, &mut dw2, &mut db2, &g, fout);
            assert_eq!((&dw2, &db2), (&dw1, &db1), "case {i}: direct without dx");
            super::super::conv_gemm::conv2d_backward_columns(
                &x, &w, &dout, None, &mut dw2, &mut db2, &g, fout,
            );
            assert_eq!((&dw2, &db2), (&dw0, &db0), "case {i}: im2col without dx");
            close(&dw1, &dw0, &format!("case {i} dw"));
            close(&db1, &db0, &format!("case {i} db"));
        }
    }

    /// Results do not depend on the number of threads.
    #[test]
    fn direct_convolution_is_the_same_on_any_thread_count() {
        if !has_avx512() {
            eprintln!("SKIPPED: this CPU has no AVX-512F, so the direct convolution never runs");
            return;
        }
        let (g, fout) = (geom(9, 6, (12, 12), (3, 3), 1), 10);
        let (x, w) = (data(9 * 6 * 144, 5), data(fout * 54, 6));
        let dout = data(9 * fout * 144, 7);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (mut dx, mut dw, mut db) =
                    (vec![0f32; x.len()], vec![0f32; w.len()], vec![0f32; fout]);
                backward(&x, &w, &dout, Some(&mut dx), &mut dw, &mut db, &g, fout);
                (dx, dw, db)
            })
        };
        assert_eq!(run(1), run(3));
    }
}
