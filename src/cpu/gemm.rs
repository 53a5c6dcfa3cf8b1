//! GEMM for the CPU backend, on matrixmultiply's kernels (or the packed AVX-512 kernel of
//! `avx512.rs`) and rayon. `gemm` splits C into row (or column) blocks across the rayon pool;
//! every element is still computed by one sequential kernel call, so results do not depend on
//! the thread count. The convolutions built on it are in `conv_gemm.rs`.

use rayon::prelude::*;

/// A strided matrix operand: element (i, j) is at `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// `data` with row stride `rs` and column stride `cs`.
    pub(crate) fn new(data: &'a [f32], rs: usize, cs: usize) -> Mat<'a> {
        Mat { data, rs, cs }
    }
}

/// Raw pointer that may cross threads: each thread writes a disjoint block of C.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// The offset one past the last element `m × n` strided operand reaches (0 when empty).
fn reach(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// Panics unless A `[m, k]` and B `[k, n]` lie inside their slices. Always checked, also in
/// release builds: the check is a few multiplications per GEMM call, and a wrong stride here
/// would otherwise read past a slice inside matrixmultiply.
fn check_ab(m: usize, k: usize, n: usize, a: &Mat, b: &Mat) {
    assert!(
        reach(m, k, a.rs, a.cs) <= a.data.len(),
        "sgemm: A [{m}, {k}] with strides ({}, {}) reaches past its {} elements",
        a.rs,
        a.cs,
        a.data.len()
    );
    assert!(
        reach(k, n, b.rs, b.cs) <= b.data.len(),
        "sgemm: B [{k}, {n}] with strides ({}, {}) reaches past its {} elements",
        b.rs,
        b.cs,
        b.data.len()
    );
}

/// Single-threaded `C = alpha A B + beta C`, C row-major `[m, n]` with row stride `ldc`
/// inside the slice `c`. Panics (a bug of the caller) when an operand is shorter than its
/// shape and strides say.
#[allow(clippy::too_many_arguments)] // the BLAS signature: dimensions, scalars, operands
pub(super) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: Mat,
    b: Mat,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(
        n <= ldc && reach(m, n, ldc, 1) <= c.len(),
        "sgemm: C [{m}, {n}] with row stride {ldc} reaches past its {} elements",
        c.len()
    );
    check_ab(m, k, n, &a, &b);
    // SAFETY: A and B were checked to hold every element their strides reach, C to hold every
    // element of its `m` rows of `n` (row stride `ldc`), and `c` is borrowed mutably.
    unsafe { sgemm_raw(m, k, n, alpha, a, b, beta, c.as_mut_ptr(), ldc) }
}

/// Single-threaded `C = alpha A B + beta C` through a raw C pointer, for column blocks of one
/// C that several threads write at once (which `&mut` slices cannot express).
///
/// # Safety
/// A `[m, k]` and B `[k, n]` must lie inside their slices (see [`check_ab`]); `c` must be
/// valid for reads and writes of every element `c + i·ldc + j` for `i < m`, `j < n`; and no
/// other thread may access those elements during the call.
#[allow(clippy::too_many_arguments)] // the BLAS signature: dimensions, scalars, operands
unsafe fn sgemm_raw(
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
    debug_assert!(reach(m, k, a.rs, a.cs) <= a.data.len());
    debug_assert!(reach(k, n, b.rs, b.cs) <= b.data.len());
    #[cfg(target_arch = "x86_64")]
    if super::avx512::available() {
        // SAFETY: the kernel is available, and the operands and C are as this fn's contract.
        unsafe { super::avx512::sgemm(m, k, n, alpha, a, b, beta, c, ldc) };
        return;
    }
    // SAFETY: as this fn's contract.
    unsafe { sgemm_matrixmultiply(m, k, n, alpha, a, b, beta, c, ldc) }
}

/// [`sgemm_raw`] on matrixmultiply's kernels (AVX2/FMA where present), the path of every CPU
/// without AVX-512F and of `WGNN_CPU_GEMM=matrixmultiply`.
///
/// # Safety
/// As [`sgemm_raw`].
#[allow(clippy::too_many_arguments)] // the BLAS signature: dimensions, scalars, operands
unsafe fn sgemm_matrixmultiply(
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
    // SAFETY: the operands are in bounds and C is exclusively ours, by this fn's contract.
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
        sgemm(m, k, n, alpha, a, b, beta, c, n);
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
                sgemm(mb, k, n, alpha, a_blk, b, beta, block, n);
            });
    } else {
        check_ab(m, k, n, &a, &b);
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
            // SAFETY: A and B were checked for the whole product, so every column block of B
            // is in bounds; C is `c[..m * n]` (borrowed mutably above), and column block
            // [c0, c0 + nb) of its rows belongs to this task alone.
            unsafe { sgemm_raw(m, k, nb, alpha, a, b_blk, beta, ptr.0.add(c0), n) };
        });
    }
}

/// A right operand `B [k, n]` prepared once for many products by [`gemm_packed`]: packed into
/// the AVX-512 kernel's panels where that kernel runs (so no call packs it again), otherwise B
/// itself, read in place by [`gemm`].
pub(crate) enum PackedB<'a> {
    /// The panels of `avx512.rs`.
    #[cfg(target_arch = "x86_64")]
    Avx512(super::avx512::PackedB<'a>),
    /// B as it is stored.
    Plain { k: usize, n: usize, b: Mat<'a> },
}

impl<'a> PackedB<'a> {
    /// The scratch floats [`PackedB::new`] needs for a `[k, n]` operand (0 where nothing is
    /// packed).
    pub(crate) fn scratch_len(k: usize, n: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        if super::avx512::available() {
            return super::avx512::PackedB::len(k, n);
        }
        let _ = (k, n);
        0
    }

    /// Prepares `B [k, n]`, packing it into `scratch` (at least [`PackedB::scratch_len`]
    /// floats). Panics (a bug of the caller) when B reaches past its slice.
    pub(crate) fn new(k: usize, n: usize, b: Mat<'a>, scratch: &'a mut [f32]) -> PackedB<'a> {
        #[cfg(target_arch = "x86_64")]
        if super::avx512::available() {
            return PackedB::Avx512(super::avx512::PackedB::new(k, n, b, scratch));
        }
        let _ = scratch;
        assert!(
            reach(k, n, b.rs, b.cs) <= b.data.len(),
            "PackedB: B [{k}, {n}] with strides ({}, {}) reaches past its {} elements",
            b.rs,
            b.cs,
            b.data.len()
        );
        PackedB::Plain { k, n, b }
    }

    /// `[k, n]`.
    fn dims(&self) -> (usize, usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            PackedB::Avx512(p) => (p.k(), p.n()),
            PackedB::Plain { k, n, .. } => (*k, *n),
        }
    }
}

/// `C = alpha A B + beta C` for row-major C `[m, n]` and a B prepared by [`PackedB::new`]:
/// [`gemm`]'s result, bit for bit. Made for a few rows of A against a large B (a batch of
/// recurrent states times `W_hhᵀ`): B is never packed again, and each thread multiplies A by its
/// own panels of B.
pub(crate) fn gemm_packed(m: usize, alpha: f32, a: Mat, b: &PackedB, beta: f32, c: &mut [f32]) {
    let (k, n) = b.dims();
    let c = &mut c[..m * n];
    if c.is_empty() {
        return;
    }
    match b {
        #[cfg(target_arch = "x86_64")]
        PackedB::Avx512(p) => {
            assert!(
                reach(m, k, a.rs, a.cs) <= a.data.len(),
                "gemm_packed: A [{m}, {k}] with strides ({}, {}) reaches past its {} elements",
                a.rs,
                a.cs,
                a.data.len()
            );
            // A grid of blocks of C, one per thread: first whole panels of B, so that each
            // thread reads only its part of B, which stays in its cache from one product to
            // the next (the loops of `rnn_layer.rs` give each thread the same block every
            // step), and every row panel of A is whole (a batch of 32 is 12 + 12 + 8 rows);
            // then, when threads outnumber the panels, blocks of rows (a multiple of 4, so
            // that the edge panel runs a kernel of its own height).
            let panels = p.panels();
            let threads = match m * n * k < PARALLEL_MIN {
                true => 1,
                false => rayon::current_num_threads(),
            };
            let cols = panels.div_ceil(threads.min(panels));
            let row_blocks = threads / panels.div_ceil(cols);
            let rows = m.div_ceil(row_blocks.max(1)).next_multiple_of(4).min(m);
            let col_blocks = panels.div_ceil(cols);
            let blocks = m.div_ceil(rows) * col_blocks;
            let base = SendPtr(c.as_mut_ptr());
            let block = |i: usize| {
                let ptr = base;
                let r0 = (i / col_blocks) * rows;
                let mb = rows.min(m - r0);
                let p0 = (i % col_blocks) * cols;
                let a_blk = Mat {
                    data: &a.data[r0 * a.rs..],
                    ..a
                };
                // SAFETY: the kernel is available (it packed the operand); A was checked for
                // `[m, k]`, so its rows from r0 are in bounds; C is `c[..m * n]`, borrowed
                // mutably above, and rows `r0..r0 + mb` of the columns of panels
                // `p0..p0 + cols` belong to this block alone.
                unsafe {
                    let (c_blk, range) = (ptr.0.add(r0 * n), p0..panels.min(p0 + cols));
                    super::avx512::sgemm_packed(mb, alpha, a_blk, p, range, beta, c_blk, n)
                };
            };
            if blocks == 1 {
                block(0);
            } else {
                (0..blocks).into_par_iter().for_each(block);
            }
        }
        PackedB::Plain { b, .. } => {
            match (k, beta == 0.0) {
                // No products: C = beta C, never reading a previous C when beta is 0.
                (0, true) => c.fill(0.0),
                (0, false) => c.iter_mut().for_each(|v| *v *= beta),
                _ => gemm(m, k, n, alpha, a, *b, beta, c),
            }
        }
    }
}

/// `Σ v` in f64, with eight running sums (added in a fixed order at the end) so that the loop
/// is not one long chain of dependent additions: a bias gradient sums a million values a step.
pub(crate) fn sum_f64(v: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x as f64;
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|&x| x as f64).sum();
    acc.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source of test operands: each call, `len` fresh values uniform in [-0.5, 0.5).
    fn values(seed: u32) -> impl FnMut(usize) -> Vec<f32> {
        let mut calls = 0u32;
        move |len| {
            calls += 1;
            let key = crate::rng::hash_u32(seed ^ calls.wrapping_mul(0x9E37_79B9));
            (0..len)
                .map(|i| crate::rng::counter_uniform(key, i as u32) - 0.5)
                .collect()
        }
    }

    fn mat(data: &[f32], rs: usize) -> Mat<'_> {
        Mat { data, rs, cs: 1 }
    }

    /// `alpha A B + beta C` in f64, A and B read through their strides.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        a: Mat,
        b: Mat,
        beta: f32,
        c: &[f32],
    ) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|p| {
                        a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64
                    })
                    .sum();
                let old = if beta == 0.0 {
                    0.0
                } else {
                    beta as f64 * c[i * n + j] as f64
                };
                out[i * n + j] = (alpha as f64 * s + old) as f32;
            }
        }
        out
    }

    /// The single-threaded GEMM against an f64 reference: odd shapes, transposed operands,
    /// alpha and beta; beta 0 never reads C (NaN there).
    #[test]
    fn sgemm_kernels_match_a_reference() {
        let shapes = [
            (1, 1, 1),
            (3, 5, 7),
            (8, 256, 32),
            (9, 257, 33),
            (16, 9, 784),
            (64, 576, 49),
            (12, 256, 32),
            (13, 513, 65),
            (145, 300, 70),
            (5, 40, 1030),
            (0, 3, 4),
            (4, 0, 5),
        ];
        let mut rand = values(1);
        for &(m, k, n) in &shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true)] {
                for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-1.0, 0.25)] {
                    let (a, b, c0) = (rand(m * k), rand(k * n), rand(m * n));
                    let am = if ta {
                        Mat {
                            data: &a,
                            rs: 1,
                            cs: m.max(1),
                        }
                    } else {
                        mat(&a, k)
                    };
                    let bm = if tb {
                        Mat {
                            data: &b,
                            rs: 1,
                            cs: k.max(1),
                        }
                    } else {
                        mat(&b, n)
                    };
                    let want = reference(m, k, n, alpha, am, bm, beta, &c0);
                    let mut c = if beta == 0.0 {
                        vec![f32::NAN; m * n]
                    } else {
                        c0.clone()
                    };
                    let mut c_mm = c.clone();
                    // The dispatched kernel (AVX-512 where the CPU has it), then matrixmultiply.
                    sgemm(m, k, n, alpha, am, bm, beta, &mut c, n.max(1));
                    if m > 0 && n > 0 {
                        // SAFETY: the operands and C are exactly their shapes.
                        unsafe {
                            sgemm_matrixmultiply(m, k, n, alpha, am, bm, beta, c_mm.as_mut_ptr(), n)
                        };
                    }
                    for (kernel, c) in [("dispatched", &c), ("matrixmultiply", &c_mm)] {
                        for (i, (g, w)) in c.iter().zip(&want).enumerate() {
                            assert!(
                                (g - w).abs() <= 1e-5 * (1.0 + k as f32).sqrt(),
                                "{kernel} [{m}, {k}, {n}] ta {ta} tb {tb} alpha {alpha} \
                                 beta {beta}: element {i} is {g}, want {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// `gemm_packed` gives `gemm`'s bits, B stored either way, on one thread and split
    /// across two (blocks of rows for a batch of 32, panels of B for fewer rows), and never
    /// reads C when beta is 0.
    #[test]
    fn gemm_packed_matches_gemm_bit_for_bit() {
        let mut rand = values(5);
        let shapes = [
            (32, 256, 1024),
            (32, 1024, 256),
            // Row tiles of 12, 8 and 4: A read in place, not packed.
            (20, 300, 70),
            (16, 257, 33),
            (4, 9, 64),
            (5, 300, 70),
            (1, 7, 33),
            (13, 513, 65),
            (3, 40, 1030),
            (2, 0, 40),
            (0, 5, 7),
            (4, 5, 0),
        ];
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            for &(m, k, n) in &shapes {
                for tb in [false, true] {
                    for beta in [0.0, 1.0] {
                        let (a, b, c0) = (rand(m * k), rand(k * n), rand(m * n));
                        let am = mat(&a, k);
                        let bm = match tb {
                            true => Mat::new(&b, 1, k.max(1)),
                            false => mat(&b, n),
                        };
                        let c0 = match beta == 0.0 {
                            true => vec![f32::NAN; m * n],
                            false => c0,
                        };
                        let (mut want, mut got) = (c0.clone(), c0);
                        let mut scratch = vec![0f32; PackedB::scratch_len(k, n)];
                        pool.install(|| {
                            if k == 0 {
                                want.iter_mut()
                                    .for_each(|v| *v = if beta == 0.0 { 0.0 } else { *v });
                            } else {
                                gemm(m, k, n, 1.0, am, bm, beta, &mut want);
                            }
                            let pb = PackedB::new(k, n, bm, &mut scratch);
                            gemm_packed(m, 1.0, am, &pb, beta, &mut got);
                        });
                        let same = want
                            .iter()
                            .zip(&got)
                            .all(|(w, g)| w.to_bits() == g.to_bits());
                        assert!(
                            same,
                            "[{m}, {k}, {n}] tb {tb} beta {beta} on {threads} threads differs"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sgemm_multiplies_inside_the_slices() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut c = [1.0f32; 4];
        sgemm(2, 2, 2, 1.0, mat(&a, 2), mat(&b, 2), 1.0, &mut c, 2);
        assert_eq!(c, [20.0, 23.0, 44.0, 51.0]);
    }

    #[test]
    #[should_panic(expected = "A [4, 4] with strides (4, 1) reaches past its 15 elements")]
    fn sgemm_refuses_a_short_a() {
        let (a, b) = (vec![1.0f32; 15], vec![1.0f32; 16]);
        let mut c = vec![0.0f32; 16];
        sgemm(4, 4, 4, 1.0, mat(&a, 4), mat(&b, 4), 0.0, &mut c, 4);
    }

    #[test]
    #[should_panic(expected = "C [4, 4] with row stride 4 reaches past its 15 elements")]
    fn sgemm_refuses_a_short_c() {
        let (a, b) = (vec![1.0f32; 16], vec![1.0f32; 16]);
        let mut c = vec![0.0f32; 15];
        sgemm(4, 4, 4, 1.0, mat(&a, 4), mat(&b, 4), 0.0, &mut c, 4);
    }

    #[test]
    #[should_panic(expected = "B [256, 300] with strides (300, 1) reaches past its 76799 elements")]
    fn parallel_gemm_refuses_a_short_b() {
        // Big enough to split, with m < 4·threads: the column-block path, which writes C
        // through a raw pointer.
        let (a, b) = (vec![1.0f32; 4 * 256], vec![1.0f32; 256 * 300 - 1]);
        let mut c = vec![0.0f32; 4 * 300];
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a 2-thread pool");
        pool.install(|| gemm(4, 256, 300, 1.0, mat(&a, 256), mat(&b, 300), 0.0, &mut c));
    }
}
