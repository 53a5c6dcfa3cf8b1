//! What the benchmarks measure a backend against: an FMA peak from a microkernel
//! (`shaders/peak.wgsl` on a GPU; AVX2/AVX-512 FMA chains on the CPU, picked at run time), a
//! copy bandwidth (a buffer copy on a GPU, a memcpy-like loop on the CPU), and a timer that
//! synchronises the device inside the timed region.

use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::gpu::GpuContext;
use crate::gpu::kernels::{self, uniform};
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::sync::Arc;
use std::time::Instant;

/// Median seconds of `reps` runs of `f`, each followed by `device.sync()`, after one warm-up.
pub fn time_median(device: &Device, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    device.sync()?;
    let mut times = Vec::with_capacity(reps.max(1));
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        device.sync()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Peak f32 FMA throughput in GFLOP/s (2 flops per FMA).
pub fn fma_peak_gflops(device: &Device) -> Result<f64> {
    match device {
        Device::Cpu => Ok(cpu_fma_peak()),
        Device::Gpu(ctx) => gpu_fma_peak(ctx, device),
    }
}

/// Achievable copy bandwidth in GB/s (bytes read + bytes written per second).
pub fn copy_bandwidth_gbs(device: &Device) -> Result<f64> {
    match device {
        Device::Cpu => Ok(cpu_copy_bandwidth()),
        Device::Gpu(_) => {
            let n = 8 << 20; // 32 MiB of f32 each way
            let src = Tensor::zeros([n], DType::F32, device)?;
            let secs = time_median(device, 5, || src.try_clone().map(|_| ()))?;
            Ok(2.0 * (n * 4) as f64 / secs / 1e9)
        }
    }
}

uniform! {
    /// `Params` of `shaders/peak.wgsl`.
    pub(crate) struct PeakParams {
        n: u32,
        iters: u32,
        _p0: u32,
        _p1: u32,
    }
}

fn gpu_fma_peak(ctx: &Arc<GpuContext>, device: &Device) -> Result<f64> {
    let threads = 256 * 1024usize;
    let iters = 512u32;
    let out = Tensor::zeros([threads * 4], DType::F32, device)?;
    let crate::tensor::Storage::Gpu(buf) = &*out.storage else {
        unreachable!("a GPU tensor")
    };
    let params = PeakParams {
        n: threads as u32,
        iters,
        _p0: 0,
        _p1: 0,
    };
    let secs = time_median(device, 5, || {
        let groups = ctx.grid(threads, 256)?;
        ctx.dispatch(
            &crate::gpu::kernel_key(&kernels::peak::FMA_PEAK),
            bytemuck::bytes_of(&params),
            &[(1, buf)],
            groups,
        )
    })?;
    Ok(threads as f64 * iters as f64 * 8.0 * 4.0 * 2.0 / secs / 1e9)
}

/// FMA chains per thread: 8 independent accumulators hide the FMA latency.
const CHAINS: usize = 8;

fn cpu_fma_peak() -> f64 {
    let iters = 20_000_000u64;
    let threads = rayon::current_num_threads();
    let t = Instant::now();
    let sink: f32 = (0..threads)
        .into_par_iter()
        .map(|i| fma_chains(iters, i as f32))
        .sum();
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    let lanes = simd_lanes() as f64;
    threads as f64 * iters as f64 * CHAINS as f64 * lanes * 2.0 / secs / 1e9
}

/// f32 lanes of the widest FMA unit this CPU offers (1 without FMA).
fn simd_lanes() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return 16;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return 8;
        }
    }
    1
}

fn fma_chains(iters: u64, seed: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { x86::fma_avx512(iters, seed) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { x86::fma_avx2(iters, seed) };
        }
    }
    let mut a = [seed; CHAINS];
    for _ in 0..iters {
        for v in &mut a {
            *v = v.mul_add(0.9999, 1e-4);
        }
    }
    a.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_avx2(iters: u64, seed: f32) -> f32 {
        let b = _mm256_set1_ps(0.9999);
        let c = _mm256_set1_ps(1e-4);
        let mut a = [_mm256_set1_ps(seed); CHAINS];
        for _ in 0..iters {
            for v in &mut a {
                *v = _mm256_fmadd_ps(*v, b, c);
            }
        }
        let mut out = [0f32; 8];
        let mut s = a[0];
        for v in &a[1..] {
            s = _mm256_add_ps(s, *v);
        }
        // SAFETY: `out` holds 8 f32.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_avx512(iters: u64, seed: f32) -> f32 {
        let b = _mm512_set1_ps(0.9999);
        let c = _mm512_set1_ps(1e-4);
        let mut a = [_mm512_set1_ps(seed); CHAINS];
        for _ in 0..iters {
            for v in &mut a {
                *v = _mm512_fmadd_ps(*v, b, c);
            }
        }
        let mut s = a[0];
        for v in &a[1..] {
            s = _mm512_add_ps(s, *v);
        }
        _mm512_reduce_add_ps(s)
    }
}

fn cpu_copy_bandwidth() -> f64 {
    let n = 16 << 20; // 64 MiB of f32 each way: well past the caches
    let src = vec![1f32; n];
    let mut dst = vec![0f32; n];
    let chunk = n / rayon::current_num_threads().max(1);
    let copy = |dst: &mut [f32]| {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
    };
    copy(&mut dst);
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        copy(&mut dst);
        times.push(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&dst);
    times.sort_by(f64::total_cmp);
    2.0 * (n * 4) as f64 / times[2] / 1e9
}
