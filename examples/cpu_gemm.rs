//! CPU GEMM throughput (`wgnn::cpu::sgemm`: matrixmultiply's kernels split across the rayon
//! pool, no tensor bookkeeping) against the FMA peak measured in the same process, at square
//! sizes and at the DeepConvNet's GEMM shapes as the backend calls them. Each shape is timed in
//! two rounds (the better median is printed: the machine is shared).
//!
//! ```text
//! cargo run --release --example cpu_gemm
//! cargo run --release --example cpu_gemm -- --threads 1
//! ```

use clap::Parser;
use wgnn::bench::{fma_peak_gflops, time_median};
use wgnn::{Device, Tensor};

/// CPU GEMM GFLOP/s per kernel.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Rayon threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed repetitions per shape and kernel (the median is taken).
    #[arg(long, default_value_t = 7)]
    reps: usize,
}

/// (label, m, k, n): C[m, n] = A[m, k] · B[k, n].
const SHAPES: [(&str, usize, usize, usize); 7] = [
    ("square 256", 256, 256, 256),
    ("square 512", 512, 512, 512),
    ("square 1024", 1024, 1024, 1024),
    // DeepConvNet, one image of a batch of 100 per call, as the backend runs them:
    ("conv2 fwd 16←144 × 784 px", 16, 144, 784),
    ("conv4 fwd 32←288 × 196 px", 32, 288, 196),
    ("conv6 fwd 64←576 × 49 px ×100 (batched)", 4900, 576, 64),
    ("fc1 fwd 100×1024 → 50", 100, 1024, 50),
];

fn main() -> wgnn::Result<()> {
    let args = Args::parse();
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| wgnn::Error::invalid("--threads", e.to_string()))?;
    }
    let dev = Device::cpu();
    let peak = fma_peak_gflops(&dev)?;
    println!(
        "{} rayon threads; measured FMA peak {peak:.0} GFLOP/s",
        rayon::current_num_threads()
    );
    println!("| shape (m × k × n) | GFLOP/s | % of peak |");
    println!("|---|---|---|");
    for (label, m, k, n) in SHAPES {
        let a = Tensor::randn([m, k], 0.0, 1.0, 1, &dev)?.to_vec::<f32>()?;
        let b = Tensor::randn([k, n], 0.0, 1.0, 2, &dev)?.to_vec::<f32>()?;
        let mut c = vec![0f32; m * n];
        // Enough calls per timing that a small shape runs for milliseconds.
        let calls = (2e8 / (2.0 * (m * k * n) as f64)).ceil().max(1.0) as usize;
        let flops = 2.0 * (m * k * n) as f64 * calls as f64;
        let mut best = 0.0f64;
        for _round in 0..2 {
            let s = time_median(&dev, args.reps, || {
                (0..calls).try_for_each(|_| wgnn::cpu::sgemm(m, k, n, &a, &b, &mut c))
            })?;
            best = best.max(flops / s / 1e9);
        }
        println!(
            "| {label} ({m} × {k} × {n}) | {best:.0} | {:.0} % |",
            100.0 * best / peak
        );
    }
    Ok(())
}
