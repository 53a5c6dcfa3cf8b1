//! The op specs and geometries the [`Backend`](super::Backend) primitives take: matmul and
//! batched-matmul shapes, convolution and pooling windows, block copies, batch-norm and index
//! geometries, the augmentation, dropout and optimizer step parameters.

use crate::error::{Error, Result};
use crate::shape::checked_product;

/// `C = alpha * op(A) · op(B) + beta * C`, all row-major; `op(X)` is `Xᵀ` when the flag is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulSpec {
    /// Rows of `op(A)` and `C`.
    pub m: usize,
    /// Columns of `op(B)` and `C`.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// `A` is stored `[k, m]` and used transposed.
    pub trans_a: bool,
    /// `B` is stored `[n, k]` and used transposed.
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the previous `C` (0 ⇒ `C` is not read).
    pub beta: f32,
}

/// Geometry of a 2-D convolution window over an NCHW input (im2col/col2im).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Zero padding (all four sides).
    pub pad: usize,
}

impl Conv2dGeom {
    /// Output height, `1 + (h + 2 pad - kh) / stride` as in the book.
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }
    /// Rows of the im2col matrix: `n * out_h * out_w`, ordered (n, oy, ox).
    pub fn col_rows(&self) -> usize {
        self.n * self.out_h() * self.out_w()
    }
    /// Columns of the im2col matrix: `c * kh * kw`, ordered (c, ky, kx) as in the book.
    pub fn col_cols(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Checks that the window fits: positive sizes, stride ≥ 1, kernel within the padded input.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        if self.stride == 0 || self.kh == 0 || self.kw == 0 {
            return Err(Error::invalid(
                op,
                format!("kernel and stride must be ≥ 1 ({self:?})"),
            ));
        }
        let (Some(hp), Some(wp)) = (padded(self.h, self.pad), padded(self.w, self.pad)) else {
            return Err(overflows(op, self));
        };
        if self.kh > hp || self.kw > wp {
            return Err(Error::invalid(
                op,
                format!(
                    "kernel {}x{} larger than padded input {hp}x{wp} (pad {})",
                    self.kh, self.kw, self.pad
                ),
            ));
        }
        // Every size the geometry implies (input, output, columns) must be countable.
        let (n, c, oh, ow) = (self.n, self.c, self.out_h(), self.out_w());
        if checked_product(&[n, c, self.h, self.w]).is_none()
            || checked_product(&[n, oh, ow, c, self.kh, self.kw]).is_none()
        {
            return Err(overflows(op, self));
        }
        Ok(())
    }
}

/// `size + 2·pad`, or `None` when it overflows `isize` (window positions minus the padding
/// are signed).
fn padded(size: usize, pad: usize) -> Option<usize> {
    pad.checked_mul(2)?
        .checked_add(size)
        .filter(|&p| isize::try_from(p).is_ok())
}

/// A geometry whose sizes overflow `usize`.
fn overflows(op: &'static str, g: &impl std::fmt::Debug) -> Error {
    Error::invalid(
        op,
        format!("{g:?}: its sizes overflow; the geometry is too large"),
    )
}

/// Geometry of a 2-D max-pool over an NCHW input. Padded positions never win the max
/// (PyTorch's convention), so `pad` must be smaller than the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dGeom {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window height.
    pub ph: usize,
    /// Window width.
    pub pw: usize,
    /// Stride.
    pub stride: usize,
    /// Padding.
    pub pad: usize,
}

impl Pool2dGeom {
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.ph) / self.stride + 1
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.pw) / self.stride + 1
    }
    /// Checks window, stride and padding.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        if self.stride == 0 || self.ph == 0 || self.pw == 0 {
            return Err(Error::invalid(
                op,
                format!("window and stride must be ≥ 1 ({self:?})"),
            ));
        }
        if self.pad >= self.ph || self.pad >= self.pw {
            return Err(Error::invalid(
                op,
                format!(
                    "pad {} must be smaller than the window {}x{}",
                    self.pad, self.ph, self.pw
                ),
            ));
        }
        let (Some(hp), Some(wp)) = (padded(self.h, self.pad), padded(self.w, self.pad)) else {
            return Err(overflows(op, self));
        };
        if self.ph > hp || self.pw > wp {
            return Err(Error::invalid(
                op,
                format!(
                    "window {}x{} larger than padded input {hp}x{wp}",
                    self.ph, self.pw
                ),
            ));
        }
        let (n, c, oh, ow) = (self.n, self.c, self.out_h(), self.out_w());
        if checked_product(&[n, c, self.h, self.w]).is_none()
            || checked_product(&[n, c, oh, ow]).is_none()
        {
            return Err(overflows(op, self));
        }
        Ok(())
    }
}

/// A block copy between two tensors viewed as `[outer, dim, inner]`: rows
/// `src_off..src_off + len` of the source's middle dimension (size `src_dim`) go to rows
/// `dst_off..` of the destination's (size `dst_dim`); the rest of the destination is left as
/// it is. `narrow` and `concat` along any dimension, and their backwards, are this copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockCopy {
    /// Product of the dimensions before the copied one.
    pub outer: usize,
    /// Rows copied.
    pub len: usize,
    /// Product of the dimensions after the copied one.
    pub inner: usize,
    /// The copied dimension's size in the source.
    pub src_dim: usize,
    /// The copied dimension's size in the destination.
    pub dst_dim: usize,
    /// First source row.
    pub src_off: usize,
    /// First destination row.
    pub dst_off: usize,
}

impl BlockCopy {
    /// Elements copied.
    pub fn numel(&self) -> usize {
        self.outer * self.len * self.inner
    }
}

/// Random per-image augmentation (see `shaders/augment.wgsl`): image `i` of a batch draws its
/// parameters from the counter hash of `(seed, offset + i)`, uniformly in `±` each bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmentSpec {
    /// Largest rotation, degrees.
    pub rotate: f32,
    /// Largest relative scale change (0.1: 0.9×–1.1×).
    pub scale: f32,
    /// Largest shift, pixels.
    pub shift: f32,
    /// Mirror half of the images left to right (off for digits).
    pub flip: bool,
    /// Largest brightness change (added, images in [0, 1]).
    pub brightness: f32,
    /// Largest relative contrast change (around 0.5).
    pub contrast: f32,
    /// Elastic distortion strength α in pixels (Simard et al. 2003: 34 for MNIST; 0: off): the
    /// displacement field is uniform noise in [-1, 1) smoothed by a normalised Gaussian of
    /// width [`elastic_sigma`](Self::elastic_sigma), times α.
    pub elastic_alpha: f32,
    /// Width σ of the elastic field's Gaussian in pixels (Simard: 4; truncated at ⌈3σ⌉).
    pub elastic_sigma: f32,
    /// The epoch's seed.
    pub seed: u32,
    /// The batch's first position in the epoch.
    pub offset: u32,
}

impl AugmentSpec {
    /// The seven draws in [-1, 1) of image `k` (rotation, scale, shift x, shift y, flip,
    /// brightness, contrast), as the kernel computes them.
    pub fn draws(&self, k: u32) -> [f32; 7] {
        std::array::from_fn(|j| {
            2.0 * crate::rng::counter_uniform(self.seed, k.wrapping_mul(8).wrapping_add(j as u32))
                - 1.0
        })
    }

    /// No augmentation at all (every bound 0): a base for struct-update syntax.
    pub const NONE: AugmentSpec = AugmentSpec {
        rotate: 0.0,
        scale: 0.0,
        shift: 0.0,
        flip: false,
        brightness: 0.0,
        contrast: 0.0,
        elastic_alpha: 0.0,
        elastic_sigma: 0.0,
        seed: 0,
        offset: 0,
    };

    /// This recipe as the trainer applies it to the batch at `offset` of `epoch` in a run
    /// seeded `seed`: a fresh draw per epoch and image, the same on every device.
    pub fn for_batch(&self, seed: u64, epoch: usize, offset: usize) -> AugmentSpec {
        AugmentSpec {
            seed: crate::rng::hash_u32(seed as u32 ^ crate::rng::hash_u32(epoch as u32)),
            offset: offset as u32,
            ..*self
        }
    }

    /// Whether the elastic field is on.
    pub fn elastic(&self) -> bool {
        self.elastic_alpha > 0.0
    }

    /// Half-width of the elastic Gaussian in taps, ⌈3σ⌉.
    pub fn elastic_radius(&self) -> usize {
        (3.0 * self.elastic_sigma).ceil() as usize
    }

    /// Elastic noise in [-1, 1) of image `k` at padded index `idx` (direction-major over
    /// `[2, h + 2r, w + 2r]`), as the kernel draws it.
    pub fn elastic_noise(&self, k: u32, idx: u32) -> f32 {
        let key =
            crate::rng::hash_u32(k.wrapping_add(crate::rng::hash_u32(self.seed ^ 0x5bd1_e995)));
        2.0 * crate::rng::counter_uniform(key, idx) - 1.0
    }
}

/// Batch normalisation over a view `[n, c, s]`: channel `k`'s statistics run over its `n·s`
/// values (`s = H·W` for BatchNorm2d, 1 for the per-feature form).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnGeom {
    /// Examples.
    pub n: usize,
    /// Channels (features).
    pub c: usize,
    /// Values per example and channel.
    pub s: usize,
    /// Added to the variance.
    pub eps: f32,
}

/// A tensor viewed as `[outer, size, inner]` around the dim an index op works along, and
/// the number of indices (`index_select`: `[count]`; `gather`: `[outer, count, inner]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexGeom {
    /// Product of the dims before the indexed one.
    pub outer: usize,
    /// Size of the indexed dim in the indexed tensor.
    pub size: usize,
    /// Product of the dims after it.
    pub inner: usize,
    /// Size of the indexed dim in the result.
    pub count: usize,
}

/// `C[b] = op(A[b]) · op(B[b])` for `b < batch`: `A` and `B` advance by `stride_a`/`stride_b`
/// elements per batch (0 shares one matrix across the batch); `C` is `[batch, m, n]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BmmSpec {
    /// Number of products.
    pub batch: usize,
    /// Rows of `op(A)`.
    pub m: usize,
    /// Columns of `op(B)`.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Elements between consecutive `A` matrices.
    pub stride_a: usize,
    /// Elements between consecutive `B` matrices.
    pub stride_b: usize,
    /// `A` is stored `[k, m]`.
    pub trans_a: bool,
    /// `B` is stored `[n, k]`.
    pub trans_b: bool,
}

/// A dropout mask `m[i] = scale` if `u(seed, offset + i) ≥ ratio` else 0 (see `rng`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutSpec {
    /// Probability of dropping an element.
    pub ratio: f32,
    /// Value of a kept element: `1 / (1 - ratio)` (inverted dropout) or 1 (the book's form).
    pub scale: f32,
    /// Seed of the counter-based hash.
    pub seed: u32,
    /// Counter offset of element 0 (lets several masks share a seed).
    pub offset: u32,
}

/// The distribution of [`crate::ops::Backend::fill_random`]'s values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// Uniform in `[low, high)`: `low + (high − low)·u` with `u` the 24-bit draw of element i.
    Uniform {
        /// Lower bound (included).
        low: f32,
        /// Upper bound (excluded).
        high: f32,
    },
    /// Normal by Box–Muller on the draws `2i` and `2i + 1`: `mean + std·√(−2 ln u₁)·cos(2π u₂)`
    /// with `u₁ = 1 − u(2i)` in `(0, 1]`.
    Normal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        std: f32,
    },
}

/// Random values drawn where the tensor lives, from the counter hash of `(seed, offset + k)`
/// (see `rng::counter_uniform`): element i of a uniform fill uses draw `k = i`, of a normal
/// fill draws `2i` and `2i + 1`. No state, so a GPU draws them in one dispatch with nothing
/// uploaded; the CPU computes the same expressions (equal up to the last bits of `ln`/`cos`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomSpec {
    /// The distribution.
    pub dist: Distribution,
    /// Seed of the counter-based hash.
    pub seed: u32,
    /// Counter offset of draw 0 (lets several fills share a seed).
    pub offset: u32,
}

/// The optimizers of the book's `common/optimizer.py`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptimKind {
    /// `w -= lr g`
    Sgd,
    /// `v = m v - lr g; w += v`
    Momentum,
    /// `v = m v - lr g; w += m² v - (1 + m) lr g`
    Nesterov,
    /// `h += g²; w -= lr g / (√h + eps)`
    AdaGrad,
    /// `h = ρ h + (1 - ρ) g²; w -= lr g / (√h + eps)`
    RmsProp,
    /// `m += (1 - β1)(g - m); v += (1 - β2)(g² - v); w -= lr_t m / (√v + eps)`
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter; PyTorch's `AdamW`): the
    /// moments see the plain gradient and `w ← w (1 - lr λ) - lr_t m / (√v + eps)`.
    AdamW,
}

impl OptimKind {
    /// How many state tensors per parameter (velocity, squared-gradient sums, moments).
    pub fn state_count(self) -> usize {
        match self {
            OptimKind::Sgd => 0,
            OptimKind::Momentum | OptimKind::Nesterov | OptimKind::AdaGrad | OptimKind::RmsProp => {
                1
            }
            OptimKind::Adam | OptimKind::AdamW => 2,
        }
    }
}

/// The hyper-parameters of one update step. The gradient used is `g + weight_decay * w`
/// (the book's L2 term `0.5 λ ‖W‖²`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimStep {
    /// Which rule.
    pub kind: OptimKind,
    /// Learning rate.
    pub lr: f32,
    /// Momentum (Momentum, Nesterov), decay rate ρ (RMSprop) or β1 (Adam).
    pub beta1: f32,
    /// β2 (Adam).
    pub beta2: f32,
    /// The book's 1e-7 in the denominators.
    pub eps: f32,
    /// Weight decay λ (0 for biases): an L2 term in the gradient, or decoupled for AdamW.
    pub weight_decay: f32,
    /// Adam's bias-corrected rate `lr √(1 - β2^t) / (1 - β1^t)`, for `t` = [`OptimStep::t`].
    pub lr_t: f32,
    /// Updates requested so far, this one included (Adam's `t` when no step was skipped).
    pub t: u64,
}

impl OptimStep {
    /// Adam's rate when `skipped` earlier steps were skipped by a loss scaler: those steps
    /// changed nothing, so `t` counts only the updates taken (as PyTorch's `GradScaler`,
    /// which skips `optimizer.step()`). With none skipped it is [`OptimStep::lr_t`], the
    /// host's f64 value; otherwise computed in f32 as the kernels do, from `ln β` (see
    /// [`one_minus_exp`]).
    pub fn adam_lr_t(&self, skipped: u32) -> f32 {
        if skipped == 0 {
            return self.lr_t;
        }
        let t = self.t.saturating_sub(skipped as u64).max(1) as f32;
        let (ln1, ln2) = self.ln_betas();
        self.lr * one_minus_exp(t * ln2).sqrt() / one_minus_exp(t * ln1)
    }

    /// `(ln β1, ln β2)` computed in f64, as the kernels receive them.
    pub fn ln_betas(&self) -> (f32, f32) {
        (
            (self.beta1 as f64).ln() as f32,
            (self.beta2 as f64).ln() as f32,
        )
    }
}

/// `1 - eˣ` for `x ≤ 0` in f32 without the cancellation of `1 - exp(x)` near 0 (where
/// `1 - β2^t` lives for small `t`): a Taylor series of `-expm1(x)` for `x > -0.5`. The same
/// steps as `one_minus_exp` in shaders/optim.wgsl.
pub fn one_minus_exp(x: f32) -> f32 {
    if x > -0.5 {
        let (mut term, mut sum) = (x, x);
        for k in 2..12 {
            term *= x / k as f32;
            sum += term;
        }
        return -sum;
    }
    1.0 - x.exp()
}

/// The cell of a recurrent layer, and how its gates are laid out (PyTorch's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RnnCell {
    /// Elman RNN: `h = tanh(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)`.
    Tanh,
    /// GRU, gates `r, z, n`: `n = tanh(x_n + r ⊙ (h·W_hnᵀ + b_hn))`, `h = (1 - z) ⊙ n + z ⊙ h`.
    Gru,
    /// LSTM, gates `i, f, g, o`: `c = f ⊙ c + i ⊙ g`, `h = o ⊙ tanh(c)`.
    Lstm,
}

impl RnnCell {
    /// Gate blocks of the projections (`W_ih` is `[gates · hidden, input]`).
    pub fn gates(self) -> usize {
        match self {
            RnnCell::Tanh => 1,
            RnnCell::Gru => 3,
            RnnCell::Lstm => 4,
        }
    }

    /// Blocks of `hidden` values a time step saves for the backward: the new `h` (Tanh); the
    /// activated `r, z, n` and the recurrent `h·W_hnᵀ + b_hn` (GRU); the activated `i, f, g,
    /// o` (LSTM).
    pub fn saved(self) -> usize {
        match self {
            RnnCell::Tanh => 1,
            RnnCell::Gru | RnnCell::Lstm => 4,
        }
    }

    /// PyTorch's name of the layer (`RNN`, `GRU`, `LSTM`).
    pub fn name(self) -> &'static str {
        match self {
            RnnCell::Tanh => "RNN",
            RnnCell::Gru => "GRU",
            RnnCell::Lstm => "LSTM",
        }
    }
}

/// One time step `t` of a recurrent layer over `steps` steps of `batch × hidden` states: the
/// fused pointwise work of its cell (see `Backend::rnn_cell`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RnnStep {
    /// The cell.
    pub cell: RnnCell,
    /// Sequence length.
    pub steps: usize,
    /// Batch size.
    pub batch: usize,
    /// Hidden size.
    pub hidden: usize,
    /// This step (`0..steps`).
    pub t: usize,
}

impl RnnStep {
    /// Elements of one step's state (`batch · hidden`).
    pub fn state(&self) -> usize {
        self.batch * self.hidden
    }
}
