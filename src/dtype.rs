//! Element types. A dtype is data carried by the tensor, not a type parameter: kernels are
//! written once with a scalar alias `T` and instantiated per dtype (see `gpu::pipelines`).

use half::f16;
use std::fmt;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float, the default.
    F32,
    /// 16-bit IEEE float (GPU needs `SHADER_F16`; the CPU stores it with the `half` crate).
    F16,
    /// 32-bit unsigned integer: labels, argmax and max-pool indices, counts.
    U32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }

    /// Short lowercase name (`f32`, `f16`, `u32`), as WGSL spells it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U32 => "u32",
        }
    }

    /// True for the floating-point dtypes.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can be an element of a tensor.
pub trait Element: bytemuck::Pod + Copy + Send + Sync + fmt::Debug + 'static {
    /// The matching dtype.
    const DTYPE: DType;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for f16 {
    const DTYPE: DType = DType::F16;
}
impl Element for u32 {
    const DTYPE: DType = DType::U32;
}
