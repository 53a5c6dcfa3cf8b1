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
//!
//! A right operand used for many products (a recurrent layer's `W_hh`, once per time step) is
//! packed once into a [`PackedB`] and multiplied by [`sgemm_packed`], which packs only A (a
//! few rows) per call and may cover any range of B's panels: the same sums in the same order
//! as [`sgemm`], so the same bits.

use super::gemm::Mat;
use rayon::prelude::*;
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;
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
/// Steps of k ahead that the microkernel prefetches B (32 steps are 4 KiB of a panel).
const B_AHEAD: usize = 32;
/// Steps of k ahead that packing a transposed A prefetches its stored rows.
const A_AHEAD: usize = 8;
/// Elements of B from which [`PackedB::new`] packs across the rayon pool.
const PACK_PARALLEL_MIN: usize = 1 << 16;

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
                                    APanel::Packed(pa.as_ptr().add(ir * kc)),
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
/// `[kc][MR]` (rows past `mc` zero). Reads A in the order it is stored: a transposed A (a
/// weight gradient's `dYᵀ`) a stored row (`mc` values) at a time into every panel, a
/// row-major one twelve rows side by side.
fn pack_a(a: Mat, i0: usize, mc: usize, p0: usize, kc: usize, dst: &mut [f32]) {
    let dst = &mut dst[..mc.div_ceil(MR) * MR * kc];
    if a.rs == 1 {
        // Step p of every panel comes from one contiguous run of A's storage.
        let full = mc / MR;
        for p in 0..kc {
            let at = i0 + (p0 + p) * a.cs;
            // Each step's run is a new stored row (4 KiB apart in a gate gradient `[T·B,
            // 4H]`), which the hardware prefetcher does not follow across pages: ask for the
            // run A_AHEAD steps on (a prefetch of an address past the slice never faults).
            let ahead = a.data.as_ptr().wrapping_add(at + A_AHEAD * a.cs);
            for line in (0..mc).step_by(16) {
                // SAFETY: a prefetch reads nothing and never faults.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line).cast()) };
            }
            let src = &a.data[at..at + mc];
            for (panel, run) in src.chunks_exact(MR).enumerate() {
                let line = (panel * kc + p) * MR;
                // A fixed length: copied inline, not by a call to memcpy.
                dst[line..line + MR].copy_from_slice(run);
            }
            if full * MR < mc {
                let rest = &src[full * MR..];
                let line = &mut dst[(full * kc + p) * MR..(full * kc + p + 1) * MR];
                line[..rest.len()].copy_from_slice(rest);
                line[rest.len()..].fill(0.0);
            }
        }
        return;
    }
    for (panel, out) in dst.chunks_exact_mut(MR * kc).enumerate() {
        let r0 = panel * MR;
        let rows = MR.min(mc - r0);
        let first = (i0 + r0) * a.rs + p0 * a.cs;
        if a.cs == 1 {
            // Twelve rows read side by side (zeros past `mc`: the edge panel of a batch of 16
            // is 4 rows): 4 × 4 blocks transposed in registers, the last steps one by one.
            static ZEROS: [f32; KC] = [0.0; KC];
            let src: [&[f32]; MR] = std::array::from_fn(|i| match i < rows {
                true => &a.data[first + i * a.rs..first + i * a.rs + kc],
                false => &ZEROS[..kc],
            });
            let blocked = kc - kc % 4;
            for p in (0..blocked).step_by(4) {
                for g in 0..MR / 4 {
                    let rows = std::array::from_fn(|i| &src[4 * g + i][p..p + 4]);
                    let at = p * MR + 4 * g;
                    transpose4(rows, &mut out[at..at + 3 * MR + 4], MR);
                }
            }
            for (p, line) in out.chunks_exact_mut(MR).enumerate().skip(blocked) {
                for (v, row) in line.iter_mut().zip(&src) {
                    *v = row[p];
                }
            }
            continue;
        }
        for i in 0..MR {
            let lane = out.iter_mut().skip(i).step_by(MR);
            if i >= rows {
                lane.for_each(|v| *v = 0.0);
                continue;
            }
            let at = first + i * a.rs;
            lane.zip(a.data[at..].iter().step_by(a.cs))
                .for_each(|(v, &x)| *v = x);
        }
    }
}

/// Writes four runs of four values transposed: line q of `dst` (at `q · stride`) gets
/// `rows[0][q], …, rows[3][q]`. `dst` holds lines 0 to 3 (`3 · stride + 4` values).
#[inline(always)]
fn transpose4(rows: [&[f32]; 4], dst: &mut [f32], stride: usize) {
    assert!(rows.iter().all(|r| r.len() == 4) && dst.len() == 3 * stride + 4);
    // SAFETY: SSE is part of x86-64; each load reads its run's 4 values and each store
    // writes 4 values of `dst`, the last ending at its end (checked above).
    unsafe {
        let [r0, r1, r2, r3] = rows.map(|v| _mm_loadu_ps(v.as_ptr()));
        let (t0, t1) = (_mm_unpacklo_ps(r0, r1), _mm_unpacklo_ps(r2, r3));
        let (t2, t3) = (_mm_unpackhi_ps(r0, r1), _mm_unpackhi_ps(r2, r3));
        let o = dst.as_mut_ptr();
        _mm_storeu_ps(o, _mm_movelh_ps(t0, t1));
        _mm_storeu_ps(o.add(stride), _mm_movehl_ps(t1, t0));
        _mm_storeu_ps(o.add(2 * stride), _mm_movelh_ps(t2, t3));
        _mm_storeu_ps(o.add(3 * stride), _mm_movehl_ps(t3, t2));
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
        if b.rs == 1 && b.cs != 1 {
            // B stored transposed (a linear layer's `Wᵀ`, `W_hhᵀ`): each column is contiguous,
            // so read four of them side by side and transpose 4 × 4 blocks in registers
            // (zeros past `nc`), the last steps one by one.
            static ZEROS: [f32; KC] = [0.0; KC];
            let col: [&[f32]; NR] = std::array::from_fn(|j| match j < cols {
                true => &b.data[p0 + (j0 + c0 + j) * b.cs..][..kc],
                false => &ZEROS[..kc],
            });
            let blocked = kc - kc % 4;
            for p in (0..blocked).step_by(4) {
                for g in 0..NR / 4 {
                    let rows = std::array::from_fn(|i| &col[4 * g + i][p..p + 4]);
                    let at = p * NR + 4 * g;
                    transpose4(rows, &mut out[at..at + 3 * NR + 4], NR);
                }
            }
            for (p, line) in out.chunks_exact_mut(NR).enumerate().skip(blocked) {
                for (v, c) in line.iter_mut().zip(&col) {
                    *v = c[p];
                }
            }
            continue;
        }
        for p in 0..kc {
            let line = &mut out[p * NR..(p + 1) * NR];
            let base = (p0 + p) * b.rs + (j0 + c0) * b.cs;
            if b.cs == 1 && cols == NR {
                // A fixed length: copied inline, not by a call to memcpy.
                line.copy_from_slice(&b.data[base..base + NR]);
            } else if b.cs == 1 {
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

/// A right operand `B [k, n]` packed once as [`sgemm`] packs it, for many products by the
/// same B. Slice `s` of the shared dimension (rows `s·KC ..`, depth `kc`) starts at
/// `s·KC·n_pad` (`n_pad` is n rounded up to NR) and holds `n_pad / NR` panels `[kc][NR]`.
pub(crate) struct PackedB<'a> {
    k: usize,
    n: usize,
    data: &'a [f32],
}

impl<'a> PackedB<'a> {
    /// The floats [`PackedB::new`] needs for a `[k, n]` operand.
    pub(crate) fn len(k: usize, n: usize) -> usize {
        k * n.div_ceil(NR) * NR
    }

    /// Packs `B [k, n]` into `dst` (at least [`PackedB::len`] floats). Panics (a bug of the
    /// caller) when B reaches past its slice or `dst` is short.
    pub(crate) fn new(k: usize, n: usize, b: Mat, dst: &'a mut [f32]) -> PackedB<'a> {
        let n_pad = n.div_ceil(NR) * NR;
        let dst = &mut dst[..k * n_pad];
        if n > 0 {
            assert!(
                k == 0 || (k - 1) * b.rs + (n - 1) * b.cs < b.data.len(),
                "PackedB: B [{k}, {n}] with strides ({}, {}) reaches past its {} elements",
                b.rs,
                b.cs,
                b.data.len()
            );
            // Panel by panel, across the pool when there are megabytes of them.
            let parallel = k * n >= PACK_PARALLEL_MIN;
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                let panel = |(i, out): (usize, &mut [f32])| {
                    pack_b(b, pc, kc, i * NR, NR.min(n - i * NR), out)
                };
                let slice = &mut dst[pc * n_pad..(pc + kc) * n_pad];
                match parallel {
                    true => slice.par_chunks_mut(NR * kc).enumerate().for_each(panel),
                    false => slice.chunks_mut(NR * kc).enumerate().for_each(panel),
                }
            }
        }
        PackedB { k, n, data: dst }
    }

    /// Rows of B (the shared dimension).
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Columns of B.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// `NR`-column panels of B (the last one zero-padded).
    pub(crate) fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }
}

/// `C[:, J] = alpha A B[:, J] + beta C[:, J]` for the columns J of B's panels `panels`
/// (`panels.start·NR .. min(n, panels.end·NR)`), A `[m, k]`, C row-major `[m, n]` at `c`
/// (column 0) with row stride `ldc`; C is not read when beta is 0 and k > 0. Each element
/// sums its products as [`sgemm`] does, so the bits are the same.
///
/// # Safety
/// [`available`] must be true; A `[m, b.k()]` must lie inside its slice; `panels.end` must
/// not pass `b.panels()`; `c` must be valid for reads and writes of `c + i·ldc + j` for
/// `i < m` and j in J, and no other thread may touch those elements during the call.
#[allow(clippy::too_many_arguments)] // the BLAS signature
pub(crate) unsafe fn sgemm_packed(
    m: usize,
    alpha: f32,
    a: Mat,
    b: &PackedB,
    panels: Range<usize>,
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    let (k, n) = (b.k, b.n);
    let n_pad = n.div_ceil(NR) * NR;
    let j0 = panels.start * NR;
    let j1 = n.min(panels.end * NR);
    if m == 0 || j0 >= j1 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            for j in j0..j1 {
                // SAFETY: (i, j) is inside this call's part of C by the contract.
                unsafe {
                    let p = c.add(i * ldc + j);
                    *p = if beta == 0.0 { 0.0 } else { beta * *p };
                }
            }
        }
        return;
    }
    PACK.with(|pack| {
        let pa = &mut pack.borrow_mut().0;
        pa.resize(MC * KC, 0.0);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let slice = &b.data[pc * n_pad..(pc + kc) * n_pad];
            let beta_here = if pc == 0 { beta } else { 1.0 };
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // A row-major A whose row tiles are all of a kernel's height (a batch of 32:
                // 12 + 12 + 8) is read where it lies, a row per accumulator row: packing it
                // was a tenth of a recurrent step, mostly waiting for the rows the other
                // core's cell kernel had just written.
                let direct =
                    a.cs == 1 && (0..mc).step_by(MR).all(|ir| direct_height(MR.min(mc - ir)));
                if !direct {
                    pack_a(a, ic, mc, pc, kc, pa);
                }
                for jr in (j0..j1).step_by(NR) {
                    let nr = NR.min(j1 - jr);
                    for ir in (0..mc).step_by(MR) {
                        let mr = MR.min(mc - ir);
                        let panel = match direct {
                            true => APanel::Rows(a.data[(ic + ir) * a.rs + pc..].as_ptr(), a.rs),
                            false => APanel::Packed(pa[ir * kc..].as_ptr()),
                        };
                        // SAFETY: the panels hold `kc` steps of MR (NR) values each, or A's
                        // rows `ic + ir ..` hold `mr` rows of `kc` values from column `pc`
                        // (A lies inside its slice by the contract); the tile's `mr × nr`
                        // elements of C are inside C by the contract.
                        unsafe {
                            kernel(
                                kc,
                                panel,
                                slice.as_ptr().add(jr * kc),
                                c.add((ic + ir) * ldc + jr),
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
    });
}

/// The `MR × NR` tile: `C = alpha Σ_p a_p b_pᵀ + beta C` over `kc` steps (A's rows packed or
/// in place, B packed), storing only the top-left `mr × nr` elements.
///
/// # Safety
/// AVX-512F must be present; a packed `a` must hold `kc · MR` floats, a row-major one `mr`
/// rows of `kc` (`mr` a [`direct_height`]); `b` must hold `kc · NR` floats; `c + i·ldc + j`
/// must be valid for `i < mr`, `j < nr`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    kc: usize,
    a: APanel,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    // An edge panel of 8 (or 4) rows runs a kernel of that height rather than 12 rows of
    // which some are padding (half a batch of 32 is panels of 12 and 4). Same sums either way.
    // SAFETY: as this fn's contract; `tile::<R, _>` reads the first R rows of each step (a
    // row-major panel has exactly R = mr rows: `direct_height`).
    unsafe {
        match (mr, a) {
            (0..=4, APanel::Packed(a)) => {
                tile::<4, false>(kc, a, 0, b, c, ldc, mr, nr, alpha, beta)
            }
            (5..=8, APanel::Packed(a)) => {
                tile::<8, false>(kc, a, 0, b, c, ldc, mr, nr, alpha, beta)
            }
            (_, APanel::Packed(a)) => tile::<MR, false>(kc, a, 0, b, c, ldc, mr, nr, alpha, beta),
            (4, APanel::Rows(a, lda)) => {
                tile::<4, true>(kc, a, lda, b, c, ldc, mr, nr, alpha, beta)
            }
            (8, APanel::Rows(a, lda)) => {
                tile::<8, true>(kc, a, lda, b, c, ldc, mr, nr, alpha, beta)
            }
            (_, APanel::Rows(a, lda)) => {
                debug_assert_eq!(mr, MR);
                tile::<MR, true>(kc, a, lda, b, c, ldc, mr, nr, alpha, beta)
            }
        }
    }
}

/// Where a tile reads its rows of A: a packed panel (`[kc][MR]`, rows past the tile's zero),
/// or A's own rows (the first element, and the row stride).
#[derive(Clone, Copy)]
enum APanel {
    Packed(*const f32),
    Rows(*const f32, usize),
}

/// Whether a tile of `mr` rows can read a row-major A in place: its kernel's height is `mr`
/// (so it reads no row past A's).
fn direct_height(mr: usize) -> bool {
    matches!(mr, 4 | 8 | MR)
}

/// [`kernel`] with `R ≤ MR` rows of accumulators (`mr ≤ R`), reading A packed (element
/// `(i, p)` at `a[p·MR + i]`) or, when `ROWS`, row-major in place (at `a[i·lda + p]`).
///
/// # Safety
/// As [`kernel`]; with `ROWS`, `a + i·lda + p` must be valid for `i < R`, `p < kc`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const ROWS: bool>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    alpha: f32,
    beta: f32,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for p in 0..kc {
        // SAFETY: step p of each panel is inside it (the caller's contract).
        unsafe {
            // B's panel streams from L2 or L3 (a recurrent layer's packed W_hh is a megabyte
            // and does not stay in L2 from one step to the next): ask for it B_AHEAD steps
            // early, further than the hardware prefetcher runs. Past the panel's end this
            // reaches into the next panel, or nowhere (a prefetch never faults).
            let ahead = b.wrapping_add((p + B_AHEAD) * NR);
            _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16).cast());
            let b0 = _mm512_loadu_ps(b.add(p * NR));
            let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = match ROWS {
                    true => _mm512_set1_ps(*a.add(i * lda + p)),
                    false => _mm512_set1_ps(*a.add(p * MR + i)),
                };
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
