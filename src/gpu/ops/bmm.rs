//! Dispatch of `shaders/bmm.wgsl`: batched matmul with per-batch strides (matmul at any
//! rank; the 2-D products go through `gemm.rs`).

use super::u32_of;
use crate::error::Result;
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{bmm as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::BmmSpec;
use std::sync::Arc;

uniform! {
    /// `Params` of `shaders/bmm.wgsl`.
    pub(crate) struct BmmParams {
        pub m: u32,
        pub n: u32,
        pub k: u32,
        pub batch: u32,
        pub stride_a: u32,
        pub stride_b: u32,
        pub _p0: u32,
        pub _p1: u32,
    }
}

impl GpuContext {
    /// `c[b] = op(a[b]) · op(b[b])` for every batch.
    pub(super) fn bmm_impl(
        self: &Arc<Self>,
        a: &GpuBuffer,
        b: &GpuBuffer,
        c: &mut GpuBuffer,
        s: &BmmSpec,
    ) -> Result<()> {
        const OP: &str = "bmm";
        u32_of(OP, s.batch * s.m * s.n)?;
        u32_of(OP, s.batch * s.stride_a.max(s.m * s.k))?;
        u32_of(OP, s.batch * s.stride_b.max(s.k * s.n))?;
        let p = BmmParams {
            m: u32_of(OP, s.m)?,
            n: u32_of(OP, s.n)?,
            k: u32_of(OP, s.k)?,
            batch: u32_of(OP, s.batch)?,
            stride_a: u32_of(OP, s.stride_a)?,
            stride_b: u32_of(OP, s.stride_b)?,
            _p0: 0,
            _p1: 0,
        };
        let groups = [
            u32_of(OP, s.n.div_ceil(16))?,
            u32_of(OP, s.m.div_ceil(16))?,
            u32_of(OP, s.batch)?,
        ];
        self.dispatch(
            &KernelKey::new(&k::BMM)
                .constant("TRANS_A", s.trans_a as u32)
                .constant("TRANS_B", s.trans_b as u32),
            bytemuck::bytes_of(&p),
            &[(1, c), (2, a), (3, b)],
            groups,
        )
    }
}
