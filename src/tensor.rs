//! The tensor: a shape, a dtype and storage on one device.
//!
//! A GPU tensor stays on the GPU: creating one records an upload into the device's pending
//! command encoder, ops record dispatches, and the only host round trip is an explicit read
//! (`to_vec`, `to_device(&Device::Cpu)`). Dropping a GPU tensor returns its buffer to the
//! device's pool.
//!
//! Storage is reference-counted: `clone()` and `reshape()` share it (like a PyTorch view) and
//! cost nothing, which is how layers cache their inputs for backward. The in-place methods
//! (`axpy_`, `fill_`, `gemm_` …) are copy-on-write: on a tensor whose storage is shared they
//! first take a private copy, so no other handle ever sees the change.

use crate::autograd::{self, Node};
use crate::cpu::CpuStorage;
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::gpu::GpuBuffer;
use crate::rng::SplitMix64;
use crate::shape::Shape;
use std::fmt;
use std::sync::Arc;

/// Where a tensor's elements are.
pub(crate) enum Storage {
    Cpu(CpuStorage),
    Gpu(GpuBuffer),
}

impl From<CpuStorage> for Storage {
    fn from(s: CpuStorage) -> Self {
        Storage::Cpu(s)
    }
}

impl From<GpuBuffer> for Storage {
    fn from(b: GpuBuffer) -> Self {
        Storage::Gpu(b)
    }
}

/// An n-dimensional array on a [`Device`]. Cloning shares the storage (and the place in the
/// autograd graph, if any).
#[derive(Clone)]
pub struct Tensor {
    pub(crate) shape: Shape,
    pub(crate) dtype: DType,
    pub(crate) storage: Arc<Storage>,
    /// Where this tensor is in the autograd graph: a leaf that requires a gradient, the output
    /// of a recorded op, or nowhere (see [`crate::autograd`]).
    pub(crate) node: Option<Arc<Node>>,
}

impl Tensor {
    pub(crate) fn from_parts(shape: Shape, dtype: DType, storage: Storage) -> Tensor {
        Tensor {
            shape,
            dtype,
            storage: Arc::new(storage),
            node: None,
        }
    }

    pub(crate) fn with_node(mut self, node: Option<Arc<Node>>) -> Tensor {
        self.node = node;
        self
    }

    /// Marks this tensor as a leaf whose gradient [`Tensor::backward`] accumulates (`true`), or
    /// takes it out of the graph (`false`). Parameters are such leaves. Only float tensors can
    /// require a gradient.
    pub fn set_requires_grad(&mut self, on: bool) -> Result<()> {
        if on && !self.dtype.is_float() {
            return Err(Error::invalid(
                "set_requires_grad",
                format!("a {} tensor has no gradient", self.dtype),
            ));
        }
        self.node = on.then(Node::leaf);
        Ok(())
    }

    /// `self` as a leaf that requires a gradient (builder form of
    /// [`Tensor::set_requires_grad`]).
    pub fn requiring_grad(mut self) -> Result<Tensor> {
        self.set_requires_grad(true)?;
        Ok(self)
    }

    /// Whether ops on this tensor are recorded for backward (a leaf that requires a gradient,
    /// or the output of a recorded op).
    pub fn requires_grad(&self) -> bool {
        self.node.is_some()
    }

    /// True for tensors not produced by a recorded op (every tensor outside a graph, and
    /// the leaves in one).
    pub fn is_leaf(&self) -> bool {
        self.node.as_ref().is_none_or(|n| n.is_leaf())
    }

    /// The same values outside the graph (shares the storage; no copy).
    pub fn detach(&self) -> Tensor {
        Tensor {
            shape: self.shape.clone(),
            dtype: self.dtype,
            storage: self.storage.clone(),
            node: None,
        }
    }

    /// The gradient accumulated into this leaf by the backward passes since it was last
    /// cleared; `None` if none reached it (or for a non-leaf).
    pub fn grad(&self) -> Option<Tensor> {
        self.node.as_ref().and_then(|n| n.grad())
    }

    /// Replaces this leaf's gradient (`None` clears it, as [`Tensor::zero_grad`]).
    pub fn set_grad(&self, grad: Option<Tensor>) -> Result<()> {
        match &self.node {
            Some(n) if n.is_leaf() => {
                if let Some(g) = &grad
                    && (g.shape != self.shape || g.dtype != self.dtype)
                {
                    return Err(Error::invalid(
                        "set_grad",
                        format!(
                            "a {} {} gradient for a {} {} tensor",
                            g.dtype, g.shape, self.dtype, self.shape
                        ),
                    ));
                }
                n.set_grad(grad);
                Ok(())
            }
            _ => Err(Error::invalid(
                "set_grad",
                "only a leaf that requires a gradient holds one",
            )),
        }
    }

    /// Clears this leaf's gradient (PyTorch's `zero_grad(set_to_none=True)`); no-op elsewhere.
    pub fn zero_grad(&self) {
        if let Some(n) = &self.node {
            n.set_grad(None);
        }
    }

    /// Backpropagates from this one-element tensor (a loss): adds d(self)/d(leaf) into the
    /// gradient of every leaf it depends on. The graph's saved tensors are freed on the way.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "backward",
                format!(
                    "needs a one-element tensor (a loss), got {}; use backward_with(grad) for \
                     others",
                    self.shape
                ),
            ));
        }
        let mut seed = Tensor::zeros(self.shape.clone(), self.dtype, &self.device())?;
        seed.fill_(1.0)?;
        autograd::backward(self, seed)
    }

    /// Backpropagates from this tensor with `grad` as d(loss)/d(self), of its shape and dtype
    /// (a GAN's generator step, a loss computed elsewhere, a scaled loss).
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        autograd::backward(self, grad.detach())
    }

    /// A tensor holding a copy of `data`, with `shape`, on `device`.
    pub fn from_slice<T: Element>(
        data: &[T],
        shape: impl Into<Shape>,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        check_len("from_slice", &shape, data.len())?;
        Tensor::from_vec(data.to_vec(), shape, device)
    }

    /// A tensor taking ownership of `data` (no copy on the CPU).
    pub fn from_vec<T: Element>(
        data: Vec<T>,
        shape: impl Into<Shape>,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        check_len("from_vec", &shape, data.len())?;
        let storage = match device {
            Device::Cpu => Storage::Cpu(CpuStorage::from_vec(data)),
            Device::Gpu(ctx) => {
                Storage::Gpu(ctx.upload(bytemuck::cast_slice(&data), T::DTYPE, data.len())?)
            }
        };
        Ok(Tensor::from_parts(shape, T::DTYPE, storage))
    }

    /// All zeros.
    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = checked_len("zeros", &shape, dtype)?;
        let storage = match device {
            Device::Cpu => Storage::Cpu(
                CpuStorage::zeros(dtype, n, "zeros").map_err(|e| with_shape(e, &shape))?,
            ),
            Device::Gpu(ctx) => Storage::Gpu(ctx.zeros(n, dtype)?),
        };
        Ok(Tensor::from_parts(shape, dtype, storage))
    }

    /// Every element `value` (f32).
    pub fn full(shape: impl Into<Shape>, value: f32, device: &Device) -> Result<Tensor> {
        let mut t = Tensor::zeros(shape, DType::F32, device)?;
        t.fill_(value)?;
        Ok(t)
    }

    /// All ones.
    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let mut t = Tensor::zeros(shape, dtype, device)?;
        t.fill_(1.0)?;
        Ok(t)
    }

    /// Zeros with `like`'s shape, dtype and device.
    pub fn zeros_like(like: &Tensor) -> Result<Tensor> {
        Tensor::zeros(like.shape.clone(), like.dtype, &like.device())
    }

    /// Ones with `like`'s shape, dtype and device.
    pub fn ones_like(like: &Tensor) -> Result<Tensor> {
        Tensor::ones(like.shape.clone(), like.dtype, &like.device())
    }

    /// Every element `value`, with `like`'s shape, dtype and device.
    pub fn full_like(like: &Tensor, value: f32) -> Result<Tensor> {
        let mut t = Tensor::zeros_like(like)?;
        t.fill_(value)?;
        Ok(t)
    }

    /// `start, start + step, …` up to (excluding) `end`, f32 (PyTorch's `arange`).
    pub fn arange(start: f32, end: f32, step: f32, device: &Device) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid(
                "arange",
                format!("needs finite bounds and a nonzero step, got {start}..{end} by {step}"),
            ));
        }
        // Saturates at usize::MAX for a count past it (or infinite), which `host_vec` refuses.
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let mut data = host_vec("arange", &Shape::new([n]))?;
        data.extend((0..n).map(|i| start + step * i as f32));
        Tensor::from_vec(data, [n], device)
    }

    /// Uniform samples in `[0, 1)` from `seed` (PyTorch's `rand` with a generator).
    pub fn rand(shape: impl Into<Shape>, seed: u64, device: &Device) -> Result<Tensor> {
        Tensor::rand_uniform(shape, 0.0, 1.0, seed, device)
    }

    /// Normal samples with `mean` and `std`, from `seed` (same values on every device).
    pub fn randn(
        shape: impl Into<Shape>,
        mean: f32,
        std: f32,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let mut rng = SplitMix64::new(seed);
        let mut data = host_vec("randn", &shape)?;
        data.extend((0..shape.numel()).map(|_| mean + std * rng.next_normal() as f32));
        Tensor::from_vec(data, shape, device)
    }

    /// Uniform samples in `[low, high)`, from `seed` (same values on every device).
    pub fn rand_uniform(
        shape: impl Into<Shape>,
        low: f32,
        high: f32,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let mut rng = SplitMix64::new(seed);
        let mut data = host_vec("rand_uniform", &shape)?;
        data.extend((0..shape.numel()).map(|_| low + (high - low) * rng.next_f64() as f32));
        Tensor::from_vec(data, shape, device)
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the tensor lives on.
    pub fn device(&self) -> Device {
        match &*self.storage {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Gpu(b) => Device::Gpu(b.ctx().clone()),
        }
    }

    /// Copies the elements to the host. On a GPU this submits pending work and waits for it:
    /// it is the one place a GPU tensor syncs, and it reads back exactly the tensor's bytes.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype {
            return Err(Error::DTypeMismatch {
                op: "to_vec",
                expected: self.dtype,
                got: T::DTYPE,
            });
        }
        match &*self.storage {
            Storage::Cpu(s) => s.to_vec::<T>(),
            Storage::Gpu(b) => {
                let bytes = b.ctx().read(b, self.numel() * self.dtype.size())?;
                Ok(bytemuck::pod_collect_to_vec(&bytes))
            }
        }
    }

    /// The single value of a one-element tensor, as f32.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "item",
                format!("tensor of shape {} is not a single value", self.shape),
            ));
        }
        match self.dtype {
            DType::F32 => Ok(self.to_vec::<f32>()?[0]),
            DType::F16 => Ok(self.to_vec::<half::f16>()?[0].to_f32()),
            DType::U32 => Ok(self.to_vec::<u32>()?[0] as f32),
        }
    }

    /// The values of several one-element tensors (any dtype, one device) as f64, read with a
    /// single submit and wait on a GPU: a training loop's loss and accuracy counters at once.
    pub fn read_scalars(tensors: &[&Tensor]) -> Result<Vec<f64>> {
        let Some(first) = tensors.first() else {
            return Ok(Vec::new());
        };
        let device = first.device();
        for t in tensors {
            if t.numel() != 1 {
                return Err(Error::invalid(
                    "read_scalars",
                    format!("tensor of shape {} is not a single value", t.shape),
                ));
            }
            if !t.device().same(&device) {
                return Err(Error::DeviceMismatch {
                    op: "read_scalars",
                    lhs: device.to_string(),
                    rhs: t.device().to_string(),
                });
            }
        }
        let decode = |dtype: DType, b: &[u8]| -> f64 {
            match dtype {
                DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                DType::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                DType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f64(),
            }
        };
        match &device {
            Device::Cpu => tensors
                .iter()
                .map(|t| match t.dtype {
                    DType::F32 => Ok(t.to_vec::<f32>()?[0] as f64),
                    DType::U32 => Ok(t.to_vec::<u32>()?[0] as f64),
                    DType::F16 => Ok(t.to_vec::<half::f16>()?[0].to_f64()),
                })
                .collect(),
            Device::Gpu(ctx) => {
                let mut srcs = Vec::with_capacity(tensors.len());
                for t in tensors {
                    let Storage::Gpu(b) = &*t.storage else {
                        unreachable!("checked: same GPU device")
                    };
                    srcs.push((b, t.dtype.size()));
                }
                let bytes = ctx.read_many(&srcs)?;
                Ok(tensors
                    .iter()
                    .zip(&bytes)
                    .map(|(t, b)| decode(t.dtype, b))
                    .collect())
            }
        }
    }

    /// The tensor on `device`: a copy through the host, or — already there — a handle
    /// sharing the storage (as PyTorch's `.to()`).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if self.device().same(device) {
            return Ok(self.clone());
        }
        match self.dtype {
            DType::F32 => Tensor::from_vec(self.to_vec::<f32>()?, self.shape.clone(), device),
            DType::F16 => Tensor::from_vec(self.to_vec::<half::f16>()?, self.shape.clone(), device),
            DType::U32 => Tensor::from_vec(self.to_vec::<u32>()?, self.shape.clone(), device),
        }
    }

    /// The same elements with a new shape of equal size; shares the storage (no copy).
    pub(crate) fn reshape_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_numel() != Some(self.numel()) {
            return Err(Error::shapes(
                "reshape",
                &self.shape,
                &shape,
                "element counts differ",
            ));
        }
        let from = self.shape.clone();
        let out = Tensor {
            shape,
            dtype: self.dtype,
            storage: self.storage.clone(),
            node: None,
        };
        Ok(autograd::record(out, "reshape", &[self], move |g| {
            Ok(vec![Some(g.reshape(from)?)])
        }))
    }

    /// True when another tensor handle shares this one's storage.
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.storage) > 1
    }

    /// Exclusive access to the storage, copying it first if it is shared (copy-on-write).
    pub(crate) fn storage_mut(&mut self) -> Result<&mut Storage> {
        if autograd::is_grad_enabled() && self.node.as_ref().is_some_and(|n| !n.is_leaf()) {
            return Err(Error::invalid(
                "in-place op",
                format!(
                    "this {} tensor is the output of a recorded op: changing it in place would \
                     make its backward wrong; detach() it first, or work inside autograd::no_grad()",
                    self.shape
                ),
            ));
        }
        if Arc::get_mut(&mut self.storage).is_none() {
            self.storage = self.try_clone()?.storage;
        }
        Arc::get_mut(&mut self.storage).ok_or_else(|| {
            Error::invalid("storage_mut", "storage still shared after a private copy")
        })
    }

    /// The tensor converted to `dtype` (f32 ↔ f16, round to nearest even), on its device: a
    /// kernel on a GPU (which needs `SHADER_F16`), the `half` crate on the CPU. Converting to
    /// the dtype it already has shares the storage.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype {
            return Ok(self.clone());
        }
        let storage = match &*self.storage {
            Storage::Cpu(s) => Storage::Cpu(s.convert(dtype)?),
            Storage::Gpu(b) => Storage::Gpu(b.ctx().convert(b, dtype)?),
        };
        let out = Tensor::from_parts(self.shape.clone(), dtype, storage);
        // Backward casts the gradient back: f32 master weights used in f16 get f32 gradients.
        let from = self.dtype;
        Ok(autograd::record(out, "to_dtype", &[self], move |g| {
            Ok(vec![Some(g.to_dtype(from)?)])
        }))
    }

    /// A deep copy on the same device (a copy command on a GPU); `clone()` shares instead.
    pub fn try_clone(&self) -> Result<Tensor> {
        match &*self.storage {
            Storage::Cpu(s) => Ok(Tensor::from_parts(
                self.shape.clone(),
                self.dtype,
                Storage::Cpu(s.clone()),
            )),
            Storage::Gpu(b) => {
                let copy = b.ctx().copy_buffer(
                    b,
                    self.numel() * self.dtype.size(),
                    self.dtype,
                    self.numel(),
                )?;
                Ok(Tensor::from_parts(
                    self.shape.clone(),
                    self.dtype,
                    Storage::Gpu(copy),
                ))
            }
        }
    }
}

/// The element count a shape needs must match the data given.
fn check_len(op: &'static str, shape: &Shape, len: usize) -> Result<()> {
    match shape.checked_numel() {
        Some(n) if n == len => Ok(()),
        Some(n) => Err(Error::invalid(
            op,
            format!("shape {shape} holds {n} elements but {len} were given"),
        )),
        None => Err(Error::invalid(
            op,
            format!("shape {shape}: its element count overflows ({len} were given)"),
        )),
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor({}, {}, {}{})",
            self.shape,
            self.dtype,
            self.device(),
            if self.requires_grad() {
                ", requires_grad"
            } else {
                ""
            }
        )
    }
}

/// The element count of `shape` for a `dtype` tensor, or an error naming `op`, the shape and
/// the bytes when the count or its byte size overflows.
pub(crate) fn checked_len(op: &str, shape: &Shape, dtype: DType) -> Result<usize> {
    shape
        .checked_numel()
        .filter(|n| n.checked_mul(dtype.size()).is_some())
        .ok_or_else(|| Error::HostAllocation {
            op: op.to_string(),
            shape: shape.to_string(),
            dtype,
            bytes: shape
                .dims()
                .iter()
                .try_fold(dtype.size() as u128, |a, &d| a.checked_mul(d as u128))
                .unwrap_or(u128::MAX),
            why: "the size overflows".to_string(),
        })
}

/// An empty f32 vector with room for `shape`'s elements, or an error naming `op` and the shape.
fn host_vec(op: &str, shape: &Shape) -> Result<Vec<f32>> {
    let n = checked_len(op, shape, DType::F32)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|e| Error::HostAllocation {
        op: op.to_string(),
        shape: shape.to_string(),
        dtype: DType::F32,
        bytes: n as u128 * 4,
        why: e.to_string(),
    })?;
    Ok(v)
}

/// A host-allocation error re-labelled with the tensor's shape.
fn with_shape(e: Error, shape: &Shape) -> Error {
    match e {
        Error::HostAllocation {
            op,
            dtype,
            bytes,
            why,
            ..
        } => Error::HostAllocation {
            op,
            shape: shape.to_string(),
            dtype,
            bytes,
            why,
        },
        other => other,
    }
}

/// Standard normal samples from the default generator (PyTorch's `torch.randn(shape,
/// device=…)`), drawn on `device`: a GPU fills them in one dispatch with nothing uploaded (a
/// counter-based hash, see [`crate::ops::RandomSpec`]). Each call takes a fresh seed from
/// [`crate::manual_seed`]'s generator, so two calls differ and a run after `manual_seed(s)`
/// repeats; the CPU and a GPU draw the same values up to the last bits of `ln` and `cos`.
/// [`Tensor::randn`] takes an explicit seed and draws on the host instead (bit-identical
/// everywhere, for initial weights).
pub fn randn(shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
    let dist = crate::ops::Distribution::Normal {
        mean: 0.0,
        std: 1.0,
    };
    Tensor::random(shape, &default_spec(dist), device)
}

/// Uniform samples in `[0, 1)` from the default generator (PyTorch's `torch.rand(shape,
/// device=…)`), drawn on `device` as [`randn`]'s are (bit-identical on every device).
pub fn rand(shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
    let dist = crate::ops::Distribution::Uniform {
        low: 0.0,
        high: 1.0,
    };
    Tensor::random(shape, &default_spec(dist), device)
}

/// A random fill of `dist` seeded from the default generator.
fn default_spec(dist: crate::ops::Distribution) -> crate::ops::RandomSpec {
    let s = crate::rng::next_seed();
    crate::ops::RandomSpec {
        dist,
        seed: (s ^ (s >> 32)) as u32,
        offset: 0,
    }
}
