//! The generator: a seeded SplitMix64 ([`Rng`]) and one case's drawing of sizes, dims, values,
//! dtypes and operands on a device ([`Gen`]). What a case draws it writes into [`Gen::desc`],
//! so that a failure's report says how far the case got.

use crate::{HUGE, MAX_FILLED, say, trace};
use half::f16;
use wgnn::nn::loss::Reduction;
use wgnn::{DType, Device, Tensor};

/// SplitMix64 (the generator wgnn itself seeds from), written here so the test owns its
/// sequence whatever the library's generator becomes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    pub fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// One case's generator: draws operands on `dev`, and writes what it drew into `desc` as it
/// goes, so a panic's report says how far the case got.
pub struct Gen<'a> {
    pub r: Rng,
    pub dev: &'a Device,
    pub f16: bool,
    pub desc: String,
    /// Tensors made to require a gradient (their gradients are read after a backward).
    pub leaves: Vec<Tensor>,
}

impl Gen<'_> {
    pub fn note(&mut self, s: impl AsRef<str>) {
        if trace() {
            say(s.as_ref());
        }
        self.desc.push_str(s.as_ref());
    }

    /// A size: mostly 0–7, sometimes 1 or 0, sometimes huge.
    pub fn dim(&mut self) -> usize {
        match self.r.below(100) {
            0..80 => self.r.below(8),
            80..88 => 1,
            88..95 => 0,
            _ => self.r.pick(&HUGE),
        }
    }

    pub fn dims_of_rank(&mut self, rank: usize) -> Vec<usize> {
        let mut d: Vec<usize> = (0..rank).map(|_| self.dim()).collect();
        // A huge dim usually comes with a zero one, so the tensor exists (no elements) and
        // the huge size reaches the op instead of the constructor.
        if rank >= 2 && d.iter().any(|&x| x >= HUGE[0]) && self.r.chance(0.7) {
            let i = self.r.below(rank);
            d[i] = 0;
        }
        d
    }

    /// Rank 0–4.
    pub fn dims(&mut self) -> Vec<usize> {
        let rank = self.r.below(5);
        self.dims_of_rank(rank)
    }

    /// Dims that fit `dims` in some way: the same, broadcastable, one changed, or unrelated.
    pub fn related(&mut self, dims: &[usize]) -> Vec<usize> {
        match self.r.below(10) {
            0..5 => dims.to_vec(),
            5..7 => {
                let drop = self.r.below(dims.len() + 1);
                dims[drop..]
                    .iter()
                    .map(|&d| if self.r.chance(0.4) { 1 } else { d })
                    .collect()
            }
            7..9 if !dims.is_empty() => {
                let mut d = dims.to_vec();
                let i = self.r.below(d.len());
                d[i] = self.dim();
                d
            }
            _ => self.dims(),
        }
    }

    /// A small argument (0–3, sometimes 4–8), sometimes huge.
    pub fn arg(&mut self) -> usize {
        match self.r.below(100) {
            0..85 => self.r.below(4),
            85..92 => 4 + self.r.below(5),
            _ => self.r.pick(&HUGE),
        }
    }

    /// A dim index for a rank-`rank` tensor: mostly in range (negative too), sometimes not.
    pub fn sdim(&mut self, rank: usize) -> isize {
        let r = rank as isize;
        match self.r.below(100) {
            0..80 => self.r.below(2 * rank + 1) as isize - r,
            80..90 => self.r.pick(&[r, r + 1, -r - 1, -r - 2]),
            _ => self
                .r
                .pick(&[isize::MIN, isize::MAX, isize::MIN + 1, 1 << 40, -(1 << 40)]),
        }
    }

    /// Zero to four dim indices.
    pub fn sdims(&mut self, rank: usize) -> Vec<isize> {
        let n = self.r.below(rank.min(3) + 2);
        (0..n).map(|_| self.sdim(rank)).collect()
    }

    /// A float: mostly ordinary, often a value that breaks arithmetic.
    pub fn value(&mut self) -> f32 {
        if self.r.chance(0.75) {
            return (self.r.unit() - 0.5) * 8.0;
        }
        self.r.pick(&[
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            1e30,
            -1e30,
            1e-40,
            f32::MIN_POSITIVE,
            65_520.0, // rounds to f16 infinity
            7.0,
        ])
    }

    /// A u32: mostly below `bound`, sometimes just past it, sometimes huge.
    pub fn index_value(&mut self, bound: usize) -> u32 {
        match self.r.below(100) {
            0..85 => self.r.below(bound.max(1)) as u32,
            85..93 => bound.min(u32::MAX as usize) as u32,
            _ => self.r.pick(&[u32::MAX, u32::MAX - 1, 1 << 31, 1000]),
        }
    }

    /// A float dtype the device has (f32 mostly, f16 where supported), sometimes u32.
    pub fn float_dtype(&mut self) -> DType {
        match self.r.below(100) {
            0..75 => DType::F32,
            75..90 if self.f16 => DType::F16,
            75..90 => DType::F32,
            _ => DType::U32,
        }
    }

    /// A tensor of `dims` and `dtype` with random values (u32 below `bound`), made to require
    /// a gradient sometimes. Too large to fill: `Tensor::zeros`, which must refuse it.
    pub fn tensor_bounded(
        &mut self,
        name: &str,
        dims: &[usize],
        dtype: DType,
        bound: usize,
    ) -> wgnn::Result<Tensor> {
        let grad = dtype.is_float() && self.r.chance(0.25);
        self.note(format!(
            " {name}={dtype}{dims:?}{}",
            if grad { "+grad" } else { "" }
        ));
        let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let mut t = match n {
            Some(n) if n <= MAX_FILLED => match dtype {
                DType::F32 => {
                    let v: Vec<f32> = (0..n).map(|_| self.value()).collect();
                    Tensor::from_vec(v, dims, self.dev)?
                }
                DType::F16 => {
                    let v: Vec<f16> = (0..n).map(|_| f16::from_f32(self.value())).collect();
                    Tensor::from_vec(v, dims, self.dev)?
                }
                DType::U32 => {
                    let v: Vec<u32> = (0..n).map(|_| self.index_value(bound)).collect();
                    Tensor::from_vec(v, dims, self.dev)?
                }
            },
            _ => Tensor::zeros(dims, dtype, self.dev)?,
        };
        if grad {
            t.set_requires_grad(true)?;
            self.leaves.push(t.clone());
        }
        Ok(t)
    }

    pub fn tensor(&mut self, name: &str, dims: &[usize], dtype: DType) -> wgnn::Result<Tensor> {
        self.tensor_bounded(name, dims, dtype, 8)
    }

    /// A float operand (sometimes of the wrong dtype).
    pub fn float(&mut self, name: &str, dims: &[usize]) -> wgnn::Result<Tensor> {
        let dt = self.float_dtype();
        self.tensor(name, dims, dt)
    }

    /// A float operand of a given dtype, mostly (sometimes another one).
    pub fn float_like(&mut self, name: &str, dims: &[usize], dt: DType) -> wgnn::Result<Tensor> {
        let dt = if self.r.chance(0.9) {
            dt
        } else {
            self.float_dtype()
        };
        self.tensor(name, dims, dt)
    }

    /// An index operand: u32 below `bound` mostly (some out of range), sometimes f32.
    pub fn indices(&mut self, name: &str, dims: &[usize], bound: usize) -> wgnn::Result<Tensor> {
        let dt = if self.r.chance(0.92) {
            DType::U32
        } else {
            DType::F32
        };
        self.tensor_bounded(name, dims, dt, bound)
    }

    /// An NCHW image batch (sometimes of another rank).
    pub fn images(&mut self, name: &str) -> wgnn::Result<Tensor> {
        let mut dims = if self.r.chance(0.9) {
            vec![
                self.r.below(3),
                1 + self.r.below(3),
                self.r.below(8),
                self.r.below(8),
            ]
        } else {
            self.dims()
        };
        if self.r.chance(0.05)
            && let Some(n) = dims.first_mut()
        {
            *n = self.r.pick(&HUGE);
        }
        self.float(name, &dims)
    }

    pub fn reduction(&mut self) -> Reduction {
        self.r
            .pick(&[Reduction::Mean, Reduction::Sum, Reduction::None])
    }
}

/// The product of `parts` when it is small enough to fill, else `fallback`.
pub fn small_product(parts: &[usize], fallback: usize) -> usize {
    parts
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_FILLED)
        .unwrap_or(fallback)
}
