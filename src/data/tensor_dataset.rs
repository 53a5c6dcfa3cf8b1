//! A dataset of tensors and a loader over it, as PyTorch's `TensorDataset` and `DataLoader`:
//! any number of tensors sharing their first dim (samples), float or u32, of any shape;
//! batches in order or shuffled with a seed (a new order each epoch), optionally dropping a
//! last short batch.
//!
//! Float tensors stay on their device and each batch is gathered there (`index_select`
//! along dim 0, with the batch's indices uploaded: 4 bytes a sample). u32 tensors (labels,
//! token ids) are gathered from a host copy and uploaded with the batch.

use super::loader::epoch_permutation;
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Tensors indexed together along their first dim.
pub struct TensorDataset {
    tensors: Vec<Tensor>,
    /// Host copies of the u32 tensors (`None` for float ones).
    ints: Vec<Option<Vec<u32>>>,
    len: usize,
}

impl TensorDataset {
    /// The samples of `tensors`, which must share their first dim and their device.
    pub fn new(tensors: Vec<Tensor>) -> Result<TensorDataset> {
        const OP: &str = "TensorDataset::new";
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid(OP, "needs at least one tensor"))?;
        let len = *first.dims().first().ok_or_else(|| {
            Error::invalid(OP, "tensor 0 is 0-d; every tensor needs a sample dim")
        })?;
        let device = first.device();
        let mut ints = Vec::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if t.dims().first() != Some(&len) {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "tensor {i} has shape {}, tensor 0 has {len} samples",
                        t.shape()
                    ),
                ));
            }
            if !t.device().same(&device) {
                return Err(Error::DeviceMismatch {
                    op: OP,
                    lhs: device.to_string(),
                    rhs: t.device().to_string(),
                });
            }
            ints.push(match t.dtype() {
                DType::U32 => Some(t.to_vec::<u32>()?),
                _ => None,
            });
        }
        Ok(TensorDataset {
            tensors: tensors.into_iter().map(|t| t.detach()).collect(),
            ints,
            len,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device the tensors are on.
    pub fn device(&self) -> Device {
        self.tensors[0].device()
    }

    /// The samples at `indices`, one tensor per dataset tensor (first dim `indices.len()`).
    pub fn get(&self, indices: &[u32]) -> Result<Vec<Tensor>> {
        if let Some(&bad) = indices.iter().find(|&&i| i as usize >= self.len) {
            return Err(Error::invalid(
                "TensorDataset::get",
                format!("index {bad} is past the {} samples", self.len),
            ));
        }
        let dev = self.device();
        let idx = Tensor::from_slice(indices, [indices.len()], &dev)?;
        self.tensors
            .iter()
            .zip(&self.ints)
            .map(|(t, host)| match host {
                Some(v) => {
                    let per = t.numel() / self.len.max(1);
                    let mut out = Vec::with_capacity(indices.len() * per);
                    for &i in indices {
                        out.extend_from_slice(&v[i as usize * per..(i as usize + 1) * per]);
                    }
                    let mut shape = t.dims().to_vec();
                    shape[0] = indices.len();
                    Tensor::from_vec(out, shape, &dev)
                }
                None => t.index_select(0, &idx),
            })
            .collect()
    }
}

impl std::fmt::Debug for TensorDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shapes: Vec<String> = self.tensors.iter().map(|t| t.shape().to_string()).collect();
        write!(
            f,
            "TensorDataset({} samples: {})",
            self.len,
            shapes.join(", ")
        )
    }
}

/// Batches of a [`TensorDataset`]: `for batch in loader.epoch() { let [x, y] = ... }`.
#[derive(Debug)]
pub struct DataLoader<'a> {
    data: &'a TensorDataset,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
    epoch: usize,
}

impl<'a> DataLoader<'a> {
    /// Batches of `batch_size` samples, in order (see [`DataLoader::shuffle`]).
    pub fn new(data: &'a TensorDataset, batch_size: usize) -> Result<DataLoader<'a>> {
        if batch_size == 0 {
            return Err(Error::invalid("DataLoader::new", "batch_size must be ≥ 1"));
        }
        Ok(DataLoader {
            data,
            batch_size,
            seed: None,
            drop_last: false,
            epoch: 0,
        })
    }

    /// Shuffles every epoch with an order determined by `seed` and the epoch number.
    pub fn shuffle(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Leaves out a last batch shorter than `batch_size`.
    pub fn drop_last(mut self, drop: bool) -> Self {
        self.drop_last = drop;
        self
    }

    /// Makes the next [`DataLoader::epoch`] epoch `epoch` (0-based) of the shuffled order, as
    /// a resumed run needs (PyTorch's `DistributedSampler.set_epoch`).
    pub fn set_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        if self.drop_last {
            self.data.len() / self.batch_size
        } else {
            self.data.len().div_ceil(self.batch_size)
        }
    }

    /// True when an epoch has no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next epoch's batches (each a `Vec` with one tensor per dataset tensor).
    pub fn epoch(&mut self) -> Batches<'a> {
        let n = self.data.len();
        let order = match self.seed {
            Some(seed) => epoch_permutation(n, seed, self.epoch),
            None => (0..n as u32).collect(),
        };
        self.epoch += 1;
        Batches {
            data: self.data,
            order,
            batch_size: self.batch_size,
            next: 0,
            batches: self.len(),
        }
    }
}

/// One epoch of a [`DataLoader`].
#[derive(Debug)]
pub struct Batches<'a> {
    data: &'a TensorDataset,
    order: Vec<u32>,
    batch_size: usize,
    next: usize,
    batches: usize,
}

impl Iterator for Batches<'_> {
    type Item = Result<Vec<Tensor>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.batches {
            return None;
        }
        let start = self.next * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        self.next += 1;
        Some(self.data.get(&self.order[start..end]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batches - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}
