//! Pooling: max (the book's `Pooling` layer; the op keeps the argmax for its backward),
//! average (LeNet's) and global average (NiN's and ResNet's head).

use super::Module;
use crate::error::Result;
use crate::tensor::Tensor;

/// Max-pool with a `size`×`size` window.
#[derive(Clone, Copy, Debug, Module)]
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

/// Average over each `size`×`size` window moved by `stride`, zero padding counted.
#[derive(Clone, Copy, Debug, Module)]
pub struct AvgPool2d {
    size: usize,
    stride: usize,
    pad: usize,
}

impl AvgPool2d {
    /// A `size`×`size` window moved by `stride`.
    pub fn new(size: usize, stride: usize, pad: usize) -> AvgPool2d {
        AvgPool2d { size, stride, pad }
    }
}

impl Module for AvgPool2d {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool2d(self.size, self.stride, self.pad)
    }

    fn describe(&self) -> String {
        format!(
            "AvgPool2d({}x{}, stride {}, pad {})",
            self.size, self.size, self.stride, self.pad
        )
    }
}

/// The mean of each channel: `[N, C, H, W] → [N, C]` (global average pooling, flattened
/// for the classifier that follows).
#[derive(Clone, Copy, Debug, Default, Module)]
pub struct GlobalAvgPool2d;

impl Module for GlobalAvgPool2d {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let n = x.dims().first().copied().unwrap_or(0);
        let c = x.dims().get(1).copied().unwrap_or(0);
        x.global_avg_pool2d()?.reshape([n, c])
    }

    fn describe(&self) -> String {
        "GlobalAvgPool2d".into()
    }
}
