//! Seeded randomness that is identical on every device.
//!
//! Initial values are drawn on the host with SplitMix64 (tiny, well studied, and stable across
//! crate versions, so a seed means the same numbers forever). Dropout masks use a counter-based
//! 32-bit hash so the CPU backend and the WGSL kernel produce the same mask bit for bit, and
//! so do [`crate::randn`] and [`crate::rand`]: they draw on the tensor's device from the same
//! hash ([`counter_uniform`], [`counter_normal`]), so a GAN's noise costs a GPU one dispatch
//! and no upload.
//!
//! Layers built without an explicit seed (`Linear::new`, `Conv2d::new`, `Dropout::new` …) take
//! one from the process-global default generator, as PyTorch's layers draw from its default
//! generator: [`manual_seed`] resets it (as `torch.manual_seed`), [`next_seed`] draws from it.
//! The explicit-seed constructors (`Linear::with_init`, `Dropout::with_seed` …) never touch it.

use std::sync::{Mutex, MutexGuard};

/// SplitMix64: a seeded 64-bit generator (Steele, Lea & Flood 2014).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, n)` (n > 0), by Lemire's multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Standard normal by Box–Muller.
    pub fn next_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The default generator's seed before any [`manual_seed`]: PyTorch's (67280421310721), so a
/// program that never seeds still builds the same layers on every run.
pub const DEFAULT_SEED: u64 = 67_280_421_310_721;

/// The process-global default generator behind [`manual_seed`] and [`next_seed`].
static DEFAULT_GENERATOR: Mutex<SplitMix64> = Mutex::new(SplitMix64::new(DEFAULT_SEED));

/// The default generator, locked. A panic elsewhere while it was held cannot leave a
/// SplitMix64 half-updated (its state is one integer), so a poisoned lock is simply taken.
fn default_generator() -> MutexGuard<'static, SplitMix64> {
    DEFAULT_GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Seeds the process-global default generator (PyTorch's `torch.manual_seed`): the layers
/// built after it without an explicit seed (`Linear::new`, `Conv2d::new`, `Embedding::new`,
/// `Dropout::new`) get the same weights, and the same dropout masks, on every run.
///
/// Threads: there is one generator per process behind a mutex, so building layers on several
/// threads at once is safe but hands out seeds in whatever order the threads take the lock;
/// for a reproducible model, build it on one thread after `manual_seed` (or pass seeds to the
/// explicit-seed constructors). Tests that run in parallel and need fixed weights should use
/// the explicit-seed constructors, since another test may draw from the generator in between.
///
/// ```
/// use wgnn::nn::{Linear, ModuleExt};
/// # fn main() -> wgnn::Result<()> {
/// let dev = wgnn::Device::cpu();
/// wgnn::manual_seed(42);
/// let a = Linear::new(3, 2, &dev)?.weight().value().to_vec::<f32>()?;
/// wgnn::manual_seed(42);
/// let b = Linear::new(3, 2, &dev)?.weight().value().to_vec::<f32>()?;
/// assert_eq!(a, b);
/// # Ok(()) }
/// ```
pub fn manual_seed(seed: u64) {
    *default_generator() = SplitMix64::new(seed);
}

/// The next seed from the process-global default generator (see [`manual_seed`]): what a
/// layer built without an explicit seed uses, and what a model of your own can use the same
/// way.
pub fn next_seed() -> u64 {
    default_generator().next_u64()
}

/// Chris Wellons' "lowbias32" integer hash; `shaders/elementwise.wgsl` has the same function.
pub fn hash_u32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The uniform `[0, 1)` draw for element `index` of a dropout mask with `seed`: 24 random bits,
/// exact in f32, so CPU and GPU compare the same value with the same threshold.
pub fn counter_uniform(seed: u32, index: u32) -> f32 {
    let h = hash_u32(index.wrapping_add(hash_u32(seed)));
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A standard normal value by Box–Muller from the draws `index` and `index + 1` of
/// [`counter_uniform`], in f32 as `shaders/elementwise.wgsl`'s `fill_normal` computes it:
/// `√(−2 ln u₁)·cos(2π u₂)` with `u₁ = 1 − u(index)` in `(0, 1]`, so `|z| ≤ √(48 ln 2) ≈ 5.77`.
pub fn counter_normal(seed: u32, index: u32) -> f32 {
    let u1 = 1.0 - counter_uniform(seed, index);
    let u2 = counter_uniform(seed, index.wrapping_add(1));
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}
