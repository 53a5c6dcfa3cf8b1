//! Datasets: the IDX reader (MNIST and Fashion-MNIST share the format), the vendored
//! datasets, the device-resident batch loader, PyTorch's general `TensorDataset` and
//! `DataLoader`, and text for language models (`text`: The Time Machine, a vocabulary, d2l's
//! sequence partitions).

pub mod loader;
pub mod mnist;
mod tensor_dataset;
pub mod text;

pub use loader::{DeviceDataset, epoch_permutation};
pub use mnist::{Mnist, MnistSplit, default_data_dir, read_idx_images, read_idx_labels};
pub use tensor_dataset::{Batches, DataLoader, TensorDataset};
pub use text::{
    Partition, SeqBatch, SeqBatches, SeqDataLoader, TimeMachine, Vocab, epoch_rng,
    seq_data_iter_random, seq_data_iter_sequential, seq_data_iter_sequential_at,
};

use crate::error::{Error, Result};
use std::path::PathBuf;

/// A vendored dataset: the four IDX files under `data/<name>/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    /// LeCun et al.'s handwritten digits (`data/mnist`).
    Mnist,
    /// Zalando's clothing images, MNIST's format and sizes (`data/fashion-mnist`).
    FashionMnist,
}

impl Dataset {
    /// Parses `mnist` or `fashion-mnist`.
    pub fn parse(spec: &str) -> Result<Dataset> {
        match spec.to_ascii_lowercase().replace('_', "-").as_str() {
            "mnist" => Ok(Dataset::Mnist),
            "fashion-mnist" | "fashionmnist" => Ok(Dataset::FashionMnist),
            other => Err(Error::invalid(
                "--dataset",
                format!("unknown dataset \"{other}\" (mnist, fashion-mnist)"),
            )),
        }
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
        }
    }

    /// The class names, by label.
    pub fn class_names(self) -> [&'static str; 10] {
        match self {
            Dataset::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            Dataset::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// The vendored directory, or `$WGNN_DATA` for MNIST (as [`default_data_dir`]).
    pub fn default_dir(self) -> PathBuf {
        match self {
            Dataset::Mnist => default_data_dir(),
            Dataset::FashionMnist => {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/fashion-mnist"))
            }
        }
    }

    /// Both splits from `dir` (default: [`Dataset::default_dir`]).
    pub fn load(self, dir: Option<&std::path::Path>) -> Result<Mnist> {
        match dir {
            Some(d) => Mnist::load(d),
            None => Mnist::load(&self.default_dir()),
        }
    }
}
