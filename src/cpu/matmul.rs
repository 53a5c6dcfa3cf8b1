//! The 2-D product (through `gemm.rs`'s engine, transposes read through strides) and the
//! batched product of `matmul` at rank > 2.

#[allow(unused_imports)]
use super::*;

impl CpuBackend {
    pub(super) fn matmul(
        &self,
        a: &CpuStorage,
        b: &CpuStorage,
        c: &mut CpuStorage,
        s: &MatmulSpec,
    ) -> Result<()> {
        const OP: &str = "matmul";
        let (a, b, c) = (a.f32s(OP)?, b.f32s(OP)?, c.f32s_mut(OP)?);
        if a.len() < s.m * s.k || b.len() < s.k * s.n || c.len() < s.m * s.n {
            return Err(Error::invalid(OP, format!("buffers too small for {s:?}")));
        }
        // Stored layouts as strides, so op(A) and op(B) are read in place.
        let (am, bm) = (
            stored(a, s.m, s.k, s.trans_a),
            stored(b, s.k, s.n, s.trans_b),
        );
        if s.k == 0 {
            // No products: C = beta C, never reading a previous C when beta is 0 (it may
            // hold NaN). With products, the kernels do not read C when beta is 0.
            let c = &mut c[..s.m * s.n];
            match s.beta == 0.0 {
                true => c.fill(0.0),
                false => c.iter_mut().for_each(|v| *v *= s.beta),
            }
            return Ok(());
        }
        gemm(s.m, s.k, s.n, s.alpha, am, bm, s.beta, c);
        Ok(())
    }

    pub(super) fn bmm(
        &self,
        a: &CpuStorage,
        b: &CpuStorage,
        c: &mut CpuStorage,
        s: &BmmSpec,
    ) -> Result<()> {
        const OP: &str = "bmm";
        let (a, b, c) = (a.f32s(OP)?, b.f32s(OP)?, c.f32s_mut(OP)?);
        let (mk, kn, mn) = (s.m * s.k, s.k * s.n, s.m * s.n);
        let last = s.batch.saturating_sub(1);
        if a.len() < last * s.stride_a + mk
            || b.len() < last * s.stride_b + kn
            || c.len() < s.batch * mn
        {
            return Err(Error::invalid(OP, format!("buffers too small for {s:?}")));
        }
        for i in 0..s.batch {
            let (a, b) = (&a[i * s.stride_a..], &b[i * s.stride_b..]);
            let c = &mut c[i * mn..(i + 1) * mn];
            let (am, bm) = (
                stored(a, s.m, s.k, s.trans_a),
                stored(b, s.k, s.n, s.trans_b),
            );
            match s.k {
                0 => c.fill(0.0),
                _ => gemm(s.m, s.k, s.n, 1.0, am, bm, 0.0, c),
            }
        }
        Ok(())
    }
}

/// An operand `op(X)` of `rows × cols` as strides over its stored layout: `[rows, cols]`, or
/// `[cols, rows]` read transposed when `trans`.
fn stored(data: &[f32], rows: usize, cols: usize, trans: bool) -> Mat<'_> {
    if trans {
        Mat {
            data,
            rs: 1,
            cs: rows,
        }
    } else {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }
}
