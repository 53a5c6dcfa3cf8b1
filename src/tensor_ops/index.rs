//! Indexing along a dim: `index_select` and `gather` with their scatter-add backwards
//! (`shaders/index.wgsl`). Indices are u32 tensors (wgnn's integer dtype).

use super::shape::existing_dim;
use super::{want, want_float};
use crate::autograd::record;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::{Backend, IndexGeom};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Which kernel of index.wgsl.
#[derive(Clone, Copy)]
enum Kind {
    Select,
    SelectBwd,
    Gather,
    GatherBwd,
}

impl Tensor {
    /// One index kernel: `self` is read, `idx` indexes, the result has `shape`.
    fn index_kernel(
        &self,
        idx: &Tensor,
        g: &IndexGeom,
        shape: Shape,
        kind: Kind,
    ) -> Result<Tensor> {
        const OP: &str = "index";
        let dt = self.dtype;
        let n = shape.numel();
        backend!(OP, dt, [self => x, idx => i], |be| {
            let mut out = be.alloc(n, dt, OP)?;
            match kind {
                Kind::Select => be.index_select(x, i, &mut out, g)?,
                Kind::SelectBwd => be.index_select_bwd(x, i, &mut out, g)?,
                Kind::Gather => be.gather(x, i, &mut out, g)?,
                Kind::GatherBwd => be.gather_bwd(x, i, &mut out, g)?,
            }
            Ok(Tensor::from_parts(shape.clone(), dt, out.into()))
        })
    }

    /// `self` (a gradient shaped like `idx`, viewed `[outer, count, inner]`) added into zeros of
    /// `shape` at the positions `idx` names along the middle dim: the backward of `gather`
    /// and of `max_dim`.
    pub(crate) fn scatter_add_along(
        &self,
        idx: &Tensor,
        g: &IndexGeom,
        shape: Shape,
    ) -> Result<Tensor> {
        self.index_kernel(idx, g, shape, Kind::GatherBwd)
    }

    /// The slices `idx` (a u32 vector) along `dim`, in order, repeats allowed (PyTorch's
    /// `index_select`). An index past the dim is an error on the CPU; the GPU reads zeros.
    pub fn index_select(&self, dim: isize, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_select";
        want_float(OP, self, self.dtype)?;
        want(OP, idx, DType::U32)?;
        if idx.dims().len() != 1 {
            return Err(Error::invalid(
                OP,
                format!("the index must be a vector, got {}", idx.shape()),
            ));
        }
        let d = self.dims();
        let i = existing_dim(OP, dim, d.len())?;
        let geom = IndexGeom {
            outer: d[..i].iter().product(),
            size: d[i],
            inner: d[i + 1..].iter().product(),
            count: idx.numel(),
        };
        let mut od = d.to_vec();
        od[i] = geom.count;
        crate::tensor::checked_len(OP, &Shape::new(od.clone()), self.dtype)?;
        let out = self.index_kernel(idx, &geom, Shape::new(od), Kind::Select)?;
        let (idx, in_shape) = (idx.clone(), self.shape().clone());
        Ok(record(out, OP, &[self], move |g| {
            Ok(vec![Some(g.index_kernel(
                &idx,
                &geom,
                in_shape,
                Kind::SelectBwd,
            )?)])
        }))
    }

    /// `out[.., j, ..] = self[.., idx[.., j, ..], ..]` along `dim` (PyTorch's `gather`): `idx`
    /// is u32 with `self`'s rank and `self`'s sizes except along `dim`.
    pub fn gather(&self, dim: isize, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "gather";
        want_float(OP, self, self.dtype)?;
        want(OP, idx, DType::U32)?;
        let d = self.dims();
        let i = existing_dim(OP, dim, d.len())?;
        let e = idx.dims();
        let fits = e.len() == d.len() && (0..d.len()).all(|k| k == i || e[k] == d[k]);
        if !fits {
            return Err(Error::shapes(
                OP,
                self.shape(),
                idx.shape(),
                "the index must have the input's sizes except along the gathered dim",
            ));
        }
        let geom = IndexGeom {
            outer: d[..i].iter().product(),
            size: d[i],
            inner: d[i + 1..].iter().product(),
            count: e[i],
        };
        let out = self.index_kernel(idx, &geom, idx.shape().clone(), Kind::Gather)?;
        let (idx, in_shape) = (idx.clone(), self.shape().clone());
        Ok(record(out, OP, &[self], move |g| {
            Ok(vec![Some(g.scatter_add_along(&idx, &geom, in_shape)?)])
        }))
    }
}
