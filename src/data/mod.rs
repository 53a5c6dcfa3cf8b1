//! Datasets: the MNIST IDX reader and the device-resident batch loader.

pub mod loader;
pub mod mnist;

pub use loader::{DeviceDataset, epoch_permutation};
pub use mnist::{Mnist, MnistSplit, default_data_dir, read_idx_images, read_idx_labels};
