//! The book's im2col / col2im and the convolution forward and backward (direct on AVX-512,
//! image-by-image GEMMs elsewhere; see `direct.rs` and `gemm.rs`).

#[allow(unused_imports)]
use super::*;

impl CpuBackend {
    pub(super) fn im2col(
        &self,
        x: &CpuStorage,
        col: &mut CpuStorage,
        g: &Conv2dGeom,
    ) -> Result<()> {
        let (x, col) = (x.f32s("im2col")?, col.f32s_mut("im2col")?);
        let (oh, ow, ncols) = (g.out_h(), g.out_w(), g.col_cols());
        for n in 0..g.n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let row = &mut col[((n * oh + oy) * ow + ox) * ncols..][..ncols];
                    let mut j = 0;
                    for c in 0..g.c {
                        let plane = &x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
                        for ky in 0..g.kh {
                            let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                            for kx in 0..g.kw {
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                row[j] = if iy >= 0
                                    && ix >= 0
                                    && (iy as usize) < g.h
                                    && (ix as usize) < g.w
                                {
                                    plane[iy as usize * g.w + ix as usize]
                                } else {
                                    0.0
                                };
                                j += 1;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn col2im(
        &self,
        col: &CpuStorage,
        x: &mut CpuStorage,
        g: &Conv2dGeom,
    ) -> Result<()> {
        let (col, x) = (col.f32s("col2im")?, x.f32s_mut("col2im")?);
        let (oh, ow, ncols) = (g.out_h(), g.out_w(), g.col_cols());
        x[..g.n * g.c * g.h * g.w].fill(0.0);
        for n in 0..g.n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let row = &col[((n * oh + oy) * ow + ox) * ncols..][..ncols];
                    let mut j = 0;
                    for c in 0..g.c {
                        let plane = &mut x[(n * g.c + c) * g.h * g.w..][..g.h * g.w];
                        for ky in 0..g.kh {
                            let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                            for kx in 0..g.kw {
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w
                                {
                                    plane[iy as usize * g.w + ix as usize] += row[j];
                                }
                                j += 1;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn conv2d(
        &self,
        x: &CpuStorage,
        w: &CpuStorage,
        b: &CpuStorage,
        out: &mut CpuStorage,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        const OP: &str = "conv2d";
        conv_gemm::conv2d_forward(
            x.f32s(OP)?,
            w.f32s(OP)?,
            b.f32s(OP)?,
            out.f32s_mut(OP)?,
            g,
            fout,
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv2d_bwd(
        &self,
        x: &CpuStorage,
        w: &CpuStorage,
        dout: &CpuStorage,
        dx: Option<&mut CpuStorage>,
        dw: &mut CpuStorage,
        db: &mut CpuStorage,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        const OP: &str = "conv2d_backward";
        conv_gemm::conv2d_backward(
            x.f32s(OP)?,
            w.f32s(OP)?,
            dout.f32s(OP)?,
            dx.map(|d| d.f32s_mut(OP)).transpose()?,
            dw.f32s_mut(OP)?,
            db.f32s_mut(OP)?,
            g,
            fout,
        );
        Ok(())
    }

    pub(super) fn conv2d_input_grad(
        &self,
        w: &CpuStorage,
        dout: &CpuStorage,
        dx: &mut CpuStorage,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()> {
        const OP: &str = "conv2d_input_grad";
        let (w, dout, dx) = (w.f32s(OP)?, dout.f32s(OP)?, dx.f32s_mut(OP)?);
        let (ckk, ohw) = (g.c * g.kh * g.kw, g.out_h() * g.out_w());
        if w.len() < fout * ckk || dout.len() < g.n * fout * ohw || dx.len() < g.n * g.c * g.h * g.w
        {
            return Err(Error::invalid(
                OP,
                format!("buffers too small for {g:?}, {fout} filters"),
            ));
        }
        conv_gemm::conv2d_input_grad(w, dout, dx, g, fout);
        Ok(())
    }
}
