//! Recycled host buffers for the CPU backend: a training step makes the same tensors every
//! step, so outputs reuse the vectors of the previous step's dropped tensors instead of
//! allocating (and page-faulting in) fresh memory. Buffers are kept by exact length; the pool
//! holds at most [`POOL_LIMIT`] bytes and frees the rest.

use crate::dtype::DType;
use crate::error::{Error, Result};
use half::f16;
use std::collections::HashMap;
use std::sync::Mutex;

/// Bytes the pool may hold at once.
pub const POOL_LIMIT: usize = 1 << 30;

#[derive(Default)]
struct Pool {
    f32s: HashMap<usize, Vec<Vec<f32>>>,
    u32s: HashMap<usize, Vec<Vec<u32>>>,
    f16s: HashMap<usize, Vec<Vec<f16>>>,
    bytes: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Pool::default))
}

macro_rules! typed {
    ($take:ident, $try_take:ident, $give:ident, $field:ident, $t:ty, $zero:expr, $dtype:expr) => {
        /// A vector of `n` elements: recycled (contents unspecified) or new (zeroed). For
        /// sizes the program itself derives from an allocation that already succeeded; a size
        /// from user input goes through the fallible twin.
        pub fn $take(n: usize) -> Vec<$t> {
            reuse(
                n,
                |p| p.$field.get_mut(&n)?.pop(),
                std::mem::size_of::<$t>(),
            )
            .unwrap_or_else(|| vec![$zero; n])
        }

        /// The pooled vector of `n` elements as the infallible twin gives it, or an error
        /// naming `what` instead of an abort when the allocator refuses (or the byte count
        /// overflows).
        pub fn $try_take(n: usize, what: &str) -> Result<Vec<$t>> {
            if let Some(v) = reuse(
                n,
                |p| p.$field.get_mut(&n)?.pop(),
                std::mem::size_of::<$t>(),
            ) {
                return Ok(v);
            }
            try_filled(n, $zero, what, $dtype)
        }

        /// Returns a vector to the pool (or frees it when the pool is full).
        pub fn $give(v: Vec<$t>) {
            let bytes = v.len() * std::mem::size_of::<$t>();
            if v.is_empty() {
                return;
            }
            with_pool(|p| {
                if p.bytes + bytes <= POOL_LIMIT {
                    p.bytes += bytes;
                    p.$field.entry(v.len()).or_default().push(v);
                }
            });
        }
    };
}

/// `n` copies of `fill` in a new vector, or an error naming `what`, the element count and
/// the bytes when the allocator refuses (or the byte count overflows) — never an abort.
pub(crate) fn try_filled<T: Clone>(n: usize, fill: T, what: &str, dtype: DType) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|e| Error::HostAllocation {
        op: what.to_string(),
        shape: format!("[{n}]"),
        dtype,
        bytes: n as u128 * std::mem::size_of::<T>() as u128,
        why: e.to_string(),
    })?;
    v.resize(n, fill);
    Ok(v)
}

/// A pooled vector of `n` elements of `size` bytes, if the pool holds one.
fn reuse<T>(
    n: usize,
    pop: impl FnOnce(&mut Pool) -> Option<Vec<T>>,
    size: usize,
) -> Option<Vec<T>> {
    with_pool(|p| {
        let v = pop(p)?;
        p.bytes -= n * size;
        Some(v)
    })
}

typed!(take_f32, try_take_f32, give_f32, f32s, f32, 0.0, DType::F32);
typed!(take_u32, try_take_u32, give_u32, u32s, u32, 0, DType::U32);
typed!(
    take_f16,
    try_take_f16,
    give_f16,
    f16s,
    f16,
    f16::ZERO,
    DType::F16
);

/// Bytes currently pooled.
pub fn pooled_bytes() -> usize {
    with_pool(|p| p.bytes)
}

/// Frees every pooled buffer; returns the bytes released.
pub fn trim() -> usize {
    with_pool(|p| {
        let freed = p.bytes;
        *p = Pool::default();
        freed
    })
}
