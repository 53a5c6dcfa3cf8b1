//! The GPU [`Backend`]: `impl Backend for Arc<GpuContext>`, each method a forward to the
//! dispatch code of its op family, which sits in `<family>.rs` beside `shaders/<family>.wgsl`
//! (`gemm.rs` ↔ `matmul.wgsl`, its configurations and autotune in `gemm_tune.rs`). A family
//! file packs its op's uniform parameters (declared with `kernels::uniform!`, the Rust twin of
//! the shader's `struct Params`), picks a kernel of the table in `kernels.rs` and records its
//! dispatches into the pending encoder; nothing here waits for the GPU.

use super::buffers::GpuBuffer;
use super::context::GpuContext;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{
    AugmentSpec, Backend, BlockCopy, BmmSpec, BnGeom, Conv2dGeom, DropoutSpec, IndexGeom,
    MatmulSpec, OptimStep, PointwiseOp, Pool2dGeom, RandomSpec, RnnCellBwd, RnnCellFwd, RnnStep,
    Strided,
};
use std::sync::Arc;

pub(super) mod augment;
pub(super) mod bmm;
pub(super) mod cast;
pub(super) mod data;
pub(super) mod elementwise;
pub(super) mod gemm;
mod gemm_tune;
pub(super) mod im2col;
pub(super) mod index;
pub(super) mod layout;
pub(super) mod norm;
pub(super) mod optim;
pub(super) mod pointwise;
mod pool;
pub(super) mod reduce;
pub(super) mod rnn;
pub(super) mod scaler;
mod softmax;
pub(crate) use gemm::Epilogue;
pub(crate) use gemm_tune::TuneKey;
pub use gemm_tune::{ConvPath, GemmConfig, MatmulKernel};
pub use optim::OptimSlot;

/// Kernel indices are u32: every size handed to a kernel must fit.
fn u32_of(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::invalid(
            op,
            format!("size {v} exceeds the 32-bit indexing of the GPU kernels"),
        )
    })
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
        self.axpy_impl(alpha, x, y, n)
    }

    fn fill(&self, out: &mut GpuBuffer, value: f32, n: usize) -> Result<()> {
        self.fill_impl(out, value, n)
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
        self.sum_cols_impl(x, out, rows, cols, alpha)
    }

    fn softmax(&self, x: &GpuBuffer, out: &mut GpuBuffer, rows: usize, cols: usize) -> Result<()> {
        self.softmax_impl(x, out, rows, cols)
    }

    fn softmax_bwd(
        &self,
        y: &GpuBuffer,
        dy: &GpuBuffer,
        dx: &mut GpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.softmax_bwd_impl(y, dy, dx, rows, cols)
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
        self.softmax_ce_impl(logits, labels, probs, row_loss, rows, cols)
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
        self.softmax_ce_bwd_impl(probs, labels, dout, dx, rows, cols, scale)
    }

    fn im2col(&self, x: &GpuBuffer, col: &mut GpuBuffer, g: &Conv2dGeom) -> Result<()> {
        self.im2col_impl(x, col, g)
    }

    fn col2im(&self, col: &GpuBuffer, x: &mut GpuBuffer, g: &Conv2dGeom) -> Result<()> {
        self.col2im_impl(col, x, g)
    }

    fn max_pool(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        idx: &mut GpuBuffer,
        g: &Pool2dGeom,
    ) -> Result<()> {
        self.max_pool_impl(x, out, idx, g)
    }

    fn max_pool_bwd(
        &self,
        dy: &GpuBuffer,
        idx: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &Pool2dGeom,
    ) -> Result<()> {
        self.max_pool_bwd_impl(dy, idx, dx, g)
    }

    fn argmax_rows(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.argmax_rows_impl(x, out, rows, cols)
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
        self.count_correct_impl(x, labels, out, rows, cols, accumulate)
    }

    fn dropout_mask(&self, out: &mut GpuBuffer, n: usize, spec: &DropoutSpec) -> Result<()> {
        self.dropout_mask_impl(out, n, spec)
    }

    fn fill_random(&self, out: &mut GpuBuffer, n: usize, spec: &RandomSpec) -> Result<()> {
        self.fill_random_impl(out, n, spec)
    }

    fn sample_categorical(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        rows: usize,
        cols: usize,
        seed: u32,
        offset: u32,
    ) -> Result<()> {
        self.sample_categorical_impl(x, out, rows, cols, seed, offset)
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
        self.scaler_init_impl(state, init_scale)
    }

    fn scaler_scale(&self, x: &mut GpuBuffer, state: &GpuBuffer, n: usize) -> Result<()> {
        self.scaler_scale_impl(x, state, n)
    }

    fn scaler_check(&self, x: &GpuBuffer, state: &mut GpuBuffer, n: usize) -> Result<()> {
        self.scaler_check_impl(x, state, n)
    }

    fn scaler_update(&self, state: &mut GpuBuffer, growth_interval: u32) -> Result<()> {
        self.scaler_update_impl(state, growth_interval)
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
        self.gather_bytes_impl(src, perm, offset, count, row_len, scale, out)
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

    fn conv2d_input_grad(
        &self,
        w: &GpuBuffer,
        dout: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        self.conv_input_grad(w, dout, dx, g, fout)
    }

    fn dropout_apply(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        n: usize,
        spec: &DropoutSpec,
        _dtype: DType,
    ) -> Result<()> {
        self.dropout_apply_impl(x, out, n, spec)
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
        self.gather_rows_impl(table, idx, out, count, row_len)
    }

    fn one_hot(
        &self,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        count: usize,
        classes: usize,
    ) -> Result<()> {
        self.one_hot_impl(idx, out, count, classes)
    }

    fn bn_stats(
        &self,
        x: &GpuBuffer,
        saved: &mut GpuBuffer,
        var: &mut GpuBuffer,
        g: &BnGeom,
    ) -> Result<()> {
        self.bn_stats_impl(x, saved, var, g)
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
        self.bn_apply_impl(x, saved, gamma, beta, y, g)
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
        self.bn_bwd_reduce_impl(x, dy, saved, dgamma, dbeta, g)
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
        self.bn_bwd_dx_impl(x, dy, saved, gamma, dgamma, dbeta, dx, g)
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
        self.resize_bilinear_impl(x, out, planes, h, w, oh, ow)
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
        self.augment_impl(x, out, n, c, h, w, spec)
    }

    fn copy_block(&self, src: &GpuBuffer, dst: &mut GpuBuffer, b: &BlockCopy) -> Result<()> {
        self.copy_block_impl(src, dst, b)
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
        self.index_select_impl(x, idx, out, g)
    }

    fn index_select_bwd(
        &self,
        dy: &GpuBuffer,
        idx: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        self.index_select_bwd_impl(dy, idx, dx, g)
    }

    fn gather(
        &self,
        x: &GpuBuffer,
        idx: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        self.gather_impl(x, idx, out, g)
    }

    fn gather_bwd(
        &self,
        dy: &GpuBuffer,
        idx: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &IndexGeom,
    ) -> Result<()> {
        self.gather_bwd_impl(dy, idx, dx, g)
    }

    fn bmm(&self, a: &GpuBuffer, b: &GpuBuffer, c: &mut GpuBuffer, s: &BmmSpec) -> Result<()> {
        self.bmm_impl(a, b, c, s)
    }

    fn rnn_cell(&self, s: &RnnStep, bufs: RnnCellFwd<'_, GpuBuffer>) -> Result<()> {
        self.rnn_cell_impl(s, bufs)
    }

    fn rnn_cell_bwd(&self, s: &RnnStep, bufs: RnnCellBwd<'_, GpuBuffer>) -> Result<()> {
        self.rnn_cell_bwd_impl(s, bufs)
    }

    fn transpose(
        &self,
        x: &GpuBuffer,
        out: &mut GpuBuffer,
        batch: usize,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.transpose_impl(x, out, batch, rows, cols)
    }
}
