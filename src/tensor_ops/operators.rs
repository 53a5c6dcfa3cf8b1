//! `std::ops` operators on tensors, beside the `Result` methods: `&a + &b`, `&a * 2.0`,
//! `-&a`, broadcast as the methods. An operator cannot return an error of its own, so each
//! returns the method's `Result` (as candle's do): `let y = ((&x * 2.0)? + &b)?;`.

use crate::error::Result;
use crate::tensor::Tensor;
use std::ops::{Add, Div, Mul, Neg, Sub};

macro_rules! tensor_op {
    ($Trait:ident, $f:ident, $method:ident, $scalar:expr) => {
        impl $Trait<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $f(self, rhs: &Tensor) -> Result<Tensor> {
                self.$method(rhs)
            }
        }
        impl $Trait<Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $f(self, rhs: Tensor) -> Result<Tensor> {
                (&self).$method(&rhs)
            }
        }
        impl $Trait<&Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $f(self, rhs: &Tensor) -> Result<Tensor> {
                (&self).$method(rhs)
            }
        }
        impl $Trait<Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $f(self, rhs: Tensor) -> Result<Tensor> {
                self.$method(&rhs)
            }
        }
        impl $Trait<f32> for &Tensor {
            type Output = Result<Tensor>;
            fn $f(self, rhs: f32) -> Result<Tensor> {
                #[allow(clippy::redundant_closure_call)]
                ($scalar)(self, rhs)
            }
        }
        impl $Trait<f32> for Tensor {
            type Output = Result<Tensor>;
            fn $f(self, rhs: f32) -> Result<Tensor> {
                #[allow(clippy::redundant_closure_call)]
                ($scalar)(&self, rhs)
            }
        }
    };
}

tensor_op!(Add, add, add, |t: &Tensor, v: f32| t.add_scalar(v));
tensor_op!(Sub, sub, sub, |t: &Tensor, v: f32| t.add_scalar(-v));
tensor_op!(Mul, mul, mul, |t: &Tensor, v: f32| t.mul_scalar(v));
tensor_op!(Div, div, div, |t: &Tensor, v: f32| t.mul_scalar(1.0 / v));

impl Add<&Tensor> for f32 {
    type Output = Result<Tensor>;
    fn add(self, rhs: &Tensor) -> Result<Tensor> {
        rhs.add_scalar(self)
    }
}

impl Sub<&Tensor> for f32 {
    type Output = Result<Tensor>;
    fn sub(self, rhs: &Tensor) -> Result<Tensor> {
        rhs.neg()?.add_scalar(self)
    }
}

impl Mul<&Tensor> for f32 {
    type Output = Result<Tensor>;
    fn mul(self, rhs: &Tensor) -> Result<Tensor> {
        rhs.mul_scalar(self)
    }
}

impl Div<&Tensor> for f32 {
    type Output = Result<Tensor>;
    fn div(self, rhs: &Tensor) -> Result<Tensor> {
        rhs.recip()?.mul_scalar(self)
    }
}

impl Neg for &Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(self)
    }
}

impl Neg for Tensor {
    type Output = Result<Tensor>;
    fn neg(self) -> Result<Tensor> {
        Tensor::neg(&self)
    }
}
