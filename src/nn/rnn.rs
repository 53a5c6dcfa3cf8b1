//! Recurrent layers as PyTorch's `nn.RNN`, `nn.GRU` and `nn.LSTM`: multi-layer, dropout
//! between layers, input `[T, B, F]` (or `[B, T, F]` with `batch_first`), an initial state in
//! and the final state out. Parameters are named and laid out as PyTorch's
//! (`weight_ih_l0` `[G·H, F]`, `weight_hh_l0` `[G·H, H]`, `bias_ih_l0`, `bias_hh_l0`, gates in
//! PyTorch's order: GRU `r, z, n`, LSTM `i, f, g, o`), so a PyTorch state dict loads as it is.
//!
//! Each layer is one GEMM for the input projection of the whole sequence and one autograd node
//! for the recurrence ([`Tensor::rnn_layer`]: per time step a GEMM and one fused cell kernel,
//! forward and backward).

use super::{Dropout, Module, Param, Part, Parts};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::RnnCell;
use crate::tensor::Tensor;

/// The options of a recurrent layer (PyTorch's constructor arguments beyond the sizes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RnnOptions {
    /// Stacked layers (PyTorch's `num_layers`), ≥ 1.
    pub num_layers: usize,
    /// Dropout probability on the outputs of every layer but the last, in training.
    pub dropout: f32,
    /// Input and output are `[B, T, F]` instead of `[T, B, F]`.
    pub batch_first: bool,
}

impl Default for RnnOptions {
    fn default() -> Self {
        RnnOptions {
            num_layers: 1,
            dropout: 0.0,
            batch_first: false,
        }
    }
}

impl RnnOptions {
    /// `num_layers` stacked layers.
    pub fn layers(self, num_layers: usize) -> Self {
        RnnOptions { num_layers, ..self }
    }
    /// Dropout between layers.
    pub fn dropout(self, dropout: f32) -> Self {
        RnnOptions { dropout, ..self }
    }
    /// `[B, T, F]` input and output.
    pub fn batch_first(self, batch_first: bool) -> Self {
        RnnOptions {
            batch_first,
            ..self
        }
    }
}

/// The state between calls: `h` `[num_layers, B, H]` and, for the LSTM, `c` of the same shape
/// (PyTorch's `h_n` and `(h_n, c_n)`).
#[derive(Clone, Debug)]
pub struct RnnState {
    /// The hidden state of every layer.
    pub h: Tensor,
    /// The LSTM's cell state of every layer (`None` for RNN and GRU).
    pub c: Option<Tensor>,
}

impl RnnState {
    /// The same state cut from the autograd graph (truncated backpropagation through time
    /// between consecutive batches).
    pub fn detach(&self) -> RnnState {
        RnnState {
            h: self.h.detach(),
            c: self.c.as_ref().map(Tensor::detach),
        }
    }
}

/// What the first layer reads.
enum FirstInput {
    /// The input sequence `[T, B, F]`.
    Sequence(Tensor),
    /// Its input projection `[T, B, G·H]`, `b_ih` included.
    Projection(Tensor),
}

/// One layer's parameters.
struct LayerParams {
    w_ih: Param,
    w_hh: Param,
    b_ih: Param,
    b_hh: Param,
}

/// A multi-layer recurrent network of one cell kind: what [`Rnn`], [`Gru`] and [`Lstm`] wrap
/// (they dereference to it: `forward_with_state`, `zero_state`, …).
pub struct Recurrent {
    cell: RnnCell,
    input_size: usize,
    hidden_size: usize,
    options: RnnOptions,
    layers: Vec<LayerParams>,
    dropouts: Vec<Dropout>,
}

impl Recurrent {
    /// A recurrent network of `cell`s with `options`; every weight and bias drawn from
    /// `U(-1/√H, 1/√H)` (PyTorch's initialisation) with seeds from the global generator
    /// ([`crate::manual_seed`]).
    pub fn new(
        cell: RnnCell,
        input_size: usize,
        hidden_size: usize,
        options: RnnOptions,
        device: &Device,
    ) -> Result<Recurrent> {
        let name = cell.name();
        super::check_sizes(
            name,
            &[
                ("input_size", input_size),
                ("hidden_size", hidden_size),
                ("num_layers", options.num_layers),
            ],
        )?;
        if !(0.0..1.0).contains(&options.dropout) {
            return Err(Error::invalid(
                name,
                format!("dropout must be in [0, 1), got {}", options.dropout),
            ));
        }
        let gh = cell.gates().checked_mul(hidden_size).ok_or_else(|| {
            Error::invalid(
                name,
                format!(
                    "hidden_size {hidden_size}: its {} gates overflow usize",
                    cell.gates()
                ),
            )
        })?;
        let bound = 1.0 / (hidden_size as f32).sqrt();
        let draw = |dims: &[usize], decay: bool| -> Result<Param> {
            let t = Tensor::rand_uniform(
                dims.to_vec(),
                -bound,
                bound,
                crate::rng::next_seed(),
                device,
            )?;
            Param::new(t, decay)
        };
        // The layer count is the caller's: reserved fallibly, so that one no host could hold
        // is an error here rather than an abort in the allocator.
        let mut layers = Vec::new();
        layers.try_reserve_exact(options.num_layers).map_err(|e| {
            Error::invalid(
                name,
                format!(
                    "num_layers {}: cannot hold that many layers ({e})",
                    options.num_layers
                ),
            )
        })?;
        for l in 0..options.num_layers {
            let fan_in = if l == 0 { input_size } else { hidden_size };
            layers.push(LayerParams {
                w_ih: draw(&[gh, fan_in], true)?,
                w_hh: draw(&[gh, hidden_size], true)?,
                b_ih: draw(&[gh], false)?,
                b_hh: draw(&[gh], false)?,
            });
        }
        let dropouts = if options.dropout > 0.0 {
            (1..options.num_layers)
                .map(|_| Dropout::new(options.dropout))
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Recurrent {
            cell,
            input_size,
            hidden_size,
            options,
            layers,
            dropouts,
        })
    }

    /// The cell kind.
    pub fn cell(&self) -> RnnCell {
        self.cell
    }

    /// Hidden size `H`.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Features of the input at each step (PyTorch's `input_size`).
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Stacked layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// A zero state for a batch of `batch` sequences on `device` (PyTorch's default when no
    /// state is given).
    pub fn zero_state(&self, batch: usize, device: &Device) -> Result<RnnState> {
        let dims = [self.layers.len(), batch, self.hidden_size];
        let zeros = || Tensor::zeros(dims, crate::dtype::DType::F32, device);
        Ok(RnnState {
            h: zeros()?,
            c: match self.cell {
                RnnCell::Lstm => Some(zeros()?),
                _ => None,
            },
        })
    }

    /// The outputs of the last layer at every step (`[T, B, H]`, or `[B, T, H]` with
    /// `batch_first`) and the final state, from `state` (zeros when `None`), as PyTorch's
    /// `output, h_n = rnn(x, h_0)` (`output, (h_n, c_n)` for the LSTM).
    pub fn forward_with_state(
        &mut self,
        x: &Tensor,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)> {
        let name = self.cell.name();
        let &[d0, d1, features] = x.dims() else {
            return Err(Error::invalid(
                name,
                format!(
                    "input {}: expected {} (rank 3)",
                    x.shape(),
                    if self.options.batch_first {
                        "[batch, steps, features]"
                    } else {
                        "[steps, batch, features]"
                    }
                ),
            ));
        };
        if features != self.input_size {
            return Err(Error::invalid(
                name,
                format!(
                    "input {} has {features} features; the layer takes {}",
                    x.shape(),
                    self.input_size
                ),
            ));
        }
        let (steps, batch) = if self.options.batch_first {
            (d1, d0)
        } else {
            (d0, d1)
        };
        let seq = if self.options.batch_first {
            x.transpose(0, 1)?
        } else {
            x.clone()
        };
        self.run(FirstInput::Sequence(seq), steps, batch, state)
    }

    /// The outputs and final state for token ids (u32 `[T, B]`, or `[B, T]` with
    /// `batch_first`) of a vocabulary of `input_size` tokens: the same as
    /// [`Recurrent::forward_with_state`] on their one-hot vectors (d2l's character models'
    /// input), without building the one-hot matrix or multiplying by it. The first layer's
    /// input projection of a token is a row of `W_ihᵀ + b_ih`, so the sequence's projection
    /// is one row lookup, and its gradient one scatter-add into the vocabulary's rows.
    pub fn forward_tokens(
        &mut self,
        ids: &Tensor,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)> {
        let name = self.cell.name();
        let &[d0, d1] = ids.dims() else {
            return Err(Error::invalid(
                name,
                format!(
                    "token ids {}: expected {} (rank 2)",
                    ids.shape(),
                    if self.options.batch_first {
                        "[batch, steps]"
                    } else {
                        "[steps, batch]"
                    }
                ),
            ));
        };
        if ids.dtype() != crate::dtype::DType::U32 {
            return Err(Error::invalid(
                name,
                format!("token ids are {}, expected u32", ids.dtype()),
            ));
        }
        let (steps, batch) = if self.options.batch_first {
            (d1, d0)
        } else {
            (d0, d1)
        };
        let first = &self.layers[0];
        let table = first.w_ih.value().t()?.add(first.b_ih.value())?;
        let gh = self.cell.gates() * self.hidden_size;
        let rows = table.index_select(0, &ids.reshape([steps * batch])?)?;
        let xw = match self.options.batch_first {
            true => rows.reshape([batch, steps, gh])?.transpose(0, 1)?,
            false => rows.reshape([steps, batch, gh])?,
        };
        self.run(FirstInput::Projection(xw), steps, batch, state)
    }

    /// The layers from `input` (`steps` × `batch`), from `state` (zeros when `None`).
    fn run(
        &mut self,
        input: FirstInput,
        steps: usize,
        batch: usize,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)> {
        let (mut seq, mut first) = match input {
            FirstInput::Sequence(seq) => (seq, None),
            // The first layer reads only its projection; `seq` is each layer's output after.
            FirstInput::Projection(xw) => (xw.clone(), Some(xw)),
        };
        let zero;
        let state = match state {
            Some(s) => s,
            None => {
                zero = self.zero_state(batch, &seq.device())?;
                &zero
            }
        };
        self.check_state(state, batch)?;
        let (lstm, h) = (self.cell == RnnCell::Lstm, self.hidden_size);
        let (mut hn, mut cn) = (Vec::new(), Vec::new());
        for (l, p) in self.layers.iter().enumerate() {
            if l > 0
                && let Some(drop) = self.dropouts.get_mut(l - 1)
            {
                seq = drop.forward(&seq)?;
            }
            let xw = match first.take() {
                Some(xw) => xw,
                None => {
                    let fan_in = seq.dims()[2];
                    seq.reshape([steps * batch, fan_in])?
                        .matmul_t(p.w_ih.value(), false, true)?
                        .add(p.b_ih.value())?
                        .reshape([steps, batch, self.cell.gates() * h])?
                }
            };
            let h0 = state.h.narrow(0, l, 1)?.reshape([batch, h])?;
            let c0 = match &state.c {
                Some(c) => Some(c.narrow(0, l, 1)?.reshape([batch, h])?),
                None => None,
            };
            let packed = Tensor::rnn_layer(
                self.cell,
                &xw,
                p.w_hh.value(),
                p.b_hh.value(),
                &h0,
                c0.as_ref(),
            )?;
            seq = if lstm {
                packed.narrow(0, 0, steps)?
            } else {
                packed.clone()
            };
            hn.push(packed.narrow(0, steps - 1, 1)?);
            if lstm {
                cn.push(packed.narrow(0, steps, 1)?);
            }
        }
        let h_n = Tensor::cat(&hn.iter().collect::<Vec<_>>(), 0)?;
        let c_n = match lstm {
            true => Some(Tensor::cat(&cn.iter().collect::<Vec<_>>(), 0)?),
            false => None,
        };
        let out = if self.options.batch_first {
            seq.transpose(0, 1)?
        } else {
            seq
        };
        Ok((out, RnnState { h: h_n, c: c_n }))
    }

    /// The state must be `[num_layers, batch, hidden]` (with a cell state for the LSTM only).
    fn check_state(&self, state: &RnnState, batch: usize) -> Result<()> {
        let name = self.cell.name();
        let want = [self.layers.len(), batch, self.hidden_size];
        let check = |t: &Tensor, what: &str| -> Result<()> {
            if t.dims() == want {
                return Ok(());
            }
            Err(Error::invalid(
                name,
                format!(
                    "{what} is {}, expected {want:?} (layers, batch, hidden)",
                    t.shape()
                ),
            ))
        };
        check(&state.h, "the initial state h")?;
        match (self.cell, &state.c) {
            (RnnCell::Lstm, Some(c)) => check(c, "the initial cell state c"),
            (RnnCell::Lstm, None) => Err(Error::invalid(
                name,
                "the LSTM's state needs a cell state c",
            )),
            (_, Some(_)) => Err(Error::invalid(
                name,
                format!("the {name}'s state has no cell state c"),
            )),
            (_, None) => Ok(()),
        }
    }
}

impl Parts for Recurrent {
    fn parts(&mut self) -> Vec<(String, Part<'_>)> {
        let mut parts = Vec::new();
        for (l, p) in self.layers.iter_mut().enumerate() {
            parts.push((format!("weight_ih_l{l}"), Part::Param(&mut p.w_ih)));
            parts.push((format!("weight_hh_l{l}"), Part::Param(&mut p.w_hh)));
            parts.push((format!("bias_ih_l{l}"), Part::Param(&mut p.b_ih)));
            parts.push((format!("bias_hh_l{l}"), Part::Param(&mut p.b_hh)));
        }
        for (i, d) in self.dropouts.iter_mut().enumerate() {
            parts.push((format!("dropout{i}"), Part::Module(d)));
        }
        parts
    }
}

impl Module for Recurrent {
    /// The outputs at every step from a zero state ([`Recurrent::forward_with_state`]
    /// returns the final state too).
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with_state(x, None)?.0)
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "{}({}→{}",
            self.cell.name(),
            self.input_size,
            self.hidden_size
        );
        if self.layers.len() > 1 {
            s += &format!(", {} layers", self.layers.len());
        }
        if self.options.dropout > 0.0 {
            s += &format!(", dropout {}", self.options.dropout);
        }
        if self.options.batch_first {
            s += ", batch_first";
        }
        s + ")"
    }
}

/// Declares a layer type wrapping [`Recurrent`] with one cell.
macro_rules! recurrent_layer {
    ($(#[$doc:meta])* $name:ident, $cell:expr) => {
        $(#[$doc])*
        pub struct $name(Recurrent);

        impl $name {
            /// One layer, `input_size → hidden_size`, PyTorch's initialisation.
            pub fn new(input_size: usize, hidden_size: usize, device: &Device) -> Result<$name> {
                $name::with_options(input_size, hidden_size, RnnOptions::default(), device)
            }

            /// With layers, dropout between them and `batch_first` from `options`.
            pub fn with_options(
                input_size: usize,
                hidden_size: usize,
                options: RnnOptions,
                device: &Device,
            ) -> Result<$name> {
                Ok($name(Recurrent::new($cell, input_size, hidden_size, options, device)?))
            }
        }

        impl std::ops::Deref for $name {
            type Target = Recurrent;
            fn deref(&self) -> &Recurrent {
                &self.0
            }
        }

        impl std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Recurrent {
                &mut self.0
            }
        }

        impl Parts for $name {
            fn parts(&mut self) -> Vec<(String, Part<'_>)> {
                self.0.parts()
            }
        }

        impl Module for $name {
            fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
                self.0.forward(x)
            }
            fn describe(&self) -> String {
                self.0.describe()
            }
        }
    };
}

recurrent_layer!(
    /// Elman RNN with tanh (PyTorch's `nn.RNN`): `h = tanh(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh)`.
    Rnn,
    RnnCell::Tanh
);
recurrent_layer!(
    /// Gated recurrent unit (PyTorch's `nn.GRU`), gates `r, z, n`.
    Gru,
    RnnCell::Gru
);
recurrent_layer!(
    /// Long short-term memory (PyTorch's `nn.LSTM`), gates `i, f, g, o` and a cell state.
    Lstm,
    RnnCell::Lstm
);
