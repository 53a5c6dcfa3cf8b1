//! Dispatch of `shaders/pointwise.wgsl`: every elementwise op of the table in
//! `src/ops/pointwise.rs`, one thread per output element walking up to three inputs by
//! broadcast strides.

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{pointwise as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::pointwise::{MAX_RANK, PointwiseOp, Strided};
use std::sync::Arc;

uniform! {
    /// `Params` of `shaders/pointwise.wgsl` (144 bytes).
    pub(crate) struct PointwiseParams {
        pub n: u32,
        pub rank: u32,
        pub a: f32,
        pub b: f32,
        pub dims: [u32; MAX_RANK],
        pub s0: [u32; MAX_RANK],
        pub s1: [u32; MAX_RANK],
        pub s2: [u32; MAX_RANK],
    }
}

/// Each of `v` as u32 (kernel indices are 32-bit).
fn u32s(op: &'static str, v: &[usize; MAX_RANK]) -> Result<[u32; MAX_RANK]> {
    let mut out = [0; MAX_RANK];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = u32_of(op, x)?;
    }
    Ok(out)
}

impl GpuContext {
    /// `out = op(ins…)` over the strided walk `walk`.
    pub(super) fn pointwise_impl(
        self: &Arc<Self>,
        op: &PointwiseOp,
        ins: &[&GpuBuffer],
        out: &mut GpuBuffer,
        walk: &Strided,
    ) -> Result<()> {
        let name = op.f.name();
        let n = walk.numel();
        let p = PointwiseParams {
            n: u32_of(name, n)?,
            rank: walk.rank as u32,
            a: op.a,
            b: op.b,
            dims: u32s(name, &walk.dims)?,
            s0: u32s(name, &walk.strides[0])?,
            s1: u32s(name, &walk.strides[1])?,
            s2: u32s(name, &walk.strides[2])?,
        };
        let first = *ins
            .first()
            .ok_or_else(|| Error::invalid(name, "no input"))?;
        let at = |k: usize| ins.get(k).copied().unwrap_or(first);
        let groups = self.grid(n, 256)?;
        self.dispatch(
            &KernelKey::new(&k::POINTWISE).constant("OP", op.f.code()),
            bytemuck::bytes_of(&p),
            &[(1, out), (2, at(0)), (3, at(1)), (4, at(2))],
            groups,
        )
    }
}
