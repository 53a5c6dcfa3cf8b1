//! What a training program usually needs, in one import: `use wgnn::prelude::*;`
//! (as `import torch; import torch.nn as nn` would give a PyTorch program).
//!
//! ```
//! use wgnn::prelude::*;
//!
//! # fn main() -> wgnn::Result<()> {
//! let dev = Device::cpu();
//! let x = Tensor::arange(0.0, 6.0, 1.0, &dev)?.reshape([2, 3])?;
//! let y = ((&x * 2.0)? + &Tensor::ones([3], DType::F32, &dev)?)?; // broadcast over rows
//! assert_eq!(y.sum_dim(&[-1], false)?.to_vec::<f32>()?, [9.0, 27.0]);
//! # Ok(()) }
//! ```

pub use crate::autograd::no_grad;
pub use crate::data::{DataLoader, TensorDataset};
pub use crate::nn::{
    self, BatchNorm, Conv2d, Dropout, Linear, MaxPool2d, Module, ModuleExt, Relu, Sequential,
    cross_entropy, mse_loss,
};
pub use crate::optim::Optimizer;
pub use crate::{DType, Device, Error, Result, Shape, Tensor, manual_seed, rand, randn};
