//! Pooling: max pooling with its index-routed backward, average and global average pooling.

use super::*;

impl Tensor {
    /// Average over each `k`×`k` window moved by `stride` of an NCHW tensor, zero padding
    /// counted (PyTorch's `avg_pool2d` defaults). Built from the im2col and row-sum kernels
    /// on the `[N·C, 1, H, W]` view, so its backward (col2im) comes with them.
    pub fn avg_pool2d(&self, k: usize, stride: usize, pad: usize) -> Result<Tensor> {
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                "avg_pool2d",
                format!("expected an NCHW tensor, got {}", self.shape),
            ));
        };
        let g = self
            .reshape([n * c, 1, h, w])?
            .conv_geom(k, k, stride, pad)?;
        self.reshape([n * c, 1, h, w])?
            .im2col(k, k, stride, pad)?
            .mean_dim(&[-1], false)?
            .reshape([n, c, g.out_h(), g.out_w()])
    }

    /// The mean of each channel of an NCHW tensor → `[N, C, 1, 1]` (global average pooling,
    /// PyTorch's `adaptive_avg_pool2d(x, 1)`; NiN's and ResNet's head).
    pub fn global_avg_pool2d(&self) -> Result<Tensor> {
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                "global_avg_pool2d",
                format!("expected an NCHW tensor, got {}", self.shape),
            ));
        };
        self.reshape([n * c, h * w])?
            .mean_dim(&[-1], false)?
            .reshape([n, c, 1, 1])
    }

    /// The pooling geometry of this NCHW tensor.
    pub(crate) fn pool_geom(
        &self,
        ph: usize,
        pw: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Pool2dGeom> {
        let &[n, c, h, w] = self.dims() else {
            return Err(Error::invalid(
                "max_pool2d",
                format!("expected an NCHW tensor, got {}", self.shape),
            ));
        };
        let g = Pool2dGeom {
            n,
            c,
            h,
            w,
            ph,
            pw,
            stride,
            pad,
        };
        g.validate("max_pool2d")?;
        Ok(g)
    }

    /// Max-pool of an NCHW tensor → `(out [n, c, oh, ow], argmax u32 [n, c, oh, ow])`; the
    /// indices are flat into the input, the first maximum of a window wins (as the book).
    pub fn max_pool2d(
        &self,
        ph: usize,
        pw: usize,
        stride: usize,
        pad: usize,
    ) -> Result<(Tensor, Tensor)> {
        const OP: &str = "max_pool2d";
        want_float(OP, self, self.dtype)?;
        let g = self.pool_geom(ph, pw, stride, pad)?;
        let oshape = Shape::new([g.n, g.c, g.out_h(), g.out_w()]);
        let on = oshape.numel();
        let dt = self.dtype;
        let (out, idx) = backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(on, dt, OP)?;
            let mut idx = be.alloc(on, DType::U32, OP)?;
            be.max_pool(x, &mut out, &mut idx, &g)?;
            Ok((
                Tensor::from_parts(oshape.clone(), dt, out.into()),
                Tensor::from_parts(oshape.clone(), DType::U32, idx.into()),
            ))
        })?;
        // Each gradient goes back to its window's argmax, with the fused backward kernel.
        let saved = idx.clone();
        let out = record(out, OP, &[self], move |d| {
            Ok(vec![Some(d.max_pool2d_backward(&saved, &g)?)])
        });
        Ok((out, idx))
    }

    /// Max-pool backward: `self` is dy `[n, c, oh, ow]`; each gradient goes to its argmax.
    pub(crate) fn max_pool2d_backward(&self, idx: &Tensor, g: &Pool2dGeom) -> Result<Tensor> {
        const OP: &str = "max_pool2d_backward";
        want_float(OP, self, self.dtype)?;
        want(OP, idx, DType::U32)?;
        g.validate(OP)?;
        let oshape = Shape::new([g.n, g.c, g.out_h(), g.out_w()]);
        if self.shape != oshape {
            return Err(Error::shapes(
                OP,
                &self.shape,
                &oshape,
                "dy does not match the pooling output",
            ));
        }
        same_shape(OP, self, idx)?;
        let dt = self.dtype;
        if g.n * g.c * g.h * g.w == 0 {
            // An empty input (windows over padding only): no gradient to route anywhere.
            return Tensor::zeros([g.n, g.c, g.h, g.w], dt, &self.device());
        }
        backend!(OP, dt, [self => dy, idx => ib], |be| {
            let mut dx = be.alloc(g.n * g.c * g.h * g.w, dt, OP)?;
            be.max_pool_bwd(dy, ib, &mut dx, g)?;
            Ok(Tensor::from_parts(Shape::new([g.n, g.c, g.h, g.w]), dt, dx.into()))
        })
    }
}
