//! The kernel-level ops the layers, losses and optimizers are built from — im2col, the
//! fused softmax-cross-entropy and its backward, the optimizer updates, in-place GEMM — kept off
//! `Tensor`'s documented surface. Import [`Kernels`] to call them directly (benchmarks, backend
//! cross-checks, a layer of your own written the book's way).

use crate::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::ops::{Conv2dGeom, DropoutSpec, OptimStep, Pool2dGeom, RandomSpec};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::tensor_ops::OptimTarget;

/// Kernel-level tensor ops (see the module doc). Each method is the crate's own op, checked
/// and dispatched as any other; only its place in the API differs.
pub trait Kernels {
    /// im2col of an NCHW tensor → `[n*oh*ow, c*kh*kw]`, rows (n, oy, ox), columns (c, ky, kx).
    fn im2col(&self, kh: usize, kw: usize, stride: usize, pad: usize) -> Result<Tensor>;

    /// col2im: the adjoint of im2col (overlapping windows add up) → `[n, c, h, w]` of `g`.
    fn col2im(&self, g: &Conv2dGeom) -> Result<Tensor>;

    /// The convolution geometry of this NCHW tensor under a `kh`×`kw` window.
    fn conv_geom(&self, kh: usize, kw: usize, stride: usize, pad: usize) -> Result<Conv2dGeom>;

    /// Backward of [`Tensor::conv2d`]: `self` is the forward input; returns `(dx, dw, db)`.
    fn conv2d_backward(
        &self,
        w: &Tensor,
        dout: &Tensor,
        stride: usize,
        pad: usize,
    ) -> Result<(Tensor, Tensor, Tensor)>;

    /// Gathers `count` rows of a packed byte matrix (`self`: u32 words holding `row_len`-byte
    /// rows, little-endian) at the row indices `perm[offset..offset + count]`. With `dtype`
    /// F32 the bytes are scaled by `scale` (→ `[count, row_len]` f32); with U32 they are copied.
    fn gather_bytes(
        &self,
        perm: &Tensor,
        offset: usize,
        count: usize,
        row_len: usize,
        scale: f32,
        dtype: DType,
    ) -> Result<Tensor>;

    /// A dropout mask: element i is `spec.scale` when the counter hash of `(seed, offset + i)`
    /// is ≥ `ratio`, else 0. The same mask on every device.
    fn dropout_mask(shape: impl Into<Shape>, spec: &DropoutSpec, device: &Device)
    -> Result<Tensor>;

    /// [`Kernels::dropout_mask`] of a float `dtype` (the dtype of the activations it masks).
    fn dropout_mask_as(
        shape: impl Into<Shape>,
        dtype: DType,
        spec: &DropoutSpec,
        device: &Device,
    ) -> Result<Tensor>;

    /// f32 random values of `spec` drawn on `device` (one dispatch on a GPU, nothing
    /// uploaded); [`crate::randn`] and [`crate::rand`] are this with the default generator's
    /// seed.
    fn random(shape: impl Into<Shape>, spec: &RandomSpec, device: &Device) -> Result<Tensor>;

    /// One categorical draw per row of the logits `self` `[.., K]` → u32 `[..]`, from the
    /// counter hash of `(seed, offset + row)` ([`crate::distributions::Categorical::sample`]
    /// takes its seed from the default generator).
    fn sample_categorical(&self, seed: u32, offset: u32) -> Result<Tensor>;

    /// Softmax backward: `self` is dy, `y` the forward output; `dx = y * (dy - Σ dy·y)` per row.
    fn softmax_backward(&self, y: &Tensor) -> Result<Tensor>;

    /// Softmax + cross-entropy against class indices (`labels`: u32 `[rows]`).
    /// Returns `(mean loss [1], probabilities)`; the loss per row is `logsumexp(x) - x[label]`,
    /// the exact form of the book's `-log(softmax(x)[t])` without its 1e-7 guard.
    /// On a GPU a label ≥ the class count gives a NaN loss (labels are not read back to check).
    fn softmax_cross_entropy(&self, labels: &Tensor) -> Result<(Tensor, Tensor)>;

    /// Gradient of the mean softmax-CE loss: `self` is the probabilities from the forward,
    /// `dx = (probs - onehot(labels)) * dout / rows`.
    fn softmax_cross_entropy_backward(&self, labels: &Tensor, dout: f32) -> Result<Tensor>;

    /// Index of the largest element of each row (first wins) → u32 `[rows]`.
    fn argmax_rows(&self) -> Result<Tensor>;

    /// How many rows' argmax equals the label → u32 `[1]` (accuracy without reading scores back).
    fn count_correct(&self, labels: &Tensor) -> Result<Tensor>;

    /// Adds the number of correct rows to `acc` (u32 `[1]`) on the device.
    fn count_correct_into(&self, labels: &Tensor, acc: &mut Tensor) -> Result<()>;

    /// In place `self = alpha · op(a) · op(b) + beta · self` (gradient accumulation).
    fn gemm_(
        &mut self,
        a: &Tensor,
        b: &Tensor,
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
    ) -> Result<()>;

    /// Training-mode batch normalisation of an f32 view `[N, C, S]` with scale and shift
    /// `gamma`, `beta` `[C]`: each channel normalised by the mean and (biased) variance of its
    /// N·S values. Returns `(y [N, C, S], mean [C], var [C])`; the statistics are outside the
    /// graph (for running averages). Fused kernels both ways (`shaders/norm.wgsl`): the
    /// backward is `dx = γ/(σ·m)·(m·dy - Σdy - x̂·Σdy·x̂)`, `dγ = Σ dy·x̂`, `dβ = Σ dy`.
    /// f32 only: under mixed precision [`crate::nn::BatchNorm`] casts to f32 first (1/σ² of a
    /// near-constant channel overflows f16).
    fn batch_norm_train(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor, Tensor)>;

    /// One optimizer update in place: `self` is the parameter, `grad` its gradient, `s1`/`s2`
    /// the optimizer's state tensors (as many as [`crate::ops::OptimKind::state_count`]), `guard` a loss
    /// scaler's state ([`crate::optim::LossScaler::state`]; the identity scaler outside mixed
    /// precision): the gradient is divided by its scale and the update skipped while its
    /// non-finite flag is set.
    fn optim_update_(
        &mut self,
        grad: &Tensor,
        s1: Option<&mut Tensor>,
        s2: Option<&mut Tensor>,
        guard: &Tensor,
        step: &OptimStep,
    ) -> Result<()>;

    /// [`Kernels::optim_update_`] for many parameters at once, each with its own weight decay:
    /// on a GPU one dispatch updates up to eight tensors (a multi-tensor step), elsewhere
    /// each is updated in turn. Every target is checked before anything is updated.
    fn optim_update_many_(
        targets: &mut [OptimTarget<'_>],
        guard: &Tensor,
        step: &OptimStep,
    ) -> Result<()>;

    /// In place `self += alpha * x`.
    fn axpy_(&mut self, alpha: f32, x: &Tensor) -> Result<()>;

    /// The pooling geometry of this NCHW tensor.
    fn pool_geom(&self, ph: usize, pw: usize, stride: usize, pad: usize) -> Result<Pool2dGeom>;

    /// Max-pool backward: `self` is dy `[n, c, oh, ow]`; each gradient goes to its argmax.
    fn max_pool2d_backward(&self, idx: &Tensor, g: &Pool2dGeom) -> Result<Tensor>;

    /// Swaps the last two dimensions (`[.., r, c] → [.., c, r]`), materialised: the layout
    /// change between im2col rows `[n, oh*ow, c]` and NCHW `[n, c, oh*ow]`.
    fn transpose_last2(&self) -> Result<Tensor>;
}

impl Kernels for Tensor {
    fn im2col(&self, kh: usize, kw: usize, stride: usize, pad: usize) -> Result<Tensor> {
        Tensor::im2col(self, kh, kw, stride, pad)
    }

    fn col2im(&self, g: &Conv2dGeom) -> Result<Tensor> {
        Tensor::col2im(self, g)
    }

    fn conv_geom(&self, kh: usize, kw: usize, stride: usize, pad: usize) -> Result<Conv2dGeom> {
        Tensor::conv_geom(self, kh, kw, stride, pad)
    }

    fn conv2d_backward(
        &self,
        w: &Tensor,
        dout: &Tensor,
        stride: usize,
        pad: usize,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        Tensor::conv2d_backward(self, w, dout, stride, pad)
    }

    fn gather_bytes(
        &self,
        perm: &Tensor,
        offset: usize,
        count: usize,
        row_len: usize,
        scale: f32,
        dtype: DType,
    ) -> Result<Tensor> {
        Tensor::gather_bytes(self, perm, offset, count, row_len, scale, dtype)
    }

    fn dropout_mask(
        shape: impl Into<Shape>,
        spec: &DropoutSpec,
        device: &Device,
    ) -> Result<Tensor> {
        Tensor::dropout_mask(shape, spec, device)
    }

    fn dropout_mask_as(
        shape: impl Into<Shape>,
        dtype: DType,
        spec: &DropoutSpec,
        device: &Device,
    ) -> Result<Tensor> {
        Tensor::dropout_mask_as(shape, dtype, spec, device)
    }

    fn random(shape: impl Into<Shape>, spec: &RandomSpec, device: &Device) -> Result<Tensor> {
        Tensor::random(shape, spec, device)
    }

    fn sample_categorical(&self, seed: u32, offset: u32) -> Result<Tensor> {
        Tensor::sample_categorical(self, seed, offset)
    }

    fn softmax_backward(&self, y: &Tensor) -> Result<Tensor> {
        Tensor::softmax_backward(self, y)
    }

    fn softmax_cross_entropy(&self, labels: &Tensor) -> Result<(Tensor, Tensor)> {
        Tensor::softmax_cross_entropy(self, labels)
    }

    fn softmax_cross_entropy_backward(&self, labels: &Tensor, dout: f32) -> Result<Tensor> {
        Tensor::softmax_cross_entropy_backward(self, labels, dout)
    }

    fn argmax_rows(&self) -> Result<Tensor> {
        Tensor::argmax_rows(self)
    }

    fn count_correct(&self, labels: &Tensor) -> Result<Tensor> {
        Tensor::count_correct(self, labels)
    }

    fn count_correct_into(&self, labels: &Tensor, acc: &mut Tensor) -> Result<()> {
        Tensor::count_correct_into(self, labels, acc)
    }

    fn gemm_(
        &mut self,
        a: &Tensor,
        b: &Tensor,
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
    ) -> Result<()> {
        Tensor::gemm_(self, a, b, trans_a, trans_b, alpha, beta)
    }

    fn batch_norm_train(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f32,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        Tensor::batch_norm_train(self, gamma, beta, eps)
    }

    fn optim_update_(
        &mut self,
        grad: &Tensor,
        s1: Option<&mut Tensor>,
        s2: Option<&mut Tensor>,
        guard: &Tensor,
        step: &OptimStep,
    ) -> Result<()> {
        Tensor::optim_update_(self, grad, s1, s2, guard, step)
    }

    fn optim_update_many_(
        targets: &mut [OptimTarget<'_>],
        guard: &Tensor,
        step: &OptimStep,
    ) -> Result<()> {
        Tensor::optim_update_many_(targets, guard, step)
    }

    fn axpy_(&mut self, alpha: f32, x: &Tensor) -> Result<()> {
        Tensor::axpy_(self, alpha, x)
    }

    fn pool_geom(&self, ph: usize, pw: usize, stride: usize, pad: usize) -> Result<Pool2dGeom> {
        Tensor::pool_geom(self, ph, pw, stride, pad)
    }

    fn max_pool2d_backward(&self, idx: &Tensor, g: &Pool2dGeom) -> Result<Tensor> {
        Tensor::max_pool2d_backward(self, idx, g)
    }

    fn transpose_last2(&self) -> Result<Tensor> {
        Tensor::transpose_last2(self)
    }
}
