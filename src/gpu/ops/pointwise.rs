//! Dispatch of `shaders/pointwise.wgsl` (every elementwise op, see `src/ops/pointwise.rs`)
//! and of `shaders/index.wgsl` and `shaders/bmm.wgsl`.

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::pipelines::{KernelKey, Shader};
use crate::ops::pointwise::{MAX_RANK, PointwiseOp, Strided};
use crate::ops::{BmmSpec, IndexGeom};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// `Params` of `shaders/pointwise.wgsl` (144 bytes).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
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

/// `Params` of `shaders/index.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct IndexParams {
    pub outer: u32,
    pub size: u32,
    pub inner: u32,
    pub count: u32,
}

/// `Params` of `shaders/bmm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
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

fn u32s(op: &'static str, v: &[usize; MAX_RANK]) -> Result<[u32; MAX_RANK]> {
    let mut out = [0; MAX_RANK];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = u32_of(op, x)?;
    }
    Ok(out)
}

impl GpuContext {
    pub(crate) fn pointwise_impl(
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
            &KernelKey::new(Shader::Pointwise, "pointwise").constant("OP", op.f.code()),
            bytemuck::bytes_of(&p),
            &[(1, out), (2, at(0)), (3, at(1)), (4, at(2))],
            groups,
        )
    }

    fn index_params(op: &'static str, g: &IndexGeom) -> Result<IndexParams> {
        u32_of(op, g.outer * g.size.max(g.count) * g.inner)?;
        Ok(IndexParams {
            outer: u32_of(op, g.outer)?,
            size: u32_of(op, g.size)?,
            inner: u32_of(op, g.inner)?,
            count: u32_of(op, g.count)?,
        })
    }

    /// One of index.wgsl's gather-like entries: one thread per element of `out`, which has
    /// `outputs` elements; `x` is read, `idx` indexes.
    pub(crate) fn index_impl(
        self: &Arc<Self>,
        entry: &'static str,
        x: &GpuBuffer,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &IndexGeom,
        outputs: usize,
    ) -> Result<()> {
        let p = Self::index_params(entry, g)?;
        let groups = self.grid(outputs, 256)?;
        self.dispatch(
            &KernelKey::new(Shader::Index, entry),
            bytemuck::bytes_of(&p),
            &[(1, out), (2, x), (3, idx)],
            groups,
        )
    }

    pub(crate) fn extreme_rows_impl(
        self: &Arc<Self>,
        x: &GpuBuffer,
        values: &mut GpuBuffer,
        indices: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        min: bool,
    ) -> Result<()> {
        const OP: &str = "extreme_rows";
        let p = Self::index_params(
            OP,
            &IndexGeom {
                outer: rows,
                size: cols,
                inner: 1,
                count: 1,
            },
        )?;
        let groups = self.grid(rows, 1)?;
        self.dispatch(
            &KernelKey::new(Shader::Index, OP).constant("MIN", min as u32),
            bytemuck::bytes_of(&p),
            &[(1, values), (2, x), (4, indices)],
            groups,
        )
    }

    pub(crate) fn bmm_impl(
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
            &KernelKey::new(Shader::Bmm, OP)
                .constant("TRANS_A", s.trans_a as u32)
                .constant("TRANS_B", s.trans_b as u32),
            bytemuck::bytes_of(&p),
            &[(1, c), (2, a), (3, b)],
            groups,
        )
    }
}
