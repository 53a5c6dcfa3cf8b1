//! Matmul throughput on the CPU backend and the first GPU adapter (both WGSL kernels) at
//! 256, 512 and 1024.
//!
//! Criterion's throughput is set to 2·n³ elements per iteration, so its "elem/s" column reads
//! directly as FLOP/s. Each GPU iteration records the product and waits for it (`sync`), so the
//! time is the GPU's, not the enqueue's. Warm-up (pipeline compilation) is excluded.
//!
//! ```text
//! cargo bench --bench matmul
//! ```

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use wgnn::gpu::MatmulKernel;
use wgnn::{Device, Tensor};

/// The CPU backend, then the first GPU adapter once per matmul kernel (its default first).
fn configs() -> Vec<(String, Device, Option<MatmulKernel>)> {
    let mut v = Vec::new();
    for (label, d) in common::devices() {
        let Device::Gpu(ctx) = &d else {
            v.push((label, d, None));
            continue;
        };
        let default = ctx.matmul_kernel();
        let other = match default {
            MatmulKernel::RegisterBlocked => MatmulKernel::Tiled,
            MatmulKernel::Tiled => MatmulKernel::RegisterBlocked,
        };
        for k in [default, other] {
            v.push((format!("{label} {k:?}"), d.clone(), Some(k)));
        }
    }
    v
}

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for (name, dev, kernel) in configs() {
        if let (Device::Gpu(ctx), Some(k)) = (&dev, kernel) {
            ctx.set_matmul_kernel(k);
        }
        for n in [256usize, 512, 1024] {
            let a = Tensor::randn([n, n], 0.0, 1.0, 1, &dev).expect("a");
            let b = Tensor::randn([n, n], 0.0, 1.0, 2, &dev).expect("b");
            dev.sync().expect("upload");
            group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
            group.bench_with_input(BenchmarkId::new(name.clone(), n), &n, |bench, _| {
                bench.iter(|| {
                    let c = a.matmul_t(&b, false, false).expect("matmul");
                    dev.sync().expect("sync");
                    c
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, matmul);
criterion_main!(benches);
