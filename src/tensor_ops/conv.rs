//! 2-D convolution: the book's im2col/col2im, the fused (implicit-GEMM on GPUs) forward with
//! optional ReLU, and its backward.

use super::*;
use crate::autograd::record_needs;

impl Tensor {
    /// The convolution geometry of this NCHW tensor under a `kh`×`kw` window.
    pub(crate) fn conv_geom(
        &self,
        kh: usize,
        kw: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Conv2dGeom> {
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                "im2col",
                format!("expected an NCHW tensor, got {}", self.shape),
            ));
        };
        let g = Conv2dGeom {
            n,
            c,
            h,
            w,
            kh,
            kw,
            stride,
            pad,
        };
        g.validate("im2col")?;
        Ok(g)
    }

    /// im2col of an NCHW tensor → `[n*oh*ow, c*kh*kw]`, rows (n, oy, ox), columns (c, ky, kx).
    pub(crate) fn im2col(&self, kh: usize, kw: usize, stride: usize, pad: usize) -> Result<Tensor> {
        const OP: &str = "im2col";
        want_float(OP, self, self.dtype)?;
        let g = self.conv_geom(kh, kw, stride, pad)?;
        let dt = self.dtype;
        let col = backend!(OP, dt, [self => x], |be| {
            let mut col = be.alloc(g.col_rows() * g.col_cols(), dt, OP)?;
            be.im2col(x, &mut col, &g)?;
            Ok(Tensor::from_parts(Shape::new([g.col_rows(), g.col_cols()]), dt, col.into()))
        })?;
        Ok(record(col, OP, &[self], move |d| {
            Ok(vec![Some(d.col2im(&g)?)])
        }))
    }

    /// col2im: the adjoint of im2col (overlapping windows add up) → `[n, c, h, w]` of `g`.
    pub(crate) fn col2im(&self, g: &Conv2dGeom) -> Result<Tensor> {
        const OP: &str = "col2im";
        want_float(OP, self, self.dtype)?;
        g.validate(OP)?;
        let expect = Shape::new([g.col_rows(), g.col_cols()]);
        if self.shape != expect {
            return Err(Error::shapes(
                OP,
                &self.shape,
                &expect,
                "columns do not match the geometry",
            ));
        }
        let dt = self.dtype;
        let x = backend!(OP, dt, [self => col], |be| {
            let mut x = be.alloc(g.n * g.c * g.h * g.w, dt, OP)?;
            be.col2im(col, &mut x, g)?;
            Ok(Tensor::from_parts(Shape::new([g.n, g.c, g.h, g.w]), dt, x.into()))
        })?;
        let g = *g;
        Ok(record(x, OP, &[self], move |d| {
            Ok(vec![Some(d.im2col(g.kh, g.kw, g.stride, g.pad)?)])
        }))
    }

    /// 2-D convolution of this NCHW tensor with weights `[F, C, KH, KW]` and bias `[F]` →
    /// `[N, F, OH, OW]`. The CPU runs it image by image (a direct AVX-512 convolution for
    /// stride 1 where the CPU has AVX-512, else columns in cache and one GEMM per image); a GPU
    /// runs it as one implicit-GEMM dispatch (bias and NCHW layout fused, no column matrix),
    /// or, with [`ConvPath::Im2col`](crate::gpu::ConvPath), as the book's im2col + matmul +
    /// layout change, in chunks of images when the columns exceed one storage binding.
    pub fn conv2d(&self, w: &Tensor, b: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
        const OP: &str = "conv2d";
        let (g, fout) = conv_bias_check(OP, self, w, b, stride, pad)?;
        // The im2col path builds the column matrix [N·OH·OW, C·KH·KW] in one binding: a batch
        // whose columns exceed the adapter's binding limit runs in chunks of images, joined
        // with `cat` (so autograd sees ordinary narrow/conv/cat ops, and each chunk's backward
        // fits as well).
        if let Device::Gpu(ctx) = self.device()
            && ctx.conv_path() == crate::gpu::ConvPath::Im2col
        {
            let per_image =
                (g.col_rows() / g.n.max(1)) as u64 * g.col_cols() as u64 * self.dtype.size() as u64;
            let fit = (ctx.max_tensor_bytes() / per_image.max(1)) as usize;
            if fit == 0 {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "one image's columns take {per_image} bytes, more than this adapter's \
                         {}-byte storage binding",
                        ctx.max_tensor_bytes()
                    ),
                ));
            }
            if fit < g.n {
                let chunks = (0..g.n)
                    .step_by(fit)
                    .map(|i| {
                        self.narrow(0, i, fit.min(g.n - i))?
                            .conv2d(w, b, stride, pad)
                    })
                    .collect::<Result<Vec<_>>>()?;
                return Tensor::cat(&chunks.iter().collect::<Vec<_>>(), 0);
            }
        }
        let dt = self.dtype;
        let out = backend!(OP, dt, [self => x, w => wb, b => bb], |be| {
            let mut out = be.alloc(g.n * fout * g.out_h() * g.out_w(), dt, OP)?;
            be.conv2d(x, wb, bb, &mut out, &g, fout)?;
            Ok(Tensor::from_parts(Shape::new([g.n, fout, g.out_h(), g.out_w()]), dt, out.into()))
        })?;
        // The fused backward kernel gives dx, dw and db in one pass over the columns.
        let (x, wt) = (self.detach(), w.detach());
        // The images of a first layer need no gradient (the walk says which inputs do): its
        // dx is skipped, not thrown away.
        Ok(record_needs(out, OP, &[self, w, b], move |d, needs| {
            let (dx, dw, db) = x.conv2d_backward_parts(&wt, d, stride, pad, needs[0])?;
            Ok(vec![dx, Some(dw), Some(db)])
        }))
    }

    /// Transposed convolution (PyTorch's `conv_transpose2d`, a "deconvolution"): `self`
    /// `[N, C_in, H, W]`, `w` `[C_in, C_out, KH, KW]` (PyTorch's layout), `b` `[C_out]` or
    /// none; the output is `[N, C_out, (H − 1)·stride − 2·pad + KH + output_padding, …]`
    /// (`output_padding < stride` picks among the sizes a stride-`stride` convolution maps
    /// to `H`). It is the adjoint of [`Tensor::conv2d`] with the same weight, stride and
    /// padding: the forward is that convolution's input gradient (the GPU's implicit-GEMM
    /// input-gradient pass), the input gradient is the convolution itself, and the weight
    /// gradient that convolution's weight gradient with input and output swapped.
    pub fn conv_transpose2d(
        &self,
        w: &Tensor,
        b: Option<&Tensor>,
        stride: usize,
        pad: usize,
        output_padding: usize,
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose2d";
        want_float(OP, self, self.dtype)?;
        want_float(OP, w, self.dtype)?;
        let (&[n, cin, h, wd], &[wc, cout, kh, kw]) = (self.dims(), w.dims()) else {
            return Err(Error::shapes(
                OP,
                self.shape(),
                w.shape(),
                "expected an NCHW input and a [C_in, C_out, KH, KW] weight",
            ));
        };
        if wc != cin {
            return Err(Error::shapes(
                OP,
                self.shape(),
                w.shape(),
                format!("the input has {cin} channels, the weight's first dim {wc}"),
            ));
        }
        if stride == 0 || output_padding >= stride {
            return Err(Error::invalid(
                OP,
                format!(
                    "stride {stride}, output_padding {output_padding}: the stride must be ≥ 1 and \
                     the output padding smaller than it"
                ),
            ));
        }
        let size = |len: usize, k: usize| -> Result<usize> {
            let full = (len.max(1) - 1)
                .checked_mul(stride)
                .and_then(|v| v.checked_add(k + output_padding))
                .filter(|&v| len > 0 && k > 0 && v > 2 * pad)
                .ok_or_else(|| {
                    Error::shapes(
                        OP,
                        self.shape(),
                        w.shape(),
                        format!(
                            "stride {stride}, padding {pad}, output_padding {output_padding} \
                             leave no output"
                        ),
                    )
                })?;
            Ok(full - 2 * pad)
        };
        let (oh, ow) = (size(h, kh)?, size(wd, kw)?);
        let oshape = Shape::new([n, cout, oh, ow]);
        crate::tensor::checked_len(OP, &oshape, self.dtype)?;
        // The convolution this one is the adjoint of: from [N, C_out, OH, OW] to
        // [N, C_in, H, W] with `C_in` filters.
        let g = Conv2dGeom {
            n,
            c: cout,
            h: oh,
            w: ow,
            kh,
            kw,
            stride,
            pad,
        };
        if (g.out_h(), g.out_w()) != (h, wd) {
            return Err(Error::invalid(
                OP,
                format!(
                    "the adjoint convolution maps {oh}×{ow} to {}×{}",
                    g.out_h(),
                    g.out_w()
                ),
            ));
        }
        let dt = self.dtype;
        let out = backend!(OP, dt, [self => x, w => wb], |be| {
            let mut out = be.alloc(oshape.numel(), dt, OP)?;
            be.conv2d_input_grad(wb, x, &mut out, &g, cin)?;
            Ok(Tensor::from_parts(oshape.clone(), dt, out.into()))
        })?;
        let (x, wt) = (self.detach(), w.detach());
        let out = record_needs(out, OP, &[self, w], move |d, needs| {
            let dx = match needs[0] {
                true => {
                    let zero = Tensor::zeros([cin], d.dtype(), &d.device())?;
                    Some(d.conv2d(&wt, &zero, stride, pad)?)
                }
                false => None,
            };
            let dw = match needs[1] {
                true => Some(d.conv2d_backward_parts(&wt, &x, stride, pad, false)?.1),
                false => None,
            };
            Ok(vec![dx, dw])
        });
        match b {
            None => Ok(out),
            Some(b) if b.dims() == [cout] => out.add(&b.reshape([1, cout, 1, 1])?),
            Some(b) => Err(Error::shapes(
                OP,
                w.shape(),
                b.shape(),
                format!("bias must be [{cout}]"),
            )),
        }
    }

    /// [`Tensor::conv2d`] followed by ReLU, as one op: a GPU's implicit-GEMM convolution applies
    /// the ReLU in its epilogue, and the backward masks `dout` inside the gradient kernels (no
    /// separate ReLU passes); elsewhere the two are composed. Same values as
    /// `conv2d(..)?.relu()`.
    pub fn conv2d_relu(&self, w: &Tensor, b: &Tensor, stride: usize, pad: usize) -> Result<Tensor> {
        const OP: &str = "conv2d_relu";
        if let Device::Gpu(ctx) = self.device()
            && ctx.conv_path() == crate::gpu::ConvPath::Im2col
        {
            return self.conv2d(w, b, stride, pad)?.relu();
        }
        let (g, fout) = conv_bias_check(OP, self, w, b, stride, pad)?;
        let dt = self.dtype;
        let out = backend!(OP, dt, [self => x, w => wb, b => bb], |be| {
            let mut out = be.alloc(g.n * fout * g.out_h() * g.out_w(), dt, OP)?;
            be.conv2d_relu(x, wb, bb, &mut out, &g, fout, dt)?;
            Ok(Tensor::from_parts(Shape::new([g.n, fout, g.out_h(), g.out_w()]), dt, out.into()))
        })?;
        let (x, wt, y) = (self.detach(), w.detach(), out.detach());
        Ok(record_needs(out, OP, &[self, w, b], move |d, needs| {
            let (dx, dw, db) = x.conv2d_relu_backward_parts(&wt, &y, d, stride, pad, needs[0])?;
            Ok(vec![dx, Some(dw), Some(db)])
        }))
    }

    /// Backward of [`Tensor::conv2d_relu`] (`y` its output) with `dx` only when `need_dx`.
    fn conv2d_relu_backward_parts(
        &self,
        w: &Tensor,
        y: &Tensor,
        dout: &Tensor,
        stride: usize,
        pad: usize,
        need_dx: bool,
    ) -> Result<(Option<Tensor>, Tensor, Tensor)> {
        const OP: &str = "conv2d_relu_backward";
        let g = conv_check(OP, self, w, stride, pad)?;
        let fout = w.dims()[0];
        let oshape = Shape::new([g.n, fout, g.out_h(), g.out_w()]);
        for t in [dout, y] {
            if t.shape() != &oshape {
                return Err(Error::shapes(
                    OP,
                    t.shape(),
                    &oshape,
                    "does not match the convolution output",
                ));
            }
            want_float(OP, t, self.dtype)?;
        }
        let dt = self.dtype;
        backend!(OP, dt, [self => x, w => wb, y => yb, dout => d], |be| {
            let mut dx = if need_dx {
                Some(be.alloc(self.numel(), dt, OP)?)
            } else {
                None
            };
            let mut dw = be.alloc(w.numel(), dt, OP)?;
            let mut db = be.alloc(fout, dt, OP)?;
            be.conv2d_relu_bwd(x, wb, yb, d, dx.as_mut(), &mut dw, &mut db, &g, fout, dt)?;
            Ok((
                dx.map(|dx| Tensor::from_parts(self.shape.clone(), dt, dx.into())),
                Tensor::from_parts(w.shape.clone(), dt, dw.into()),
                Tensor::from_parts(Shape::new([fout]), dt, db.into()),
            ))
        })
    }

    /// Backward of [`Tensor::conv2d`]: `self` is the forward input; returns `(dx, dw, db)`.
    pub(crate) fn conv2d_backward(
        &self,
        w: &Tensor,
        dout: &Tensor,
        stride: usize,
        pad: usize,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (dx, dw, db) = self.conv2d_backward_parts(w, dout, stride, pad, true)?;
        match dx {
            Some(dx) => Ok((dx, dw, db)),
            None => Err(Error::invalid("conv2d_backward", "dx was not computed")),
        }
    }

    /// [`Tensor::conv2d_backward`] with `dx` computed only when `need_dx`.
    fn conv2d_backward_parts(
        &self,
        w: &Tensor,
        dout: &Tensor,
        stride: usize,
        pad: usize,
        need_dx: bool,
    ) -> Result<(Option<Tensor>, Tensor, Tensor)> {
        const OP: &str = "conv2d_backward";
        let g = conv_check(OP, self, w, stride, pad)?;
        let fout = w.dims()[0];
        let oshape = Shape::new([g.n, fout, g.out_h(), g.out_w()]);
        if dout.shape() != &oshape {
            return Err(Error::shapes(
                OP,
                dout.shape(),
                &oshape,
                "dout does not match the convolution output",
            ));
        }
        want_float(OP, dout, self.dtype)?;
        let dt = self.dtype;
        backend!(OP, dt, [self => x, w => wb, dout => d], |be| {
            let mut dx = if need_dx {
                Some(be.alloc(self.numel(), dt, OP)?)
            } else {
                None
            };
            let mut dw = be.alloc(w.numel(), dt, OP)?;
            let mut db = be.alloc(fout, dt, OP)?;
            be.conv2d_bwd(x, wb, d, dx.as_mut(), &mut dw, &mut db, &g, fout)?;
            Ok((
                dx.map(|dx| Tensor::from_parts(self.shape.clone(), dt, dx.into())),
                Tensor::from_parts(w.shape.clone(), dt, dw.into()),
                Tensor::from_parts(Shape::new([fout]), dt, db.into()),
            ))
        })
    }
}

fn conv_check(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: usize,
) -> Result<Conv2dGeom> {
    want_float(op, x, x.dtype)?;
    want_float(op, w, x.dtype)?;
    let (&[_, c, _, _], &[_, wc, kh, kw]) = (x.dims(), w.dims()) else {
        return Err(Error::shapes(
            op,
            &x.shape,
            &w.shape,
            "expected NCHW input and [F, C, KH, KW] weights",
        ));
    };
    if c != wc {
        return Err(Error::shapes(
            op,
            &x.shape,
            &w.shape,
            format!("input has {c} channels, weights expect {wc}"),
        ));
    }
    let g = x.conv_geom(kh, kw, stride, pad)?;
    let fout = w.dims()[0];
    if crate::shape::checked_product(&[g.n, fout, g.out_h(), g.out_w()]).is_none() {
        return Err(Error::shapes(
            op,
            &x.shape,
            &w.shape,
            "the output's size overflows",
        ));
    }
    Ok(g)
}

/// [`conv_check`] plus the bias: `b` must be a float `[F]` for weights `[F, C, KH, KW]`.
/// Returns the geometry and F.
fn conv_bias_check(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    pad: usize,
) -> Result<(Conv2dGeom, usize)> {
    let g = conv_check(op, x, w, stride, pad)?;
    let fout = w.dims()[0];
    if b.dims() != [fout] {
        return Err(Error::shapes(
            op,
            w.shape(),
            b.shape(),
            format!("bias must be [{fout}]"),
        ));
    }
    want_float(op, b, x.dtype)?;
    Ok((g, fout))
}
