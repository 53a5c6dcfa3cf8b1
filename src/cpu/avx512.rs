//! A packed single-precision GEMM for x86-64 CPUs with AVX-512F, used by `gemm.rs` in place
//! of matrixmultiply's AVX2 kernels when the CPU has it (`WGNN_CPU_GEMM=matrixmultiply`
//! forces the portable path, e.g. to compare the two).
//!
//! The classic blocked scheme: for each `KC`-deep slice of the shared dimension, B's slice is
//! packed into `NR`-column panels and A's into `MR`-row panels (zero-padded at the edges), and
//! an `MR × NR` microkernel keeps its 12 × 2 tile of C in 24 of the 32 512-bit registers over
//! the whole slice: per step of k, two loads of B, twelve broadcasts of A, 24 FMAs. Every
//! element of C sums its products in the same order (slice by slice, k ascending within a
//! slice) whatever part of C a call covers, so splitting C across threads, as `gemm.rs` does,
//! does not change a bit.

use super::gemm::Mat;
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};

/// Rows of the microkernel's tile of C.
const MR: usize = 12;
/// Columns of the tile: two 16-lane vectors.
const NR: usize = 32;
/// Depth of a packed slice: an `MR × KC` panel of A (12 KiB) and a `KC × NR` panel of B
/// (32 KiB) stay in L1 while the microkernel runs.
const KC: usize = 256;
/// Rows of A packed at once (a multiple of `MR`; 144 KiB, in L2).
const MC: usize = 144;
/// Columns of B packed at once (a multiple of `NR`; 1 MiB, in L2/L3).
const NC: usize = 1024;

thread_local! {
    /// Packing buffers of this thread (A's `MC × KC` block, B's `KC × NC` block), kept between
    /// calls so a training step allocates nothing here.
    static PACK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// 0: not decided yet; 1: the AVX-512 kernel; 2: matrixmultiply.
static MODE: AtomicU8 = AtomicU8::new(0);

/// Whether this CPU has AVX-512F.
pub(crate) fn supported() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// Whether GEMMs run the AVX-512 kernel: where the CPU has it, unless `WGNN_CPU_GEMM=
/// matrixmultiply`.
pub(crate) fn available() -> bool {
    match MODE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let forced_off = std::env::var("WGNN_CPU_GEMM").is_ok_and(|v| v == "matrixmultiply");
            let on = !forced_off && supported();
            MODE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
    }
}

/// `C = alpha A B + beta C` (C row-major `[m, n]`, row stride `ldc`; C is not read when beta
/// is 0).
///
/// # Safety
/// [`available`] must be true; A `[m, k]` and B `[k, n]` must lie inside their slices; `c`
/// must be valid for reads and writes of `c + i·ldc + j` for `i < m`, `j < n`, and no other
/// thread may touch those elements during the call.
#[allow(clippy::too_many_arguments)] // the BLAS signature
pub(crate) unsafe fn sgemm(
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
    if k == 0 {
        // No products: C = beta C.
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) is inside C by the contract.
                unsafe {
                    let p = c.add(i * ldc + j);
                    *p = if beta == 0.0 { 0.0 } else { beta * *p };
                }
            }
        }
        return;
    }
    PACK.with(|pack| {
        let mut pack = pack.borrow_mut();
        let (pa, pb) = &mut *pack;
        pa.resize(MC * KC, 0.0);
        pb.resize(KC * NC, 0.0);
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                pack_b(b, pc, kc, jc, nc, pb);
                // The first slice applies the caller's beta; later ones add to C.
                let beta_here = if pc == 0 { beta } else { 1.0 };
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    pack_a(a, ic, mc, pc, kc, pa);
                    for jr in (0..nc).step_by(NR) {
                        let nr = NR.min(nc - jr);
                        for ir in (0..mc).step_by(MR) {
                            let mr = MR.min(mc - ir);
                            // SAFETY: the panels hold `kc` steps of MR (NR) values each; the
                            // tile's `mr × nr` elements of C are inside C by the contract.
                            unsafe {
                                kernel(
                                    kc,
                                    pa.as_ptr().add(ir * kc),
                                    pb.as_ptr().add(jr * kc),
                                    c.add((ic + ir) * ldc + jc + jr),
                                    ldc,
                                    mr,
                                    nr,
                                    alpha,
                                    beta_here,
                                )
                            };
                        }
                    }
                }
            }
        }
    });
}

/// Packs rows `i0..i0 + mc` and columns `p0..p0 + kc` of A as `MR`-row panels, each
/// `[kc][MR]` (rows past `mc` zero).
fn pack_a(a: Mat, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    for (panel, out) in dst[..mc.div_ceil(MR) * MR * kc]
        .chunks_exact_mut(MR * kc)
        .enumerate()
    {
        let r0 = panel * MR;
        let rows = MR.min(mc - r0);
        for i in 0..MR {
            if i >= rows {
                for p in 0..kc {
                    out[p * MR + i] = 0.0;
                }
                continue;
            }
            let base = (i0 + r0 + i) * a.rs + p0 * a.cs;
            for p in 0..kc {
                out[p * MR + i] = a.data[base + p * a.cs];
            }
        }
    }
}

/// Packs rows `p0..p0 + kc` and columns `j0..j0 + nc` of B as `NR`-column panels, each
/// `[kc][NR]` (columns past `nc` zero).
fn pack_b(b: Mat, p0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]) {
    for (panel, out) in dst[..nc.div_ceil(NR) * NR * kc]
        .chunks_exact_mut(NR * kc)
        .enumerate()
    {
        let c0 = panel * NR;
        let cols = NR.min(nc - c0);
        for p in 0..kc {
            let line = &mut out[p * NR..(p + 1) * NR];
            let base = (p0 + p) * b.rs + (j0 + c0) * b.cs;
            if b.cs == 1 {
                line[..cols].copy_from_slice(&b.data[base..base + cols]);
            } else {
                for (j, v) in line[..cols].iter_mut().enumerate() {
                    *v = b.data[base + j * b.cs];
                }
            }
            line[cols..].fill(0.0);
        }
    }
}

/// The `MR × NR` tile: `C = alpha Σ_p a_p b_pᵀ + beta C` over `kc` packed steps, storing only
/// the top-left `mr × nr` elements.
///
/// # Safety
/// AVX-512F must be present; `a` must hold `kc · MR` and `b` `kc · NR` floats; `c + i·ldc + j`
/// must be valid for `i < mr`, `j < nr`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kc {
        // SAFETY: step p of each panel is inside it (the caller's contract).
        unsafe {
            let b0 = _mm512_loadu_ps(b.add(p * NR));
            let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
            let ap = a.add(p * MR);
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*ap.add(i));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
        }
    }
    let lanes = |from: usize| -> __mmask16 {
        let valid = nr.saturating_sub(from).min(16);
        ((1u32 << valid) - 1) as __mmask16
    };
    let masks = [lanes(0), lanes(16)];
    let va = _mm512_set1_ps(alpha);
    let vb = _mm512_set1_ps(beta);
    for (i, row) in acc.iter().enumerate().take(mr) {
        for (h, &v) in row.iter().enumerate() {
            if masks[h] == 0 {
                continue;
            }
            // SAFETY: the masked lanes are the tile's valid columns of row i.
            unsafe {
                let dst = c.add(i * ldc + h * 16);
                let mut out = _mm512_mul_ps(va, v);
                if beta != 0.0 {
                    let old = _mm512_maskz_loadu_ps(masks[h], dst);
                    out = _mm512_fmadd_ps(vb, old, out);
                }
                _mm512_mask_storeu_ps(dst, masks[h], out);
            }
        }
    }
}
