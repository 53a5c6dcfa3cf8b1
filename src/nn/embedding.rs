//! Embedding: a learned table of `dim`-wide rows looked up by u32 index (tokens, classes).

use super::{Init, Module, Param};
use crate::device::Device;
use crate::error::Result;
use crate::tensor::Tensor;

/// `rows` learned vectors of `dim` values; `forward` takes u32 indices of any shape and
/// returns `idx.shape + [dim]`. Initialised N(0, 1) as PyTorch's.
#[derive(Module)]
pub struct Embedding {
    weight: Param,
}

impl Embedding {
    /// A `[rows, dim]` table drawn from the global generator ([`crate::manual_seed`]).
    pub fn new(rows: usize, dim: usize, device: &Device) -> Result<Embedding> {
        Embedding::with_seed(rows, dim, crate::rng::next_seed(), device)
    }

    /// A `[rows, dim]` table drawn from `seed`.
    pub fn with_seed(rows: usize, dim: usize, seed: u64, device: &Device) -> Result<Embedding> {
        super::check_sizes(
            "Embedding",
            &[("num_embeddings", rows), ("embedding_dim", dim)],
        )?;
        Ok(Embedding {
            weight: Param::new(Init::Std(1.0).tensor(&[rows, dim], 1, seed, device)?, true)?,
        })
    }

    /// The table `[rows, dim]`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }
}

impl Module for Embedding {
    fn forward(&mut self, idx: &Tensor) -> Result<Tensor> {
        self.weight.value().embedding(idx)
    }

    fn describe(&self) -> String {
        let d = self.weight.value().dims();
        format!("Embedding({}, {})", d[0], d[1])
    }
}
