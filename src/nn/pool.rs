//! Max-pooling, as the book's `Pooling` layer (argmax kept for backward).

use super::{ForwardCtx, Layer, no_forward};
use crate::error::Result;
use crate::ops::Pool2dGeom;
use crate::tensor::Tensor;

/// Max-pool with a `size`×`size` window.
pub struct MaxPool2d {
    size: usize,
    stride: usize,
    pad: usize,
    name: String,
    cache: Option<(Tensor, Pool2dGeom)>,
}

impl MaxPool2d {
    /// A `size`×`size` window moved by `stride`.
    pub fn new(size: usize, stride: usize, pad: usize) -> MaxPool2d {
        MaxPool2d {
            size,
            stride,
            pad,
            name: String::new(),
            cache: None,
        }
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> &'static str {
        "MaxPool2d"
    }

    fn forward(&mut self, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let g = x.pool_geom(self.size, self.size, self.stride, self.pad)?;
        let (out, idx) = x.max_pool2d(self.size, self.size, self.stride, self.pad)?;
        self.cache = if ctx.train { Some((idx, g)) } else { None };
        Ok(out)
    }

    fn backward(&mut self, dout: &Tensor) -> Result<Tensor> {
        let (idx, g) = self.cache.as_ref().ok_or_else(|| no_forward("MaxPool2d"))?;
        dout.max_pool2d_backward(idx, g)
    }

    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }

    fn describe(&self) -> String {
        format!(
            "MaxPool2d({}x{}, stride {}, pad {})",
            self.size, self.size, self.stride, self.pad
        )
    }
}
