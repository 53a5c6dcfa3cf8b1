//! Recycled host buffers for the CPU backend: a training step makes the same tensors every
//! step, so outputs reuse the vectors of the previous step's dropped tensors instead of
//! allocating (and page-faulting in) fresh memory. Buffers are kept by exact length; the pool
//! holds at most [`POOL_LIMIT`] bytes and frees the rest.

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
    ($take:ident, $give:ident, $field:ident, $t:ty, $zero:expr) => {
        /// A vector of `n` elements: recycled (contents unspecified) or new (zeroed).
        pub fn $take(n: usize) -> Vec<$t> {
            let reused = with_pool(|p| {
                let v = p.$field.get_mut(&n)?.pop()?;
                p.bytes -= n * std::mem::size_of::<$t>();
                Some(v)
            });
            reused.unwrap_or_else(|| vec![$zero; n])
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

typed!(take_f32, give_f32, f32s, f32, 0.0);
typed!(take_u32, give_u32, u32s, u32, 0);
typed!(take_f16, give_f16, f16s, f16, f16::ZERO);

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
