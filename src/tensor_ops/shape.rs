//! Shape ops: `reshape`/`view` with `-1`, `flatten`, `squeeze`/`unsqueeze`, `permute`,
//! `transpose`, `movedim`, `stack`. wgnn tensors are contiguous, so the ops that only change
//! the shape share the storage (as a PyTorch view), and the ones that reorder elements
//! (`permute`, `transpose`) copy through the pointwise kernel with permuted strides.

use super::pointwise::run;
use super::*;
use crate::ops::pointwise::contiguous_strides;
use crate::ops::{PointwiseOp, Pw, Strided};

/// `d` (negative counts from the end, as PyTorch) as an index into `rank` dims.
pub(crate) fn dim_index(op: &'static str, d: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let i = if d < 0 { d + r } else { d };
    if i < 0 || i >= r.max(1) {
        return Err(Error::invalid(
            op,
            format!("dim {d} is out of range for a tensor of rank {rank}"),
        ));
    }
    Ok(i as usize)
}

/// `d` as an index into the dims of a tensor that has one: as [`dim_index`], but a 0-d
/// tensor (whose dim 0 `dim_index` accepts, as PyTorch does for reductions) is an error, for
/// the ops that take a slice along the dim (`narrow`, `cat`, `split`, `index_select` …).
pub(crate) fn existing_dim(op: &'static str, d: isize, rank: usize) -> Result<usize> {
    if rank == 0 {
        return Err(Error::invalid(
            op,
            format!("dim {d}: a 0-d tensor has no dim to index; reshape it to [1] first"),
        ));
    }
    dim_index(op, d, rank)
}

/// Sorted, distinct dim indices from `dims`; an error names a repeated one. A 0-d tensor's
/// dim 0 (or -1) is accepted and names nothing to reduce over (PyTorch: `x.sum(0)` of a 0-d
/// `x` is `x`).
pub(crate) fn dim_set(op: &'static str, dims: &[isize], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let i = dim_index(op, d, rank)?;
        if out.contains(&i) {
            return Err(Error::invalid(
                op,
                format!("dim {d} appears twice in {dims:?}"),
            ));
        }
        out.push(i);
    }
    if rank == 0 {
        out.clear();
    }
    out.sort_unstable();
    Ok(out)
}

/// A target shape for [`Tensor::reshape`]: sizes, with at most one `-1` inferred from the
/// element count when the sizes are signed (`x.reshape([3, -1])`, PyTorch's `view(3, -1)`).
pub trait ReshapeDims {
    /// The resolved shape for a tensor of `numel` elements.
    fn resolve(self, numel: usize) -> Result<Shape>;
}

impl ReshapeDims for Shape {
    fn resolve(self, _numel: usize) -> Result<Shape> {
        Ok(self)
    }
}

impl ReshapeDims for &Shape {
    fn resolve(self, _numel: usize) -> Result<Shape> {
        Ok(self.clone())
    }
}

impl ReshapeDims for Vec<usize> {
    fn resolve(self, _numel: usize) -> Result<Shape> {
        Ok(Shape::new(self))
    }
}

impl ReshapeDims for &[usize] {
    fn resolve(self, _numel: usize) -> Result<Shape> {
        Ok(Shape::new(self.to_vec()))
    }
}

impl<const N: usize> ReshapeDims for [usize; N] {
    fn resolve(self, _numel: usize) -> Result<Shape> {
        Ok(Shape::new(self))
    }
}

fn infer(dims: Vec<i64>, numel: usize) -> Result<Shape> {
    const OP: &str = "reshape";
    let mut known = 1usize;
    let mut hole = None;
    for (i, &d) in dims.iter().enumerate() {
        match d {
            -1 if hole.is_none() => hole = Some(i),
            -1 => return Err(Error::invalid(OP, format!("more than one -1 in {dims:?}"))),
            d if d < 0 => return Err(Error::invalid(OP, format!("size {d} in {dims:?}"))),
            d => {
                known = usize::try_from(d)
                    .ok()
                    .and_then(|d| known.checked_mul(d))
                    .ok_or_else(|| Error::invalid(OP, format!("the sizes {dims:?} overflow")))?
            }
        }
    }
    let mut out: Vec<usize> = dims.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = hole {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(Error::invalid(
                OP,
                format!("cannot infer the -1 of {dims:?} for {numel} elements"),
            ));
        }
        out[i] = numel / known;
    }
    Ok(Shape::new(out))
}

macro_rules! signed_dims {
    ($($t:ty),*) => {$(
        impl<const N: usize> ReshapeDims for [$t; N] {
            fn resolve(self, numel: usize) -> Result<Shape> {
                infer(self.iter().map(|&d| d as i64).collect(), numel)
            }
        }
        impl ReshapeDims for &[$t] {
            fn resolve(self, numel: usize) -> Result<Shape> {
                infer(self.iter().map(|&d| d as i64).collect(), numel)
            }
        }
        impl ReshapeDims for Vec<$t> {
            fn resolve(self, numel: usize) -> Result<Shape> {
                infer(self.iter().map(|&d| d as i64).collect(), numel)
            }
        }
    )*};
}
signed_dims!(i32, i64, isize);

impl Tensor {
    /// The same elements in a new shape, sharing the storage (a PyTorch `view`). One size may
    /// be `-1` with signed sizes: `x.reshape([-1, 784])`.
    pub fn reshape(&self, shape: impl ReshapeDims) -> Result<Tensor> {
        let shape = shape.resolve(self.numel())?;
        self.reshape_to(shape)
    }

    /// Same as [`Tensor::reshape`] (wgnn tensors are always contiguous, so every reshape is a
    /// view).
    pub fn view(&self, shape: impl ReshapeDims) -> Result<Tensor> {
        self.reshape(shape)
    }

    /// Dims `start..=end` merged into one (negative dims count from the end; PyTorch's
    /// `flatten(start_dim, end_dim)`).
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        const OP: &str = "flatten";
        let rank = self.dims().len();
        if rank == 0 {
            return self.reshape([1usize]);
        }
        let (s, e) = (dim_index(OP, start, rank)?, dim_index(OP, end, rank)?);
        if s > e {
            return Err(Error::invalid(
                OP,
                format!("start dim {start} comes after end dim {end}"),
            ));
        }
        let d = self.dims();
        let mut out = d[..s].to_vec();
        out.push(d[s..=e].iter().product());
        out.extend_from_slice(&d[e + 1..]);
        self.reshape(out)
    }

    /// Dim `dim` removed when its size is 1 (unchanged otherwise, as PyTorch).
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let i = dim_index("squeeze", dim, self.dims().len())?;
        if self.dims().get(i) != Some(&1) {
            return Ok(self.clone());
        }
        let mut d = self.dims().to_vec();
        d.remove(i);
        self.reshape(d)
    }

    /// Every size-1 dim removed.
    pub fn squeeze_all(&self) -> Result<Tensor> {
        let d: Vec<usize> = self.dims().iter().copied().filter(|&s| s != 1).collect();
        self.reshape(d)
    }

    /// A size-1 dim inserted at `dim` (`-1` appends one, as PyTorch).
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let i = dim_index("unsqueeze", dim, self.dims().len() + 1)?;
        let mut d = self.dims().to_vec();
        d.insert(i, 1);
        self.reshape(d)
    }

    /// The dims reordered: output dim `k` is input dim `dims[k]` (a copy).
    pub fn permute(&self, dims: &[isize]) -> Result<Tensor> {
        const OP: &str = "permute";
        let rank = self.dims().len();
        if dims.len() != rank {
            return Err(Error::invalid(
                OP,
                format!("{dims:?} names {} dims of a rank-{rank} tensor", dims.len()),
            ));
        }
        let perm: Vec<usize> = dims
            .iter()
            .map(|&d| dim_index(OP, d, rank))
            .collect::<Result<_>>()?;
        let mut seen = vec![false; rank];
        for &p in &perm {
            if std::mem::replace(&mut seen[p], true) {
                return Err(Error::invalid(OP, format!("{dims:?} repeats dim {p}")));
            }
        }
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        self.permute_idx(&perm)
    }

    pub(crate) fn permute_idx(&self, perm: &[usize]) -> Result<Tensor> {
        const OP: &str = "permute";
        super::want_float(OP, self, self.dtype)?;
        let own = contiguous_strides(self.dims());
        let out_dims: Vec<usize> = perm.iter().map(|&p| self.dims()[p]).collect();
        let strides: Vec<usize> = perm.iter().map(|&p| own[p]).collect();
        let walk = Strided::new(OP, &out_dims, &[strides])?;
        let op = PointwiseOp::new(Pw::Identity, 0.0, 0.0);
        let out = run(op, &[self], Shape::new(out_dims), &walk, self.dtype)?;
        let mut inverse = vec![0; perm.len()];
        for (k, &p) in perm.iter().enumerate() {
            inverse[p] = k;
        }
        Ok(record(out, OP, &[self], move |g| {
            Ok(vec![Some(g.permute_idx(&inverse)?)])
        }))
    }

    /// Dims `d0` and `d1` swapped (a copy).
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let rank = self.dims().len();
        let (a, b) = (
            dim_index("transpose", d0, rank)?,
            dim_index("transpose", d1, rank)?,
        );
        if a == b {
            return Ok(self.clone());
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(a, b);
        self.permute_idx(&perm)
    }

    /// The transpose of a matrix (PyTorch's `t()`; rank ≤ 2).
    pub fn t(&self) -> Result<Tensor> {
        match self.dims().len() {
            0 | 1 => Ok(self.clone()),
            2 => self.transpose(0, 1),
            r => Err(Error::invalid(
                "t",
                format!("expects a tensor of rank ≤ 2, got rank {r}; use transpose(d0, d1)"),
            )),
        }
    }

    /// Dim `from` moved to position `to`, the others keeping their order.
    pub fn movedim(&self, from: isize, to: isize) -> Result<Tensor> {
        let rank = self.dims().len();
        let (f, t) = (
            dim_index("movedim", from, rank)?,
            dim_index("movedim", to, rank)?,
        );
        if f == t {
            return Ok(self.clone());
        }
        let mut perm: Vec<usize> = (0..rank).filter(|&d| d != f).collect();
        perm.insert(t, f);
        self.permute_idx(&perm)
    }

    /// Pieces of `size` elements along `dim`, the last one shorter when `size` does not
    /// divide the dim (PyTorch's `split(size, dim)`): an LSTM's four gates from one product.
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = existing_dim("split", dim, self.dims().len())?;
        if size == 0 {
            return Err(Error::invalid("split", "the piece size must be ≥ 1"));
        }
        let total = self.dims()[d];
        // A huge dim of an empty tensor (`[0, 2^40]`) would make more pieces than memory holds:
        // the list is reserved first, so that is an error rather than an abort.
        let count = total.div_ceil(size);
        let mut pieces = Vec::new();
        pieces.try_reserve_exact(count).map_err(|e| {
            Error::invalid(
                "split",
                format!(
                    "{count} pieces of a {} tensor along dim {d}: {e}",
                    self.shape
                ),
            )
        })?;
        for start in (0..total).step_by(size) {
            pieces.push(self.narrow(d as isize, start, size.min(total - start))?);
        }
        Ok(pieces)
    }

    /// `chunks` pieces along `dim` of `ceil(size / chunks)` elements each (fewer pieces when
    /// the dim is short, as PyTorch's `chunk`).
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = existing_dim("chunk", dim, self.dims().len())?;
        if chunks == 0 {
            return Err(Error::invalid("chunk", "the number of chunks must be ≥ 1"));
        }
        self.split(self.dims()[d].div_ceil(chunks).max(1), dim)
    }

    /// The tensors, all of one shape, joined along a new dim `dim` (PyTorch's `stack`).
    pub fn stack(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("stack", "needs at least one tensor"))?;
        let i = dim_index("stack", dim, first.dims().len() + 1)?;
        for t in tensors {
            if t.dims() != first.dims() {
                return Err(Error::shapes(
                    "stack",
                    first.shape(),
                    t.shape(),
                    "stacked tensors must have one shape",
                ));
            }
        }
        let parts: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.unsqueeze(i as isize))
            .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = parts.iter().collect();
        Tensor::cat(&refs, i as isize)
    }
}

impl Tensor {
    /// Swaps the last two dimensions (`[.., r, c] → [.., c, r]`), materialised: the layout
    /// change between im2col rows `[n, oh*ow, c]` and NCHW `[n, c, oh*ow]`.
    pub(crate) fn transpose_last2(&self) -> Result<Tensor> {
        const OP: &str = "transpose_last2";
        want_float(OP, self, self.dtype)?;
        let d = self.dims();
        if d.len() < 2 {
            return Err(Error::invalid(
                OP,
                format!("needs rank ≥ 2, got {}", self.shape),
            ));
        }
        let (r, c) = (d[d.len() - 2], d[d.len() - 1]);
        let batch = self.numel().checked_div(r * c).unwrap_or(0);
        let mut od = d.to_vec();
        let len = od.len();
        od.swap(len - 2, len - 1);
        let dt = self.dtype;
        let out = backend!(OP, dt, [self => x], |be| {
            let mut out = be.alloc(self.numel(), dt, OP)?;
            be.transpose(x, &mut out, batch, r, c)?;
            Ok(Tensor::from_parts(Shape::new(od.clone()), dt, out.into()))
        })?;
        Ok(record(out, OP, &[self], |g| {
            Ok(vec![Some(g.transpose_last2()?)])
        }))
    }

    /// In place: the [`BlockCopy`] `b` from `src` into `self`.
    fn copy_block_(&mut self, src: &Tensor, b: &BlockCopy) -> Result<()> {
        const OP: &str = "copy_block";
        want_float(OP, self, self.dtype)?;
        want_float(OP, src, self.dtype)?;
        same_device(OP, &[self, src])?;
        // Nothing to copy: without this, a zero-size block of a huge `outer` (a `[2^62, 0]`
        // tensor) would be walked row by empty row.
        if b.outer == 0 || b.len == 0 || b.inner == 0 {
            return Ok(());
        }
        match (self.storage_mut()?, &*src.storage) {
            (Storage::Cpu(d), Storage::Cpu(s)) => {
                in_place_f32(d, |d| CpuBackend.copy_block(&s.widen_f16(), d, b))
            }
            (Storage::Gpu(d), Storage::Gpu(s)) => {
                let ctx = d.ctx().clone();
                ctx.copy_block(s, d, b)
            }
            _ => unreachable!("same_device checked the operands"),
        }
    }

    /// Elements `start..start + len` along dimension `dim` (PyTorch's `narrow`, a slice),
    /// copied. Backward: the gradient goes back into those positions of a zero tensor.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        const OP: &str = "narrow";
        let dim = existing_dim(OP, dim, self.shape.rank())?;
        if start
            .checked_add(len)
            .is_none_or(|end| end > self.dims()[dim])
            || len == 0
        {
            return Err(Error::invalid(
                OP,
                format!(
                    "cannot take {start}..{} along dimension {dim} of a {} tensor",
                    start.saturating_add(len),
                    self.shape
                ),
            ));
        }
        let (outer, size, inner) = around(&self.shape, dim);
        let mut od = self.dims().to_vec();
        od[dim] = len;
        let mut out = Tensor::zeros(od, self.dtype, &self.device())?;
        let b = BlockCopy {
            outer,
            len,
            inner,
            src_dim: size,
            dst_dim: len,
            src_off: start,
            dst_off: 0,
        };
        out.copy_block_(&self.detach(), &b)?;
        let shape = self.shape.clone();
        Ok(record(out, OP, &[self], move |g| {
            let mut dx = Tensor::zeros(shape, g.dtype, &g.device())?;
            let back = BlockCopy {
                src_dim: len,
                dst_dim: size,
                src_off: 0,
                dst_off: start,
                ..b
            };
            dx.copy_block_(g, &back)?;
            Ok(vec![Some(dx)])
        }))
    }

    /// `tensors` joined along dimension `dim` (PyTorch's `torch.cat`): equal shapes but in
    /// `dim`, one dtype, one device. Backward: each input gets its slice of the gradient.
    pub fn cat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        const OP: &str = "cat";
        let Some(first) = tensors.first() else {
            return Err(Error::invalid(OP, "nothing to concatenate"));
        };
        let dim = existing_dim(OP, dim, first.shape.rank())?;
        let mut total = 0usize;
        for t in tensors {
            want_float(OP, t, first.dtype)?;
            let same_rest = t.shape.rank() == first.shape.rank()
                && (0..first.shape.rank()).all(|i| i == dim || t.dims()[i] == first.dims()[i]);
            if !same_rest {
                return Err(Error::shapes(
                    OP,
                    &first.shape,
                    &t.shape,
                    format!("shapes must agree in every dimension but {dim}"),
                ));
            }
            total = total.checked_add(t.dims()[dim]).ok_or_else(|| {
                Error::shapes(
                    OP,
                    &first.shape,
                    &t.shape,
                    format!("the joined size along dimension {dim} overflows"),
                )
            })?;
        }
        let refs: Vec<&Tensor> = tensors.to_vec();
        same_device(OP, &refs)?;
        let mut od = first.dims().to_vec();
        od[dim] = total;
        let out_shape = Shape::new(od);
        let mut out = Tensor::zeros(out_shape.clone(), first.dtype, &first.device())?;
        let mut off = 0;
        let mut pieces = Vec::with_capacity(tensors.len());
        for t in tensors {
            let (outer, len, inner) = around(&t.shape, dim);
            let b = BlockCopy {
                outer,
                len,
                inner,
                src_dim: len,
                dst_dim: total,
                src_off: 0,
                dst_off: off,
            };
            out.copy_block_(&t.detach(), &b)?;
            pieces.push((off, len));
            off += len;
        }
        Ok(record(out, OP, &refs, move |g| {
            pieces
                .iter()
                .map(|&(off, len)| g.narrow(dim as isize, off, len).map(Some))
                .collect()
        }))
    }
}

/// `(outer, size, inner)` of `shape` around dimension `dim`.
fn around(shape: &Shape, dim: usize) -> (usize, usize, usize) {
    let d = shape.dims();
    (
        d[..dim].iter().product(),
        d[dim],
        d[dim + 1..].iter().product(),
    )
}
