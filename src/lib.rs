//! # wgnn
//!
//! A deep-learning training framework whose kernels are WGSL compute shaders run through
//! wgpu (Vulkan, Metal, DX12), with an ndarray CPU backend that is both the reference every
//! GPU kernel is tested against and a fast fallback. It implements the layers, optimizers and
//! networks of *Deep Learning from Scratch* (Saitō).
//!
//! - [`Device`]: where tensors live (`Device::auto()`, `cpu()`, `gpu()`, `gpu_by_index(i)`).
//! - [`Tensor`]: shape + dtype + storage; GPU tensors stay on the GPU until read with
//!   [`Tensor::to_vec`].
//! - [`autograd`]: define-by-run reverse-mode differentiation (`loss.backward()`).
//! - [`ops`]: the backend trait every primitive is named in; [`cpu`] and [`gpu`] implement it.
//!
//! ```no_run
//! use wgnn::{Device, Tensor};
//! # fn main() -> wgnn::Result<()> {
//! let dev = Device::auto()?;
//! let a = Tensor::randn([64, 32], 0.0, 1.0, 1, &dev)?;
//! let b = Tensor::randn([32, 16], 0.0, 1.0, 2, &dev)?;
//! let c = a.matmul(&b, false, false)?.relu()?;
//! println!("{:?} {:?}", c, &c.to_vec::<f32>()?[..4]);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod autograd;
pub mod bench;
pub mod cli;
pub mod cpu;
pub mod data;
pub mod device;
pub mod dtype;
pub mod error;
pub mod gpu;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod rng;
pub mod shape;
pub mod tensor;
mod tensor_ops;
pub mod train;

pub use device::{AdapterSummary, Device};
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use shape::Shape;
pub use tensor::Tensor;
