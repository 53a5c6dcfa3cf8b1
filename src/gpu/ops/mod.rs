//! The GPU [`Backend`]: each method packs its parameters, picks a kernel and records its
//! dispatches into the pending encoder. Nothing here waits for the GPU. Op families with more
//! than one kernel path live in their own file beside their shader (`gemm.rs` ↔ `matmul.wgsl`).

use super::buffers::GpuBuffer;
use super::context::GpuContext;
use super::pipelines::{KernelKey, Shader};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{
    AugmentSpec, Backend, BlockCopy, BmmSpec, BnGeom, Conv2dGeom, DropoutSpec, IndexGeom,
    MatmulSpec, OptimStep, PointwiseOp, Pool2dGeom, Strided,
};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

mod gemm;
mod optim;
mod pointwise;
pub use gemm::{ConvPath, GemmConfig, MatmulKernel};
pub(crate) use gemm::{Epilogue, TuneKey};
pub use optim::OptimSlot;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct EltParams {
    n: u32,
    alpha: f32,
    beta: f32,
    seed: u32,
    offset: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RowParams {
    rows: u32,
    cols: u32,
    alpha: f32,
    /// `accumulate` for count_correct, unused elsewhere.
    flag: u32,
    /// The blocked column sums of reduce.wgsl only (softmax.wgsl reads the first four):
    /// rows per block, beta, and the number of outputs.
    block: u32,
    beta: f32,
    outputs: u32,
    _pad: u32,
}

impl RowParams {
    fn new(op: &'static str, rows: usize, cols: usize, alpha: f32, flag: u32) -> Result<RowParams> {
        Ok(RowParams {
            rows: u32_of(op, rows)?,
            cols: u32_of(op, cols)?,
            alpha,
            flag,
            block: 0,
            beta: 0.0,
            outputs: 0,
            _pad: 0,
        })
    }

    /// A blocked column sum: `rows` in blocks of `block`, `alpha * sum + beta * out`.
    fn sums(rows: usize, cols: usize, block: usize, alpha: f32, beta: f32) -> Result<RowParams> {
        const OP: &str = "sum_rows";
        let outputs = rows.div_ceil(block.max(1)).max(1) * cols;
        Ok(RowParams {
            block: u32_of(OP, block.max(1))?,
            beta,
            outputs: u32_of(OP, outputs)?,
            ..RowParams::new(OP, rows, cols, alpha, 0)?
        })
    }
}

/// Rows one thread of a column sum adds up. Longer columns are summed in blocks into f32
/// partials and those summed again, so no thread loops long: lavapipe cuts every invocation
/// off after 65,535 loop iterations, and on a real GPU one thread per column would idle it.
const SUM_BLOCK: usize = 1024;

/// Shared by im2col.wgsl and pool.wgsl (kernel = pool window).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct WindowParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    total: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ScalerParams {
    n: u32,
    growth_interval: u32,
    init_bits: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GatherParams {
    count: u32,
    row_len: u32,
    offset: u32,
    scale: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct TransposeParams {
    batch: u32,
    rows: u32,
    cols: u32,
    _pad: u32,
    src_dim: u32,
    dst_dim: u32,
    src_off: u32,
    dst_off: u32,
}

/// Kernel indices are u32: every size handed to a kernel must fit.
fn u32_of(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::invalid(
            op,
            format!("size {v} exceeds the 32-bit indexing of the GPU kernels"),
        )
    })
}

impl GpuContext {
    /// Converts `src` (f32 ↔ f16) into a new buffer.
    pub(crate) fn convert(self: &Arc<Self>, src: &GpuBuffer, dtype: DType) -> Result<GpuBuffer> {
        const OP: &str = "to_dtype";
        if !self.supports_f16() {
            return Err(Error::UnsupportedDType {
                op: OP,
                dtype: DType::F16,
                why: format!(
                    "on adapter \"{}\": it lacks SHADER_F16",
                    self.summary().name
                ),
            });
        }
        let out = self.alloc_buffer(src.numel, dtype, OP)?;
        let p = EltParams {
            n: u32_of(OP, src.numel)?,
            ..Default::default()
        };
        let (entry, bindings) = match (src.dtype, dtype) {
            (DType::F32, DType::F16) => ("f32_to_f16", [(1, &out), (2, src)]),
            (DType::F16, DType::F32) => ("f16_to_f32", [(3, &out), (4, src)]),
            (from, to) => {
                return Err(Error::UnsupportedDType {
                    op: OP,
                    dtype: to,
                    why: format!("as a conversion from {from}"),
                });
            }
        };
        let groups = self.grid(src.numel, 256)?;
        self.dispatch(
            &KernelKey::new(Shader::Cast, entry),
            bytemuck::bytes_of(&p),
            &bindings,
            groups,
        )?;
        Ok(out)
    }

    fn elementwise(&self, entry: &'static str, p: EltParams, bufs: &[&GpuBuffer]) -> Result<()> {
        let bindings: Vec<(u32, &GpuBuffer)> = bufs
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u32 + 1, *b))
            .collect();
        let groups = self.grid(p.n as usize, 256)?;
        self.dispatch(
            &KernelKey::new(Shader::Elementwise, entry),
            bytemuck::bytes_of(&p),
            &bindings,
            groups,
        )
    }

    fn window(
        &self,
        shader: Shader,
        entry: &'static str,
        p: WindowParams,
        bindings: &[(u32, &GpuBuffer)],
    ) -> Result<()> {
        let groups = self.grid(p.total as usize, 256)?;
        self.dispatch(
            &KernelKey::new(shader, entry),
            bytemuck::bytes_of(&p),
            bindings,
            groups,
        )
    }

    /// The kernel of a workgroup reduction of reduce.wgsl: its subgroup version where the
    /// context uses subgroups ([`GpuContext::uses_subgroups`]).
    fn reduction(&self, entry: &'static str) -> (Shader, &'static str) {
        if !self.uses_subgroups() {
            return (Shader::Reduce, entry);
        }
        let sg = match entry {
            "sum_cols" => "sum_cols_sg",
            "sum_cols_part" => "sum_cols_part_sg",
            "sum_cols_f32" => "sum_cols_f32_sg",
            "count_correct" => "count_correct_sg",
            _ => return (Shader::Reduce, entry),
        };
        (Shader::ReduceSubgroup, sg)
    }

    fn rows(
        &self,
        shader: Shader,
        entry: &'static str,
        p: RowParams,
        bindings: &[(u32, &GpuBuffer)],
        groups: [u32; 3],
    ) -> Result<()> {
        self.dispatch(
            &KernelKey::new(shader, entry),
            bytemuck::bytes_of(&p),
            bindings,
            groups,
        )
    }

    /// One thread per element of `x` against the loss-scaler `state` (scaler.wgsl).
    fn scaler_elementwise(
        &self,
        entry: &'static str,
        x: &GpuBuffer,
        state: &GpuBuffer,
        n: usize,
    ) -> Result<()> {
        let p = ScalerParams {
            n: u32_of("scaler", n)?,
            growth_interval: 0,
            init_bits: 0,
            _pad: 0,
        };
        self.dispatch(
            &KernelKey::new(Shader::Scaler, entry),
            bytemuck::bytes_of(&p),
            &[(1, x), (2, state)],
            self.grid(n, 256)?,
        )
    }

    /// `out [cols] = alpha * Σ_rows x [rows, cols] + beta * out`, in blocks of [`SUM_BLOCK`]
    /// rows (f32 partials between the stages).
    fn column_sums(
        self: &Arc<Self>,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        alpha: f32,
        beta: f32,
    ) -> Result<()> {
        if cols == 0 {
            return Ok(());
        }
        if rows <= SUM_BLOCK {
            let p = RowParams::sums(rows, cols, rows, alpha, beta)?;
            let groups = self.grid(cols, 256)?;
            return self.rows(Shader::Reduce, "sum_rows", p, &[(1, out), (2, x)], groups);
        }
        let p = RowParams::sums(rows, cols, SUM_BLOCK, 1.0, 0.0)?;
        let part = self.alloc_buffer(p.outputs as usize, DType::F32, "sum_rows partials")?;
        let groups = self.grid(p.outputs as usize, 256)?;
        self.rows(
            Shader::Reduce,
            "sum_rows_part",
            p,
            &[(5, &part), (2, x)],
            groups,
        )?;
        self.sum_partials(part, rows.div_ceil(SUM_BLOCK), cols, out, alpha, beta)
    }

    /// `out [cols] = alpha * Σ_rows part [rows, cols] + beta * out` over f32 partials.
    fn sum_partials(
        self: &Arc<Self>,
        mut part: GpuBuffer,
        mut rows: usize,
        cols: usize,
        out: &mut GpuBuffer,
        alpha: f32,
        beta: f32,
    ) -> Result<()> {
        while rows > SUM_BLOCK {
            let p = RowParams::sums(rows, cols, SUM_BLOCK, 1.0, 0.0)?;
            let next = self.alloc_buffer(p.outputs as usize, DType::F32, "sum_rows partials")?;
            let groups = self.grid(p.outputs as usize, 256)?;
            self.rows(
                Shader::Reduce,
                "sum_rows_part_f32",
                p,
                &[(5, &next), (6, &part)],
                groups,
            )?;
            part = next;
            rows = rows.div_ceil(SUM_BLOCK);
        }
        let p = RowParams::sums(rows, cols, rows, alpha, beta)?;
        let groups = self.grid(cols, 256)?;
        self.rows(
            Shader::Reduce,
            "sum_rows_final",
            p,
            &[(1, out), (6, &part)],
            groups,
        )
    }
}

fn conv_params(op: &'static str, g: &Conv2dGeom, total: usize) -> Result<WindowParams> {
    Ok(WindowParams {
        n: u32_of(op, g.n)?,
        c: u32_of(op, g.c)?,
        h: u32_of(op, g.h)?,
        w: u32_of(op, g.w)?,
        kh: u32_of(op, g.kh)?,
        kw: u32_of(op, g.kw)?,
        stride: u32_of(op, g.stride)?,
        pad: u32_of(op, g.pad)?,
        oh: u32_of(op, g.out_h())?,
        ow: u32_of(op, g.out_w())?,
        total: u32_of(op, total)?,
        _pad: 0,
    })
}

fn pool_params(op: &'static str, g: &Pool2dGeom, total: usize) -> Result<WindowParams> {
    let as_conv = Conv2dGeom {
        n: g.n,
        c: g.c,
        h: g.h,
        w: g.w,
        kh: g.ph,
        kw: g.pw,
        stride: g.stride,
        pad: g.pad,
    };
    conv_params(op, &as_conv, total)
}

impl Backend for Arc<GpuContext> {
    type Buf = GpuBuffer;

    fn alloc(&self, numel: usize, dtype: DType, what: &str) -> Result<GpuBuffer> {
        if dtype == DType::F16 && !self.supports_f16() {
            return Err(Error::UnsupportedDType {
                op: "alloc",
                dtype,
                why: format!(
                    "on adapter \"{}\": it lacks SHADER_F16",
                    self.summary().name
                ),
            });
        }
        self.alloc_buffer(numel, dtype, what)
    }

    fn matmul(
        &self,
        a: &GpuBuffer,
        b: &GpuBuffer,
        c: &mut GpuBuffer,
        s: &MatmulSpec,
    ) -> Result<()> {
        self.gemm_matmul(a, b, c, s, Epilogue::default())
    }

    fn axpy(&self, alpha: f32, x: &GpuBuffer, y: &mut GpuBuffer, n: usize) -> Result<()> {
        let p = EltParams {
            n: u32_of("axpy", n)?,
            alpha,
            ..Default::default()
        };
        self.elementwise("axpy", p, &[y, x])
    }

    fn fill(&self, out: &mut GpuBuffer, value: f32, n: usize) -> Result<()> {
        let p = EltParams {
            n: u32_of("fill", n)?,
            alpha: value,
            ..Default::default()
        };
        self.elementwise("fill", p, &[out])
    }

    fn sum_rows(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()> {
        self.column_sums(x, out, rows, cols, alpha, 0.0)
    }

    fn sum_cols(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()> {
        const OP: &str = "sum_cols";
        // A whole row per workgroup while each thread adds at most SUM_BLOCK of it.
        const ROW_BLOCK: usize = 256 * SUM_BLOCK;
        let blocked = |cols: usize, block: usize, alpha: f32| -> Result<RowParams> {
            Ok(RowParams {
                block: u32_of(OP, block.max(1))?,
                outputs: u32_of(OP, rows * cols.div_ceil(block.max(1)).max(1))?,
                ..RowParams::new(OP, rows, cols, alpha, 0)?
            })
        };
        if cols <= ROW_BLOCK {
            let p = blocked(cols, cols, alpha)?;
            let groups = self.grid(rows, 1)?;
            let (shader, entry) = self.reduction(OP);
            return self.rows(shader, entry, p, &[(1, out), (2, x)], groups);
        }
        let p = blocked(cols, ROW_BLOCK, 1.0)?;
        let part = self.alloc_buffer(p.outputs as usize, DType::F32, "sum_cols partials")?;
        let groups = self.grid(p.outputs as usize, 1)?;
        let (shader, entry) = self.reduction("sum_cols_part");
        self.rows(shader, entry, p, &[(5, &part), (2, x)], groups)?;
        let blocks = cols.div_ceil(ROW_BLOCK);
        let p = blocked(blocks, blocks, alpha)?;
        let groups = self.grid(rows, 1)?;
        let (shader, entry) = self.reduction("sum_cols_f32");
        self.rows(shader, entry, p, &[(1, out), (6, &part)], groups)
    }

    fn softmax(&self, x: &GpuBuffer, out: &mut GpuBuffer, rows: usize, cols: usize) -> Result<()> {
        let p = RowParams::new("softmax", rows, cols, 1.0, 0)?;
        let groups = self.grid(rows, 1)?;
        self.rows(Shader::Softmax, "softmax", p, &[(1, out), (2, x)], groups)
    }

    fn softmax_bwd(
        &self,
        y: &GpuBuffer,
        dy: &GpuBuffer,
        dx: &mut GpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let p = RowParams::new("softmax_backward", rows, cols, 1.0, 0)?;
        let groups = self.grid(rows, 1)?;
        self.rows(
            Shader::Softmax,
            "softmax_bwd",
            p,
            &[(1, dx), (2, y), (3, dy)],
            groups,
        )
    }

    fn softmax_ce(
        &self,
        logits: &GpuBuffer,
        labels: &GpuBuffer,
        probs: &mut GpuBuffer,
        row_loss: &mut GpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "softmax_cross_entropy";
        let p = RowParams::new(OP, rows, cols, 1.0, 0)?;
        let groups = self.grid(rows, 1)?;
        self.rows(
            Shader::Softmax,
            "softmax_ce",
            p,
            &[(1, probs), (2, logits), (4, labels), (5, row_loss)],
            groups,
        )
    }

    fn softmax_ce_bwd(
        &self,
        probs: &GpuBuffer,
        labels: &GpuBuffer,
        dout: Option<&GpuBuffer>,
        dx: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        scale: f32,
    ) -> Result<()> {
        const OP: &str = "softmax_cross_entropy_backward";
        let p = RowParams::new(OP, rows, cols, scale, 0)?;
        let groups = self.grid(rows * cols, 256)?;
        // Without an upstream gradient, binding 3 (unread) gets the probabilities.
        self.dispatch(
            &KernelKey::new(Shader::Softmax, "softmax_ce_bwd")
                .constant("DOUT", dout.is_some() as u32),
            bytemuck::bytes_of(&p),
            &[(1, dx), (2, probs), (3, dout.unwrap_or(probs)), (4, labels)],
            groups,
        )
    }

    fn im2col(&self, x: &GpuBuffer, col: &mut GpuBuffer, g: &Conv2dGeom) -> Result<()> {
        let p = conv_params("im2col", g, g.col_rows() * g.col_cols())?;
        self.window(Shader::Im2col, "im2col", p, &[(1, col), (2, x)])
    }

    fn col2im(&self, col: &GpuBuffer, x: &mut GpuBuffer, g: &Conv2dGeom) -> Result<()> {
        let p = conv_params("col2im", g, g.n * g.c * g.h * g.w)?;
        self.window(Shader::Im2col, "col2im", p, &[(1, x), (2, col)])
    }

    fn max_pool(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        idx: &mut GpuBuffer,
        g: &Pool2dGeom,
    ) -> Result<()> {
        let p = pool_params("max_pool2d", g, g.n * g.c * g.out_h() * g.out_w())?;
        self.window(Shader::Pool, "max_pool", p, &[(1, out), (2, idx), (3, x)])
    }

    fn max_pool_bwd(
        &self,
        dy: &GpuBuffer,
        idx: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &Pool2dGeom,
    ) -> Result<()> {
        let p = pool_params("max_pool2d_backward", g, g.n * g.c * g.h * g.w)?;
        self.window(
            Shader::Pool,
            "max_pool_bwd",
            p,
            &[(1, dx), (2, idx), (3, dy)],
        )
    }

    fn argmax_rows(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let p = RowParams::new("argmax_rows", rows, cols, 1.0, 0)?;
        let groups = self.grid(rows, 256)?;
        self.rows(
            Shader::Reduce,
            "argmax_rows",
            p,
            &[(2, x), (3, out)],
            groups,
        )
    }

    fn count_correct(
        &self,
        x: &GpuBuffer,
        labels: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) -> Result<()> {
        let p = RowParams::new("count_correct", rows, cols, 1.0, accumulate as u32)?;
        let (shader, entry) = self.reduction("count_correct");
        self.rows(
            shader,
            entry,
            p,
            &[(2, x), (3, out), (4, labels)],
            [1, 1, 1],
        )
    }

    fn dropout_mask(&self, out: &mut GpuBuffer, n: usize, spec: &DropoutSpec) -> Result<()> {
        let p = EltParams {
            n: u32_of("dropout_mask", n)?,
            alpha: spec.ratio,
            beta: spec.scale,
            seed: spec.seed,
            offset: spec.offset,
            _pad: [0; 3],
        };
        self.elementwise("dropout_mask", p, &[out])
    }

    fn optim_update(
        &self,
        s: &OptimStep,
        w: &mut GpuBuffer,
        g: &GpuBuffer,
        s1: Option<&mut GpuBuffer>,
        s2: Option<&mut GpuBuffer>,
        guard: &GpuBuffer,
        n: usize,
    ) -> Result<()> {
        self.optim_single(s, w, g, s1, s2, guard, n)
    }

    fn scaler_init(&self, state: &mut GpuBuffer, init_scale: f32) -> Result<()> {
        let p = ScalerParams {
            n: 1,
            growth_interval: 0,
            init_bits: init_scale.to_bits(),
            _pad: 0,
        };
        self.dispatch(
            &KernelKey::new(Shader::Scaler, "init"),
            bytemuck::bytes_of(&p),
            &[(2, &*state)],
            [1, 1, 1],
        )
    }

    fn scaler_scale(&self, x: &mut GpuBuffer, state: &GpuBuffer, n: usize) -> Result<()> {
        self.scaler_elementwise("scale_in_place", x, state, n)
    }

    fn scaler_check(&self, x: &GpuBuffer, state: &mut GpuBuffer, n: usize) -> Result<()> {
        self.scaler_elementwise("nonfinite", x, state, n)
    }

    fn scaler_update(&self, state: &mut GpuBuffer, growth_interval: u32) -> Result<()> {
        let p = ScalerParams {
            n: 1,
            growth_interval,
            init_bits: 0,
            _pad: 0,
        };
        self.dispatch(
            &KernelKey::new(Shader::Scaler, "update"),
            bytemuck::bytes_of(&p),
            &[(2, &*state)],
            [1, 1, 1],
        )
    }

    fn gather_bytes(
        &self,
        src: &GpuBuffer,
        perm: &GpuBuffer,
        offset: usize,
        count: usize,
        row_len: usize,
        scale: f32,
        out: &mut GpuBuffer,
    ) -> Result<()> {
        const OP: &str = "gather_bytes";
        if offset + count > perm.numel {
            return Err(Error::invalid(
                OP,
                format!(
                    "rows {offset}..{} of a permutation of {}",
                    offset + count,
                    perm.numel
                ),
            ));
        }
        let p = GatherParams {
            count: u32_of(OP, count)?,
            row_len: u32_of(OP, row_len)?,
            offset: u32_of(OP, offset)?,
            scale,
        };
        let groups = self.grid(count * row_len, 256)?;
        let (entry, slot) = match out.dtype {
            DType::U32 => ("gather_u32", 4),
            _ => ("gather_f32", 1),
        };
        self.dispatch(
            &KernelKey::new(Shader::Data, entry),
            bytemuck::bytes_of(&p),
            &[(slot, &*out), (2, src), (3, perm)],
            groups,
        )
    }

    fn conv2d(
        &self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        b: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        self.conv_forward(x, w, b, out, g, fout, false)
    }

    fn conv2d_bwd(
        &self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        dout: &GpuBuffer,
        dx: Option<&mut GpuBuffer>,
        dw: &mut GpuBuffer,
        db: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        self.conv_backward(x, w, dout, None, dx, dw, db, g, fout)
    }

    fn dropout_apply(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        n: usize,
        spec: &DropoutSpec,
        _dtype: DType,
    ) -> Result<()> {
        let p = EltParams {
            n: u32_of("dropout", n)?,
            alpha: spec.ratio,
            beta: spec.scale,
            seed: spec.seed,
            offset: spec.offset,
            _pad: [0; 3],
        };
        self.elementwise("dropout_apply", p, &[out, x])
    }

    fn conv2d_relu(
        &self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        b: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
        _dtype: DType,
    ) -> Result<()> {
        self.conv_forward(x, w, b, out, g, fout, true)
    }

    fn conv2d_relu_bwd(
        &self,
        x: &GpuBuffer,
        w: &GpuBuffer,
        y: &GpuBuffer,
        dout: &GpuBuffer,
        dx: Option<&mut GpuBuffer>,
        dw: &mut GpuBuffer,
        db: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
        _dtype: DType,
    ) -> Result<()> {
        self.conv_backward(x, w, dout, Some(y), dx, dw, db, g, fout)
    }

    fn matmul_bias(
        &self,
        a: &GpuBuffer,
        b: &GpuBuffer,
        bias: &GpuBuffer,
        c: &mut GpuBuffer,
        s: &MatmulSpec,
        relu: bool,
        _dtype: DType,
    ) -> Result<()> {
        let epi = Epilogue {
            bias: Some(bias),
            relu,
        };
        self.gemm_matmul(a, b, c, s, epi)
    }

    fn gather_rows(
        &self,
        table: &GpuBuffer,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        count: usize,
        row_len: usize,
    ) -> Result<()> {
        const OP: &str = "embedding";
        let p = GatherParams {
            count: u32_of(OP, count)?,
            row_len: u32_of(OP, row_len)?,
            offset: 0,
            scale: f32::from_bits(u32_of(OP, table.numel / row_len.max(1))?),
        };
        let groups = self.grid(count * row_len, 256)?;
        self.dispatch(
            &KernelKey::new(Shader::Data, "gather_rows"),
            bytemuck::bytes_of(&p),
            &[(1, &*out), (3, idx), (5, table)],
            groups,
        )
    }

    fn one_hot(
        &self,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        count: usize,
        classes: usize,
    ) -> Result<()> {
        const OP: &str = "one_hot";
        let p = GatherParams {
            count: u32_of(OP, count)?,
            row_len: u32_of(OP, classes)?,
            offset: 0,
            scale: 0.0,
        };
        let groups = self.grid(count * classes, 256)?;
        self.dispatch(
            &KernelKey::new(Shader::Data, "one_hot"),
            bytemuck::bytes_of(&p),
            &[(1, &*out), (3, idx)],
            groups,
        )
    }

    fn bn_stats(
        &self,
        x: &GpuBuffer,
        saved: &mut GpuBuffer,
        var: &mut GpuBuffer,
        g: &BnGeom,
    ) -> Result<()> {
        let p = bn_params(g)?;
        let groups = self.grid(g.c, 1)?;
        self.dispatch(
            &KernelKey::new(Shader::Norm, "bn_stats"),
            bytemuck::bytes_of(&p),
            &[(2, x), (6, &*saved), (8, &*var)],
            groups,
        )
    }

    fn bn_apply(
        &self,
        x: &GpuBuffer,
        saved: &GpuBuffer,
        gamma: &GpuBuffer,
        beta: &GpuBuffer,
        y: &mut GpuBuffer,
        g: &BnGeom,
    ) -> Result<()> {
        let p = bn_params(g)?;
        let groups = self.grid(g.n * g.c * g.s, 256)?;
        self.dispatch(
            &KernelKey::new(Shader::Norm, "bn_apply"),
            bytemuck::bytes_of(&p),
            &[(1, &*y), (2, x), (4, gamma), (5, beta), (7, saved)],
            groups,
        )
    }

    fn bn_bwd_reduce(
        &self,
        x: &GpuBuffer,
        dy: &GpuBuffer,
        saved: &GpuBuffer,
        dgamma: &mut GpuBuffer,
        dbeta: &mut GpuBuffer,
        g: &BnGeom,
    ) -> Result<()> {
        let p = bn_params(g)?;
        let groups = self.grid(g.c, 1)?;
        self.dispatch(
            &KernelKey::new(Shader::Norm, "bn_bwd_reduce"),
            bytemuck::bytes_of(&p),
            &[(2, x), (3, dy), (6, &*dgamma), (7, saved), (8, &*dbeta)],
            groups,
        )
    }

    fn bn_bwd_dx(
        &self,
        x: &GpuBuffer,
        dy: &GpuBuffer,
        saved: &GpuBuffer,
        gamma: &GpuBuffer,
        dgamma: &GpuBuffer,
        dbeta: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &BnGeom,
    ) -> Result<()> {
        let p = bn_params(g)?;
        let groups = self.grid(g.n * g.c * g.s, 256)?;
        self.dispatch(
            &KernelKey::new(Shader::Norm, "bn_bwd_dx"),
            bytemuck::bytes_of(&p),
            &[
                (1, &*dx),
                (2, x),
                (3, dy),
                (4, gamma),
                (6, dgamma),
                (7, saved),
                (8, dbeta),
            ],
            groups,
        )
    }

    fn resize_bilinear(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
    ) -> Result<()> {
        const OP: &str = "resize_bilinear";
        let p = TransposeParams {
            batch: u32_of(OP, planes)?,
            rows: u32_of(OP, h)?,
            cols: u32_of(OP, w)?,
            _pad: 0,
            src_dim: u32_of(OP, oh)?,
            dst_dim: u32_of(OP, ow)?,
            src_off: 0,
            dst_off: 0,
        };
        let groups = self.grid(planes * oh * ow, 256)?;
        self.dispatch(
            &KernelKey::new(Shader::Layout, "resize_bilinear"),
            bytemuck::bytes_of(&p),
            &[(1, &*out), (2, x)],
            groups,
        )
    }

    fn augment(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        spec: &AugmentSpec,
    ) -> Result<()> {
        const OP: &str = "augment";
        let p = AugmentParams {
            n: u32_of(OP, n)?,
            c: u32_of(OP, c)?,
            h: u32_of(OP, h)?,
            w: u32_of(OP, w)?,
            seed: spec.seed,
            offset: spec.offset,
            flip: spec.flip as u32,
            radius: u32_of(OP, spec.elastic_radius())?,
            rotate: spec.rotate,
            scale: spec.scale,
            shift: spec.shift,
            brightness: spec.brightness,
            contrast: spec.contrast,
            alpha: spec.elastic_alpha,
            sigma: spec.elastic_sigma,
            _p3: 0.0,
        };
        let groups = self.grid(n * c * h * w, 256)?;
        if !spec.elastic() {
            return self.dispatch(
                &KernelKey::new(Shader::Augment, "augment"),
                bytemuck::bytes_of(&p),
                &[(1, &*out), (2, x)],
                groups,
            );
        }
        // The field's horizontal pass over every row the vertical pass reads.
        let rows_len = n * 2 * (h + 2 * spec.elastic_radius()) * w;
        let rows = self.alloc_buffer(rows_len, DType::F32, "augment: elastic rows")?;
        self.dispatch(
            &KernelKey::new(Shader::Augment, "elastic_rows"),
            bytemuck::bytes_of(&p),
            &[(3, &rows)],
            self.grid(rows_len, 256)?,
        )?;
        self.dispatch(
            &KernelKey::new(Shader::Augment, "augment_elastic"),
            bytemuck::bytes_of(&p),
            &[(1, &*out), (2, x), (3, &rows)],
            groups,
        )
    }

    fn copy_block(&self, src: &GpuBuffer, dst: &mut GpuBuffer, b: &BlockCopy) -> Result<()> {
        const OP: &str = "copy_block";
        let p = TransposeParams {
            batch: u32_of(OP, b.outer)?,
            rows: u32_of(OP, b.len)?,
            cols: u32_of(OP, b.inner)?,
            _pad: 0,
            src_dim: u32_of(OP, b.src_dim)?,
            dst_dim: u32_of(OP, b.dst_dim)?,
            src_off: u32_of(OP, b.src_off)?,
            dst_off: u32_of(OP, b.dst_off)?,
        };
        u32_of(OP, b.outer * b.dst_dim * b.inner)?;
        let groups = self.grid(b.numel(), 256)?;
        self.dispatch(
            &KernelKey::new(Shader::Layout, "copy_block"),
            bytemuck::bytes_of(&p),
            &[(1, dst), (2, src)],
            groups,
        )
    }

    fn pointwise(
        &self,
        op: &PointwiseOp,
        ins: &[&GpuBuffer],
        out: &mut GpuBuffer,
        walk: &Strided,
    ) -> Result<()> {
        self.pointwise_impl(op, ins, out, walk)
    }

    fn extreme_rows(
        &self,
        x: &GpuBuffer,
        values: &mut GpuBuffer,
        indices: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        min: bool,
    ) -> Result<()> {
        self.extreme_rows_impl(x, values, indices, rows, cols, min)
    }

    fn index_select(
        &self,
        x: &GpuBuffer,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        self.index_impl("index_select", x, idx, out, g, g.outer * g.count * g.inner)
    }

    fn index_select_bwd(
        &self,
        dy: &GpuBuffer,
        idx: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        self.index_impl(
            "index_select_bwd",
            dy,
            idx,
            dx,
            g,
            g.outer * g.size * g.inner,
        )
    }

    fn gather(
        &self,
        x: &GpuBuffer,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        self.index_impl("gather", x, idx, out, g, g.outer * g.count * g.inner)
    }

    fn gather_bwd(
        &self,
        dy: &GpuBuffer,
        idx: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        self.index_impl("gather_bwd", dy, idx, dx, g, g.outer * g.size * g.inner)
    }

    fn bmm(&self, a: &GpuBuffer, b: &GpuBuffer, c: &mut GpuBuffer, s: &BmmSpec) -> Result<()> {
        self.bmm_impl(a, b, c, s)
    }

    fn transpose(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        batch: usize,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        const OP: &str = "transpose";
        let p = TransposeParams {
            batch: u32_of(OP, batch)?,
            rows: u32_of(OP, rows)?,
            cols: u32_of(OP, cols)?,
            ..Zeroable::zeroed()
        };
        let groups = self.grid(batch * rows * cols, 256)?;
        self.dispatch(
            &KernelKey::new(Shader::Layout, "transpose"),
            bytemuck::bytes_of(&p),
            &[(1, out), (2, x)],
            groups,
        )
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AugmentParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    seed: u32,
    offset: u32,
    flip: u32,
    radius: u32,
    rotate: f32,
    scale: f32,
    shift: f32,
    brightness: f32,
    contrast: f32,
    alpha: f32,
    sigma: f32,
    _p3: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct BnParams {
    n: u32,
    c: u32,
    s: u32,
    eps: f32,
}

/// Per-channel values each thread of a norm.wgsl reduction visits: m / 256 must stay under
/// lavapipe's 65,535-iteration cutoff (a real GPU has none, but one limit everywhere keeps
/// the kernels' results the same on every adapter).
const BN_MAX_PER_CHANNEL: usize = 256 * 65_000;

fn bn_params(g: &BnGeom) -> Result<BnParams> {
    const OP: &str = "batch_norm";
    if g.n * g.s > BN_MAX_PER_CHANNEL {
        return Err(Error::invalid(
            OP,
            format!(
                "{} values per channel exceed the kernel's {BN_MAX_PER_CHANNEL}",
                g.n * g.s
            ),
        ));
    }
    Ok(BnParams {
        n: u32_of(OP, g.n)?,
        c: u32_of(OP, g.c)?,
        s: u32_of(OP, g.s)?,
        eps: g.eps,
    })
}
