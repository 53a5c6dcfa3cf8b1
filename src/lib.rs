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
//! let c = a.matmul(&b)?.relu()?;
//! println!("{:?} {:?}", c, &c.to_vec::<f32>()?[..4]);
//! # Ok(()) }
//! ```

//!
//! A residual block and a hand-written training loop (the README's taste):
//!
//! ```
//! use wgnn::nn::{BatchNorm, Conv2d, Linear, Module, ModuleExt, Sequential, cross_entropy};
//! use wgnn::optim::Optimizer;
//! use wgnn::{Device, Result, Tensor};
//!
//! /// relu(x + bn2(conv2(relu(bn1(conv1(x)))))): a plain struct and a five-line forward;
//! /// the derive names its parameters after the fields (`conv1.weight`, `bn1.gamma` …).
//! #[derive(Module)]
//! struct Residual { conv1: Conv2d, bn1: BatchNorm, conv2: Conv2d, bn2: BatchNorm }
//!
//! impl Module for Residual {
//!     fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
//!         let y = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
//!         let y = self.bn2.forward(&self.conv2.forward(&y)?)?;
//!         y.add(x)?.relu()
//!     }
//! }
//!
//! fn main() -> Result<()> {
//!     let dev = Device::cpu();
//!     wgnn::manual_seed(0);                 // as torch.manual_seed: the same weights every run
//!     let conv = || Conv2d::new(8, 8, 3, 1, 1, &dev);
//!     let block = Residual { conv1: conv()?, bn1: BatchNorm::channels(8, &dev)?,
//!                            conv2: conv()?, bn2: BatchNorm::channels(8, &dev)? };
//!     let mut model = Sequential::new()
//!         .add("block", block)?
//!         .add("fc", Linear::new(8 * 6 * 6, 10, &dev)?)?;
//!     let mut opt = Optimizer::adam(0.01, 0.9, 0.999);
//!     let x = Tensor::randn([32, 8, 6, 6], 0.0, 1.0, 4, &dev)?;
//!     let labels = Tensor::from_slice(&[3u32; 32], [32], &dev)?;
//!     for _ in 0..20 {
//!         model.zero_grad();
//!         let loss = cross_entropy(&model.forward(&x)?, &labels)?; // recorded, not yet run
//!         loss.backward()?;                  // walks the graph, adds into every parameter's grad
//!         opt.step(model.named_parameters())?; // "block.conv1.weight", …, "fc.bias"
//!     }
//!     let loss = cross_entropy(&model.forward(&x)?, &labels)?;
//!     println!("loss {}", loss.item()?);     // the one sync: one submit, 4 bytes read
//!     let weights = model.state_dict();      // name → tensor, as PyTorch's
//!     assert_eq!(weights.len(), 14);         // 10 parameters, 4 BatchNorm running statistics
//!     Ok(())
//! }
//! ```

#![warn(missing_docs)]

// `#[derive(Module)]` names `::wgnn::nn`; this makes that path work inside the crate too.
extern crate self as wgnn;

pub mod autograd;
pub mod bench;
#[cfg(feature = "cli")]
pub mod cli;
pub mod cpu;
pub mod data;
pub mod device;
pub mod distributions;
pub mod dtype;
pub mod error;
pub mod gpu;
pub mod image;
pub mod models;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod playground;
#[cfg(feature = "plots")]
pub mod plot;
pub mod prelude;
pub mod rl;
pub mod rng;
pub mod score;
pub mod shape;
pub mod tensor;
mod tensor_ops;
pub mod tensorboard;
pub mod train;

pub use device::{AdapterSummary, Device};
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use rng::manual_seed;
pub use shape::Shape;
pub use tensor::{Tensor, rand, randn};
pub use tensor_ops::OptimTarget;
pub use tensor_ops::shape::ReshapeDims;

/// The README's code blocks, compiled and run as doctests (so the README cannot drift from the
/// API it shows).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
