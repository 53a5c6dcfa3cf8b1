//! Max-pooling, as the book's `Pooling` layer; the op keeps the argmax for its backward.

use super::Module;
use crate::error::Result;
use crate::tensor::Tensor;

/// Max-pool with a `size`×`size` window.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    size: usize,
    stride: usize,
    pad: usize,
}

impl MaxPool2d {
    /// A `size`×`size` window moved by `stride`.
    pub fn new(size: usize, stride: usize, pad: usize) -> MaxPool2d {
        MaxPool2d { size, stride, pad }
    }
}

impl Module for MaxPool2d {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        Ok(x.max_pool2d(self.size, self.size, self.stride, self.pad)?.0)
    }

    fn describe(&self) -> String {
        format!(
            "MaxPool2d({}x{}, stride {}, pad {})",
            self.size, self.size, self.stride, self.pad
        )
    }
}
