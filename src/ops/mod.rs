//! The backend trait: every primitive wgnn computes with, named once.
//!
//! `cpu::CpuBackend` (ndarray, the reference) and `gpu::GpuContext` (WGSL kernels) implement
//! it. Layers and optimizers never talk to a backend directly: they call the checked methods on
//! [`Tensor`](crate::Tensor) (see `src/tensor_ops/`), which validate shapes and dtypes, allocate
//! the output on the operands' device and forward here. Backends may therefore assume that
//! sizes and dtypes are consistent; they still return errors rather than panic.

use crate::dtype::DType;
use crate::error::Result;

pub mod pointwise;
mod spec;
pub use crate::tensor_ops::kernels::Kernels;
pub use pointwise::{PointwiseOp, Pw, Strided};
pub use spec::*;

/// The buffers of one forward time step of a recurrent cell, for [`Backend::rnn_cell`]
/// (`T` steps, `B` batch, `H` hidden, `G` the cell's [`RnnCell::gates`], `S` its
/// [`RnnCell::saved`]).
pub struct RnnCellFwd<'a, Buf> {
    /// `[T, B, G·H]`: the input projection of every step, `b_ih` included.
    pub xw: &'a Buf,
    /// `[B, G·H]`: this step's recurrent projection `h_{t-1}·W_hhᵀ`, without bias.
    pub hh: &'a Buf,
    /// `[G·H]`: `b_hh`.
    pub bias: &'a Buf,
    /// `[T, B, H]`: the state each step starts from (`h_0` at 0); step `t` reads row `t` and
    /// writes its new state to row `t + 1` when there is one.
    pub hprev: &'a mut Buf,
    /// `[T + 1, B, H]` (LSTM only): the cell states, `c_0` at 0; step `t` reads row `t` and
    /// writes row `t + 1`.
    pub cs: Option<&'a mut Buf>,
    /// `[T, B, S·H]`: what the backward needs, written at row `t`.
    pub act: &'a mut Buf,
    /// `[T, B, H]` (`[T + 1, B, H]` for the LSTM): the layer's output; step `t` writes its
    /// state to row `t`, and the LSTM's last step its cell state to row `T`.
    pub out: &'a mut Buf,
    /// `[B, H]`: the new state again, the next step's GEMM input.
    pub h: &'a mut Buf,
}

/// The buffers of one backward time step of a recurrent cell, for [`Backend::rnn_cell_bwd`]
/// (shapes as in [`RnnCellFwd`]).
pub struct RnnCellBwd<'a, Buf> {
    /// The forward's saved values.
    pub act: &'a Buf,
    /// The forward's `hprev` (the GRU reads `h_{t-1}`).
    pub hprev: &'a Buf,
    /// The forward's cell states (LSTM only).
    pub cs: Option<&'a Buf>,
    /// The gradient of the layer's output (row `t`; for the LSTM's last step also row `T`,
    /// the final cell state's).
    pub gout: &'a Buf,
    /// `[B, H]`: in, the gradient reaching `h_t` through step `t + 1` (ignored at the last
    /// step); out, for the GRU, the part of `h_{t-1}`'s that bypasses `W_hh` (`dh_t ⊙ z`, to
    /// which the caller adds `dhh·W_hh`); left as it is for the others (the caller's GEMM
    /// overwrites it).
    pub dh: &'a mut Buf,
    /// `[B, H]` (LSTM only): in, the gradient reaching `c_t` through step `t + 1` (ignored at
    /// the last step); out, `c_{t-1}`'s.
    pub dc: Option<&'a mut Buf>,
    /// `[T, B, G·H]`: the gradient of the gate pre-activations on the input side, row `t`.
    pub dxw: &'a mut Buf,
    /// `[B, G·H]`: the gradient of `hh` (the GEMM input of `h_{t-1}`'s gradient).
    pub dhh: &'a mut Buf,
    /// `[T, B, G·H]` (GRU only, where it differs from `dxw`): `dhh` of every step, row `t`.
    pub dhh_all: Option<&'a mut Buf>,
}

/// The buffers of a whole recurrent layer's forward, for [`Backend::rnn_layer`] (shapes as in
/// [`RnnCellFwd`]).
pub struct RnnLayerFwd<'a, Buf> {
    /// `[T, B, G·H]`: the input projection of every step, `b_ih` included.
    pub xw: &'a Buf,
    /// `[G·H, H]`: `W_hh`.
    pub w_hh: &'a Buf,
    /// `[G·H]`: `b_hh`.
    pub bias: &'a Buf,
    /// `[B, H]`: the initial state.
    pub h0: &'a Buf,
    /// `[T, B, H]`: as [`RnnCellFwd::hprev`], row 0 already holding `h_0`.
    pub hprev: &'a mut Buf,
    /// `[T + 1, B, H]` (LSTM only): as [`RnnCellFwd::cs`], row 0 already holding `c_0`.
    pub cs: Option<&'a mut Buf>,
    /// As [`RnnCellFwd::act`].
    pub act: &'a mut Buf,
    /// As [`RnnCellFwd::out`].
    pub out: &'a mut Buf,
}

/// The buffers of a whole recurrent layer's backward, for [`Backend::rnn_layer_bwd`] (shapes
/// as in [`RnnCellFwd`]).
pub struct RnnLayerBwd<'a, Buf> {
    /// The forward's saved values.
    pub act: &'a Buf,
    /// The forward's `hprev`.
    pub hprev: &'a Buf,
    /// The forward's cell states (LSTM only).
    pub cs: Option<&'a Buf>,
    /// The gradient of the layer's output.
    pub gout: &'a Buf,
    /// `[G·H, H]`: `W_hh`.
    pub w_hh: &'a Buf,
    /// `[B, H]`, out: the gradient of `h_0`.
    pub dh: &'a mut Buf,
    /// `[B, H]` (LSTM only), out: the gradient of `c_0`.
    pub dc: Option<&'a mut Buf>,
    /// `[T, B, G·H]`, out: as [`RnnCellBwd::dxw`], every row.
    pub dxw: &'a mut Buf,
    /// `[T, B, G·H]` (GRU only), out: as [`RnnCellBwd::dhh_all`], every row.
    pub dhh_all: Option<&'a mut Buf>,
}

/// The primitives, implemented once per backend. Output buffers are allocated by the caller
/// with [`Backend::alloc`] and fully overwritten unless the doc says otherwise.
#[allow(missing_docs)] // each method is documented by the tensor method that calls it
pub trait Backend {
    /// The backend's buffer type.
    type Buf;

    /// A buffer for `numel` elements of `dtype`; contents unspecified. `what` names it in errors.
    fn alloc(&self, numel: usize, dtype: DType, what: &str) -> Result<Self::Buf>;
    fn matmul(&self, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf, s: &MatmulSpec)
    -> Result<()>;
    /// `y += alpha * x` in place.
    fn axpy(&self, alpha: f32, x: &Self::Buf, y: &mut Self::Buf, n: usize) -> Result<()>;
    fn fill(&self, out: &mut Self::Buf, value: f32, n: usize) -> Result<()>;
    /// `[rows, cols] → [cols]`, times `alpha`.
    fn sum_rows(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()>;
    /// `[rows, cols] → [rows]`, times `alpha`.
    fn sum_cols(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        rows: usize,
        cols: usize,
        alpha: f32,
    ) -> Result<()>;
    fn softmax(&self, x: &Self::Buf, out: &mut Self::Buf, rows: usize, cols: usize) -> Result<()>;
    fn softmax_bwd(
        &self,
        y: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// Softmax probabilities and per-row loss `logsumexp(x) - x[label]`.
    fn softmax_ce(
        &self,
        logits: &Self::Buf,
        labels: &Self::Buf,
        probs: &mut Self::Buf,
        row_loss: &mut Self::Buf,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// `dx = (probs - onehot(labels)) * scale`, times `dout[0]` when given (the upstream
    /// gradient of the loss, read on the device: the backward of the mean loss in one pass).
    #[allow(clippy::too_many_arguments)]
    fn softmax_ce_bwd(
        &self,
        probs: &Self::Buf,
        labels: &Self::Buf,
        dout: Option<&Self::Buf>,
        dx: &mut Self::Buf,
        rows: usize,
        cols: usize,
        scale: f32,
    ) -> Result<()>;
    fn im2col(&self, x: &Self::Buf, col: &mut Self::Buf, g: &Conv2dGeom) -> Result<()>;
    fn col2im(&self, col: &Self::Buf, x: &mut Self::Buf, g: &Conv2dGeom) -> Result<()>;
    fn max_pool(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        idx: &mut Self::Buf,
        g: &Pool2dGeom,
    ) -> Result<()>;
    fn max_pool_bwd(
        &self,
        dy: &Self::Buf,
        idx: &Self::Buf,
        dx: &mut Self::Buf,
        g: &Pool2dGeom,
    ) -> Result<()>;
    fn argmax_rows(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// Writes (or, with `accumulate`, adds to) `out[0]` the number of rows whose argmax is
    /// the label.
    fn count_correct(
        &self,
        x: &Self::Buf,
        labels: &Self::Buf,
        out: &mut Self::Buf,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) -> Result<()>;
    fn dropout_mask(&self, out: &mut Self::Buf, n: usize, spec: &DropoutSpec) -> Result<()>;
    /// `n` f32 random values of `spec` (counter-based: no state, nothing uploaded).
    fn fill_random(&self, out: &mut Self::Buf, n: usize, spec: &RandomSpec) -> Result<()>;
    /// One categorical draw per row of the f32 logits `x` `[rows, cols]` into the u32 `out`:
    /// row r picks the first k whose running sum of `exp(x − max)` exceeds
    /// `counter_uniform(seed, offset + r)` times the row's total (the last k if none does).
    #[allow(clippy::too_many_arguments)]
    fn sample_categorical(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        rows: usize,
        cols: usize,
        seed: u32,
        offset: u32,
    ) -> Result<()>;
    /// One optimizer update of `w` from gradient `g` with state `s1`, `s2` (see [`OptimStep`]),
    /// guarded by a loss-scaler state `guard` (u32 `[scale bits, flag, ..]`): the gradient is
    /// divided by the scale and nothing changes while the flag is set.
    #[allow(clippy::too_many_arguments)]
    fn optim_update(
        &self,
        s: &OptimStep,
        w: &mut Self::Buf,
        g: &Self::Buf,
        s1: Option<&mut Self::Buf>,
        s2: Option<&mut Self::Buf>,
        guard: &Self::Buf,
        n: usize,
    ) -> Result<()>;
    /// Writes a fresh loss-scaler state with scale `init_scale`.
    fn scaler_init(&self, state: &mut Self::Buf, init_scale: f32) -> Result<()>;
    /// `x *= scale` of a loss-scaler state, in place.
    fn scaler_scale(&self, x: &mut Self::Buf, state: &Self::Buf, n: usize) -> Result<()>;
    /// Sets the scaler's flag when any element of `x` is inf or NaN.
    fn scaler_check(&self, x: &Self::Buf, state: &mut Self::Buf, n: usize) -> Result<()>;
    /// The end-of-step scale update (halve on overflow, double after `growth_interval` clean
    /// steps) that also clears the flag.
    fn scaler_update(&self, state: &mut Self::Buf, growth_interval: u32) -> Result<()>;
    /// Gathers rows of bytes: row `perm[offset + r]` of a byte matrix with `row_len` columns,
    /// stored packed little-endian four to a u32 (`src`), for r in `0..count`. An f32 `out`
    /// gets `byte * scale`, a u32 `out` the byte itself.
    #[allow(clippy::too_many_arguments)]
    fn gather_bytes(
        &self,
        src: &Self::Buf,
        perm: &Self::Buf,
        offset: usize,
        count: usize,
        row_len: usize,
        scale: f32,
        out: &mut Self::Buf,
    ) -> Result<()>;
    /// Embedding lookup: `out[r, :] = table[idx[r], :]` for `r < count`, rows of `row_len`.
    fn gather_rows(
        &self,
        table: &Self::Buf,
        idx: &Self::Buf,
        out: &mut Self::Buf,
        count: usize,
        row_len: usize,
    ) -> Result<()>;
    /// `out[r, c] = (idx[r] == c)` for `r < count`, `c < classes`.
    fn one_hot(
        &self,
        idx: &Self::Buf,
        out: &mut Self::Buf,
        count: usize,
        classes: usize,
    ) -> Result<()>;
    /// Convolution forward, NCHW: `out [N, fout, OH, OW] = W [fout, C·KH·KW] ⊛ x + b`.
    fn conv2d(
        &self,
        x: &Self::Buf,
        w: &Self::Buf,
        b: &Self::Buf,
        out: &mut Self::Buf,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()>;
    /// Convolution backward: `dx`, `dw`, `db` from the input `x`, weights and `dout`; `dx` is
    /// skipped when `None` (an input nothing differentiates, such as the images).
    #[allow(clippy::too_many_arguments)]
    fn conv2d_bwd(
        &self,
        x: &Self::Buf,
        w: &Self::Buf,
        dout: &Self::Buf,
        dx: Option<&mut Self::Buf>,
        dw: &mut Self::Buf,
        db: &mut Self::Buf,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()>;
    /// A convolution's input gradient alone (`dx` `[n, c, h, w]` from `dout` and `w`): the
    /// adjoint of [`Backend::conv2d`], which is a transposed convolution's forward.
    fn conv2d_input_grad(
        &self,
        w: &Self::Buf,
        dout: &Self::Buf,
        dx: &mut Self::Buf,
        g: &Conv2dGeom,
        fout: usize,
    ) -> Result<()>;
    /// `out = x * mask` with the mask of [`Backend::dropout_mask`] for `spec`, without storing
    /// the mask where the backend can regenerate it in the same pass (the default stores it).
    fn dropout_apply(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        n: usize,
        spec: &DropoutSpec,
        dtype: DType,
    ) -> Result<()> {
        let mut mask = self.alloc(n, dtype, "dropout mask")?;
        self.dropout_mask(&mut mask, n, spec)?;
        self.pointwise_flat(Pw::Mul, 0.0, &[x, &mask], out, n)
    }
    /// [`Backend::conv2d`] then ReLU (`out = max(conv, 0)`), in one pass where the backend
    /// fuses them; the default composes the two.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_relu(
        &self,
        x: &Self::Buf,
        w: &Self::Buf,
        b: &Self::Buf,
        out: &mut Self::Buf,
        g: &Conv2dGeom,
        fout: usize,
        dtype: DType,
    ) -> Result<()> {
        let n = g.n * fout * g.out_h() * g.out_w();
        let mut lin = self.alloc(n, dtype, "conv2d_relu")?;
        self.conv2d(x, w, b, &mut lin, g, fout)?;
        self.pointwise_flat(Pw::Relu, 0.0, &[&lin], out, n)
    }
    /// Backward of [`Backend::conv2d_relu`]: `dout` masked by `y > 0` (`y` its output), then
    /// [`Backend::conv2d_bwd`]; the default composes the two.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_relu_bwd(
        &self,
        x: &Self::Buf,
        w: &Self::Buf,
        y: &Self::Buf,
        dout: &Self::Buf,
        dx: Option<&mut Self::Buf>,
        dw: &mut Self::Buf,
        db: &mut Self::Buf,
        g: &Conv2dGeom,
        fout: usize,
        dtype: DType,
    ) -> Result<()> {
        let n = g.n * fout * g.out_h() * g.out_w();
        let mut d = self.alloc(n, dtype, "conv2d_relu backward")?;
        self.pointwise_flat(Pw::ReluGrad, 0.0, &[dout, y, y], &mut d, n)?;
        self.conv2d_bwd(x, w, &d, dx, dw, db, g, fout)
    }
    /// A linear layer's forward: `c [m, n] = a · b + bias` (bias `[n]` per column), then ReLU
    /// when `relu`. `s` must have alpha 1 and beta 0. The default composes matmul, broadcast
    /// add and ReLU; a GPU fuses them into the GEMM's epilogue.
    #[allow(clippy::too_many_arguments)]
    fn matmul_bias(
        &self,
        a: &Self::Buf,
        b: &Self::Buf,
        bias: &Self::Buf,
        c: &mut Self::Buf,
        s: &MatmulSpec,
        relu: bool,
        dtype: DType,
    ) -> Result<()> {
        let mn = s.m * s.n;
        let mut prod = self.alloc(mn, dtype, "linear")?;
        self.matmul(a, b, &mut prod, s)?;
        if !relu {
            return self.pointwise_rows(Pw::Add, &prod, bias, c, s.m, s.n);
        }
        let mut biased = self.alloc(mn, dtype, "linear")?;
        self.pointwise_rows(Pw::Add, &prod, bias, &mut biased, s.m, s.n)?;
        self.pointwise_flat(Pw::Relu, 0.0, &[&biased], c, mn)
    }
    /// Batch statistics: `saved = [mean | 1/√(var + eps)]` (f32 `[2c]`) and `var` (f32 `[c]`,
    /// biased) of f32 `x` `[n, c, s]`.
    fn bn_stats(
        &self,
        x: &Self::Buf,
        saved: &mut Self::Buf,
        var: &mut Self::Buf,
        g: &BnGeom,
    ) -> Result<()>;
    /// `y = (x - mean)·inv_std·gamma + beta` with `saved` from [`Backend::bn_stats`].
    #[allow(clippy::too_many_arguments)]
    fn bn_apply(
        &self,
        x: &Self::Buf,
        saved: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        y: &mut Self::Buf,
        g: &BnGeom,
    ) -> Result<()>;
    /// `dgamma = Σ dy·xhat`, `dbeta = Σ dy` per channel (f32 `[c]` each).
    #[allow(clippy::too_many_arguments)]
    fn bn_bwd_reduce(
        &self,
        x: &Self::Buf,
        dy: &Self::Buf,
        saved: &Self::Buf,
        dgamma: &mut Self::Buf,
        dbeta: &mut Self::Buf,
        g: &BnGeom,
    ) -> Result<()>;
    /// `dx = gamma·inv_std/m·(m·dy - dbeta - xhat·dgamma)`, `m = n·s`.
    #[allow(clippy::too_many_arguments)]
    fn bn_bwd_dx(
        &self,
        x: &Self::Buf,
        dy: &Self::Buf,
        saved: &Self::Buf,
        gamma: &Self::Buf,
        dgamma: &Self::Buf,
        dbeta: &Self::Buf,
        dx: &mut Self::Buf,
        g: &BnGeom,
    ) -> Result<()>;
    /// Bilinear resize of `planes` images `[h, w]` to `[oh, ow]` (PyTorch's
    /// `interpolate(mode="bilinear", align_corners=False)`, no antialiasing).
    #[allow(clippy::too_many_arguments)]
    fn resize_bilinear(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
    ) -> Result<()>;
    /// Augments a batch of `n` images `[c, h, w]` with [`AugmentSpec`] into `out`.
    #[allow(clippy::too_many_arguments)]
    fn augment(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        spec: &AugmentSpec,
    ) -> Result<()>;
    /// The block copy of [`BlockCopy`] from `src` into `dst` (in place).
    fn copy_block(&self, src: &Self::Buf, dst: &mut Self::Buf, b: &BlockCopy) -> Result<()>;
    /// [`Backend::pointwise`] over `n` contiguous elements of each input.
    fn pointwise_flat(
        &self,
        f: Pw,
        a: f32,
        ins: &[&Self::Buf],
        out: &mut Self::Buf,
        n: usize,
    ) -> Result<()> {
        let walk = Strided::flat(n, ins.len());
        self.pointwise(&PointwiseOp::new(f, a, 0.0), ins, out, &walk)
    }
    /// [`Backend::pointwise`] of `x [m, n]` and a row `[n]` broadcast down it.
    fn pointwise_rows(
        &self,
        f: Pw,
        x: &Self::Buf,
        row: &Self::Buf,
        out: &mut Self::Buf,
        m: usize,
        n: usize,
    ) -> Result<()> {
        let walk = Strided::new(f.name(), &[m, n], &[vec![n, 1], vec![0, 1]])?;
        self.pointwise(&PointwiseOp::new(f, 0.0, 0.0), &[x, row], out, &walk)
    }
    /// `out = op(ins)` elementwise over the strided walk `walk` (see [`pointwise`]).
    fn pointwise(
        &self,
        op: &PointwiseOp,
        ins: &[&Self::Buf],
        out: &mut Self::Buf,
        walk: &Strided,
    ) -> Result<()>;
    /// Per row of `[rows, cols]`: the max (or with `min`, the min) into `values` and the first
    /// index where it occurs into `indices` (u32).
    fn extreme_rows(
        &self,
        x: &Self::Buf,
        values: &mut Self::Buf,
        indices: &mut Self::Buf,
        rows: usize,
        cols: usize,
        min: bool,
    ) -> Result<()>;
    /// `out[o, k, i] = x[o, idx[k], i]`.
    fn index_select(
        &self,
        x: &Self::Buf,
        idx: &Self::Buf,
        out: &mut Self::Buf,
        g: &IndexGeom,
    ) -> Result<()>;
    /// The backward of [`Backend::index_select`]: `dx[o, d, i] = Σ_{k: idx[k]=d} dy[o, k, i]`.
    fn index_select_bwd(
        &self,
        dy: &Self::Buf,
        idx: &Self::Buf,
        dx: &mut Self::Buf,
        g: &IndexGeom,
    ) -> Result<()>;
    /// `out[o, j, i] = x[o, idx[o, j, i], i]`.
    fn gather(
        &self,
        x: &Self::Buf,
        idx: &Self::Buf,
        out: &mut Self::Buf,
        g: &IndexGeom,
    ) -> Result<()>;
    /// The backward of [`Backend::gather`] (a scatter-add).
    fn gather_bwd(
        &self,
        dy: &Self::Buf,
        idx: &Self::Buf,
        dx: &mut Self::Buf,
        g: &IndexGeom,
    ) -> Result<()>;
    /// The batched product of [`BmmSpec`].
    fn bmm(&self, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf, s: &BmmSpec) -> Result<()>;
    /// The pointwise work of time step `s.t` of a recurrent layer, in one kernel: the gates
    /// from the two projections and `b_hh`, the new state (and the LSTM's cell state), and
    /// what the backward needs (see [`RnnCellFwd`]).
    fn rnn_cell(&self, s: &RnnStep, bufs: RnnCellFwd<'_, Self::Buf>) -> Result<()>;
    /// The backward of time step `s.t`, in one kernel (see [`RnnCellBwd`]).
    fn rnn_cell_bwd(&self, s: &RnnStep, bufs: RnnCellBwd<'_, Self::Buf>) -> Result<()>;
    /// A recurrent layer's forward over all `s.steps` steps (`s.t` unused; see
    /// [`RnnLayerFwd`]): per step the recurrent projection `hh = h_{t-1}·W_hhᵀ`, then
    /// [`Backend::rnn_cell`]. The default runs [`Backend::matmul`] per step against `W_hhᵀ`
    /// transposed once; the CPU packs `W_hhᵀ` for its GEMM once per sequence instead.
    fn rnn_layer(&self, s: &RnnStep, o: RnnLayerFwd<'_, Self::Buf>) -> Result<()> {
        const OP: &str = "rnn_layer";
        let (dt, gh) = (DType::F32, s.cell.gates() * s.hidden);
        let mut h = self.alloc(s.state(), dt, OP)?;
        let mut hh = self.alloc(s.batch * gh, dt, OP)?;
        // W_hhᵀ once, so that each step's GEMM reads B row by row.
        let mut wt = self.alloc(gh * s.hidden, dt, OP)?;
        self.transpose(o.w_hh, &mut wt, 1, gh, s.hidden)?;
        let spec = MatmulSpec {
            m: s.batch,
            n: gh,
            k: s.hidden,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        };
        let mut cs = o.cs;
        for t in 0..s.steps {
            self.matmul(if t == 0 { o.h0 } else { &h }, &wt, &mut hh, &spec)?;
            let bufs = RnnCellFwd {
                xw: o.xw,
                hh: &hh,
                bias: o.bias,
                hprev: &mut *o.hprev,
                cs: cs.as_deref_mut(),
                act: &mut *o.act,
                out: &mut *o.out,
                h: &mut h,
            };
            self.rnn_cell(&RnnStep { t, ..*s }, bufs)?;
        }
        Ok(())
    }
    /// The backward of [`Backend::rnn_layer`] through every step, last to first (see
    /// [`RnnLayerBwd`]): per step [`Backend::rnn_cell_bwd`], then `h_{t-1}`'s gradient
    /// `dhh·W_hh` (added to the GRU's bypass part). The default runs [`Backend::matmul`] per
    /// step; the CPU packs `W_hh` once per sequence instead.
    fn rnn_layer_bwd(&self, s: &RnnStep, o: RnnLayerBwd<'_, Self::Buf>) -> Result<()> {
        const OP: &str = "rnn_layer_backward";
        let gh = s.cell.gates() * s.hidden;
        let mut dhh = self.alloc(s.batch * gh, DType::F32, OP)?;
        let spec = MatmulSpec {
            m: s.batch,
            n: s.hidden,
            k: gh,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: if s.cell == RnnCell::Gru { 1.0 } else { 0.0 },
        };
        let (mut dc, mut dhh_all) = (o.dc, o.dhh_all);
        for t in (0..s.steps).rev() {
            let bufs = RnnCellBwd {
                act: o.act,
                hprev: o.hprev,
                cs: o.cs,
                gout: o.gout,
                dh: &mut *o.dh,
                dc: dc.as_deref_mut(),
                dxw: &mut *o.dxw,
                dhh: &mut dhh,
                dhh_all: dhh_all.as_deref_mut(),
            };
            self.rnn_cell_bwd(&RnnStep { t, ..*s }, bufs)?;
            self.matmul(&dhh, o.w_hh, &mut *o.dh, &spec)?;
        }
        Ok(())
    }
    /// `[batch, rows, cols] → [batch, cols, rows]`.
    fn transpose(
        &self,
        x: &Self::Buf,
        out: &mut Self::Buf,
        batch: usize,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
}
