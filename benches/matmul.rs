//! Matmul throughput on the CPU backend and the first GPU adapter at 256, 512 and 1024.
//!
//! Criterion's throughput is set to 2·n³ elements per iteration, so its "elem/s" column reads
//! directly as FLOP/s. Each GPU iteration records the product and waits for it (`sync`), so the
//! time is the GPU's, not the enqueue's. Warm-up (pipeline compilation) is excluded.
//!
//! ```text
//! cargo bench --bench matmul
//! ```

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use wgnn::{Device, Tensor};

fn devices() -> Vec<(String, Device)> {
    let mut v = vec![("cpu".to_string(), Device::cpu())];
    match Device::gpu() {
        Ok(d) => {
            let name = match &d {
                Device::Gpu(ctx) => format!("gpu:{} {:?}", ctx.summary().index, ctx.matmul_kernel()),
                Device::Cpu => unreachable!(),
            };
            eprintln!("benchmarking GPU adapter: {d}");
            v.push((name, d));
        }
        Err(e) => eprintln!("no GPU adapter, CPU only: {e}"),
    }
    v
}

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for (name, dev) in devices() {
        for n in [256usize, 512, 1024] {
            let a = Tensor::randn([n, n], 0.0, 1.0, 1, &dev).expect("a");
            let b = Tensor::randn([n, n], 0.0, 1.0, 2, &dev).expect("b");
            dev.sync().expect("upload");
            group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
            group.bench_with_input(BenchmarkId::new(name.clone(), n), &n, |bench, _| {
                bench.iter(|| {
                    let c = a.matmul(&b, false, false).expect("matmul");
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
