//! Datasets: the MNIST IDX reader and the device-resident batch loader.

pub mod mnist;

pub use mnist::{Mnist, MnistSplit};
