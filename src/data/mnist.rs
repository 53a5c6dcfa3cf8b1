//! MNIST in IDX format (gzipped or raw). Placeholder replaced by the reader.

use crate::error::Result;
use std::path::Path;

/// One split (train or test) of MNIST.
#[derive(Clone, Debug)]
pub struct MnistSplit {
    /// Pixels, `n * rows * cols` bytes, image-major.
    pub images: Vec<u8>,
    /// Labels 0..=9, `n` bytes.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

/// Both splits.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 60,000 training images.
    pub train: MnistSplit,
    /// 10,000 test images.
    pub test: MnistSplit,
}

impl Mnist {
    /// Loads the four files from `dir`.
    pub fn load(dir: &Path) -> Result<Mnist> {
        let _ = dir;
        Err(crate::Error::data(dir, "reader not written yet"))
    }
}
