//! Tensor shapes (row-major, NCHW for images).

use std::fmt;

/// The dimensions of a tensor, outermost first.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// Builds a shape from its dimensions.
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a scalar shape `[]`).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Number of elements, or `None` when the product of the nonzero dims overflows `usize`.
    /// A zero dim does not excuse the others: in `[0, 2^40, 2^40]` the size of a row
    /// (`2^80`), which ops compute, overflows as well. Every tensor's shape has a count.
    pub fn checked_numel(&self) -> Option<usize> {
        checked_product(&self.0)
    }

    /// Dimension `i`, or `None` if out of range.
    pub fn dim(&self, i: usize) -> Option<usize> {
        self.0.get(i).copied()
    }

    /// `(rows, cols)` of a rank-2 shape.
    pub fn as_2d(&self) -> Option<(usize, usize)> {
        match self.0.as_slice() {
            &[r, c] => Some((r, c)),
            _ => None,
        }
    }
}

/// The product of `sizes`, or `None` when the product of the nonzero ones overflows `usize`
/// (so that every partial product fits too): a size computed from sizes whose product wraps
/// would allocate a small buffer and index past it.
pub(crate) fn checked_product(sizes: &[usize]) -> Option<usize> {
    let nonzero = sizes
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))?;
    Some(if sizes.contains(&0) { 0 } else { nonzero })
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}
impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}
