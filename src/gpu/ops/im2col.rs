//! Dispatch of `shaders/im2col.wgsl`: the column matrix of a convolution and its adjoint
//! col2im, and the book's convolution built on them (im2col → GEMM → col2im), kept as the
//! reference path `ConvPath::Im2col` that tests compare the implicit GEMM with.
//! [`WindowParams`] is shared with `pool.rs`.

use super::u32_of;
use crate::error::Result;
use crate::gpu::buffers::GpuBuffer;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::{KernelDef, im2col as k, uniform};
use crate::gpu::pipelines::KernelKey;
use crate::ops::{Backend, Conv2dGeom, MatmulSpec, Pw};
use std::sync::Arc;

uniform! {
    /// `Params` of `shaders/im2col.wgsl` and `shaders/pool.wgsl` (kernel = pool window).
    pub(crate) struct WindowParams {
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
        _p0: u32,
    }
}

impl WindowParams {
    /// The window geometry of `g` with `total` threads.
    pub(super) fn conv(op: &'static str, g: &Conv2dGeom, total: usize) -> Result<WindowParams> {
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
            _p0: 0,
        })
    }
}

impl GpuContext {
    /// One thread per `p.total` item of a window kernel (im2col.wgsl, pool.wgsl).
    pub(super) fn window(
        &self,
        kernel: &'static KernelDef,
        p: WindowParams,
        bindings: &[(u32, &GpuBuffer)],
    ) -> Result<()> {
        let groups = self.grid(p.total as usize, 256)?;
        self.dispatch(
            &KernelKey::new(kernel),
            bytemuck::bytes_of(&p),
            bindings,
            groups,
        )
    }

    /// NCHW `x` → columns `[N·OH·OW, C·KH·KW]`.
    pub(super) fn im2col_impl(
        &self,
        x: &GpuBuffer,
        col: &mut GpuBuffer,
        g: &Conv2dGeom,
    ) -> Result<()> {
        let p = WindowParams::conv("im2col", g, g.col_rows() * g.col_cols())?;
        self.window(&k::IM2COL, p, &[(1, col), (2, x)])
    }

    /// Columns → NCHW `x`, overlapping windows summed.
    pub(super) fn col2im_impl(
        &self,
        col: &GpuBuffer,
        x: &mut GpuBuffer,
        g: &Conv2dGeom,
    ) -> Result<()> {
        let p = WindowParams::conv("col2im", g, g.n * g.c * g.h * g.w)?;
        self.window(&k::COL2IM, p, &[(1, x), (2, col)])
    }
}

/// The convolution path of the book (`ConvPath::Im2col`): im2col, one GEMM, col2im.
impl GpuContext {
    /// The book's formulation: im2col → col · Wᵀ → + b → [N, OH·OW, F] to NCHW.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_forward_im2col(
        self: &Arc<Self>,
        x: &GpuBuffer,
        w: &GpuBuffer,
        b: &GpuBuffer,
        out: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        let (rows, ckk, ohw) = (g.col_rows(), g.col_cols(), g.out_h() * g.out_w());
        let mut col = self.alloc_buffer(rows * ckk, x.dtype, "conv2d columns")?;
        self.im2col(x, &mut col, g)?;
        let mut prod = self.alloc_buffer(rows * fout, x.dtype, "conv2d product")?;
        let spec = MatmulSpec {
            m: rows,
            n: fout,
            k: ckk,
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 0.0,
        };
        self.matmul(&col, w, &mut prod, &spec)?;
        let mut biased = self.alloc_buffer(rows * fout, x.dtype, "conv2d product")?;
        self.pointwise_rows(Pw::Add, &prod, b, &mut biased, rows, fout)?;
        self.transpose(&biased, out, g.n, ohw, fout)
    }

    /// The book's backward: db = Σ dout, dW = doutᵀ · col, dx = col2im(dout · W).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_backward_im2col(
        self: &Arc<Self>,
        x: &GpuBuffer,
        w: &GpuBuffer,
        dout: &GpuBuffer,
        dx: Option<&mut GpuBuffer>,
        dw: &mut GpuBuffer,
        db: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        let (rows, ckk, ohw) = (g.col_rows(), g.col_cols(), g.out_h() * g.out_w());
        let mut d2 = self.alloc_buffer(rows * fout, x.dtype, "conv2d_backward dout")?;
        self.transpose(dout, &mut d2, g.n, fout, ohw)?;
        self.sum_rows(&d2, db, rows, fout, 1.0)?;
        // The columns are rebuilt rather than kept from the forward.
        let mut col = self.alloc_buffer(rows * ckk, x.dtype, "conv2d columns")?;
        self.im2col(x, &mut col, g)?;
        let dw_spec = MatmulSpec {
            m: fout,
            n: ckk,
            k: rows,
            trans_a: true,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        };
        self.matmul(&d2, &col, dw, &dw_spec)?;
        match dx {
            Some(dx) => self.dcol_to_image(&d2, w, &mut col, dx, g, fout),
            None => Ok(()),
        }
    }

    /// [`Self::conv_input_grad`] on the im2col path.
    pub(super) fn conv_input_grad_im2col(
        self: &Arc<Self>,
        w: &GpuBuffer,
        dout: &GpuBuffer,
        dx: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        let (rows, ckk, ohw) = (g.col_rows(), g.col_cols(), g.out_h() * g.out_w());
        let mut d2 = self.alloc_buffer(rows * fout, dout.dtype, "conv2d_input_grad dout")?;
        self.transpose(dout, &mut d2, g.n, fout, ohw)?;
        let mut col = self.alloc_buffer(rows * ckk, dout.dtype, "conv2d columns")?;
        self.dcol_to_image(&d2, w, &mut col, dx, g, fout)
    }

    /// `dx = col2im(d2 · W)` with `d2` the `[rows, F]` output gradient, through `col`.
    fn dcol_to_image(
        self: &Arc<Self>,
        d2: &GpuBuffer,
        w: &GpuBuffer,
        col: &mut GpuBuffer,
        dx: &mut GpuBuffer,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        let dcol_spec = MatmulSpec {
            m: g.col_rows(),
            n: g.col_cols(),
            k: fout,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        };
        self.matmul(d2, w, col, &dcol_spec)?;
        self.col2im(col, dx, g)
    }
}
