//! d2l's recurrent language model (`RNNModel`, ch. 9): token ids → one-hot → a recurrent
//! network (RNN, GRU or LSTM) → a linear layer to the vocabulary, with d2l's greedy
//! prediction and perplexity. The one-hot vectors are never built: the first layer looks its
//! input projection up by token ([`Recurrent::forward_tokens`]), which is the same product.

use crate::autograd::no_grad;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{Linear, Module, Recurrent, RnnCell, RnnOptions, RnnState};
use crate::tensor::Tensor;

/// d2l's `RNNModel`: inputs are token ids, one-hot encoded, through `rnn`, and `head` maps
/// every step's state to logits over the vocabulary.
#[derive(crate::nn::Module)]
pub struct RnnLm {
    /// The recurrent network (`rnn.weight_ih_l0` …).
    pub rnn: Recurrent,
    /// `hidden → vocab`.
    pub head: Linear,
}

impl RnnLm {
    /// A model over `vocab` tokens with `layers` layers of `hidden` units of `cell`,
    /// initialised as PyTorch's layers are (seeds from the global generator).
    pub fn new(
        cell: RnnCell,
        vocab: usize,
        hidden: usize,
        layers: usize,
        device: &Device,
    ) -> Result<RnnLm> {
        if u32::try_from(vocab).is_err() {
            return Err(Error::invalid(
                "RnnLm",
                format!("vocab {vocab}: token ids are u32, so at most 2^32 tokens"),
            ));
        }
        let options = RnnOptions::default().layers(layers);
        let rnn = Recurrent::new(cell, vocab, hidden, options, device)?;
        let head = Linear::new(hidden, vocab, device)?;
        Ok(RnnLm { rnn, head })
    }

    /// The vocabulary size.
    pub fn vocab(&self) -> usize {
        self.rnn.input_size()
    }

    /// Logits `[T·B, vocab]` (time-major rows: step 0's batch first) for the token ids `ids`
    /// (u32 `[T, B]`, time-major as PyTorch's recurrent layers take them), from `state`
    /// (zeros when `None`), and the final state.
    pub fn forward_ids(
        &mut self,
        ids: &Tensor,
        state: Option<&RnnState>,
    ) -> Result<(Tensor, RnnState)> {
        let &[steps, batch] = ids.dims() else {
            return Err(Error::invalid(
                "RnnLm",
                format!("token ids {}: expected [steps, batch]", ids.shape()),
            ));
        };
        let (y, state) = self.rnn.forward_tokens(ids, state)?;
        let hidden = self.rnn.hidden_size();
        let logits = self.head.forward(&y.reshape([steps * batch, hidden])?)?;
        Ok((logits, state))
    }

    /// d2l's `predict_ch8`: warms the state up on `prefix` (token ids), then appends `n`
    /// tokens, each the most likely after the one before (greedy). With dropout between
    /// layers, call `eval()` first (as in PyTorch).
    pub fn predict(&mut self, prefix: &[u32], n: usize) -> Result<Vec<u32>> {
        let Some((&first, rest)) = prefix.split_first() else {
            return Err(Error::invalid("RnnLm::predict", "the prefix is empty"));
        };
        let _guard = no_grad();
        let device = self.head.weight().value().device();
        let mut out = vec![first];
        let mut state = self.rnn.zero_state(1, &device)?;
        let mut step = |tok: u32, state: &RnnState| -> Result<(Tensor, RnnState)> {
            let ids = Tensor::from_slice(&[tok], [1, 1], &device)?;
            self.forward_ids(&ids, Some(state))
        };
        for &tok in rest {
            state = step(*out.last().unwrap_or(&tok), &state)?.1;
            out.push(tok);
        }
        for _ in 0..n {
            let (logits, next) = step(*out.last().unwrap_or(&first), &state)?;
            state = next;
            let row = logits.to_vec::<f32>()?;
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            out.push(best.0 as u32);
        }
        Ok(out)
    }
}

impl Module for RnnLm {
    /// Logits `[T·B, vocab]` for token ids `[T, B]` from a zero state.
    fn forward(&mut self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.forward_ids(ids, None)?.0)
    }
}
