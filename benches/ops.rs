//! Per-op benchmarks at DeepConvNet's sizes (batch 100) on the CPU backend and the first GPU
//! adapter: conv forward/backward (conv2: 16→16 at 28×28, conv6: 64→64 at 8×8), max-pool
//! forward/backward, softmax-cross-entropy forward/backward, and an Adam update of conv6's
//! weights. Every GPU iteration ends in `sync`, so the time is the GPU's.
//!
//! ```text
//! cargo bench --bench ops
//! ```

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use wgnn::ops::Kernels;
use wgnn::ops::{OptimKind, OptimStep};
use wgnn::{Device, Tensor};

fn sync(dev: &Device) {
    dev.sync().expect("sync");
}

/// (name, channels in, channels out, spatial size)
const CONVS: [(&str, usize, usize, usize); 2] = [("conv2", 16, 16, 28), ("conv6", 64, 64, 8)];
const BATCH: usize = 100;

fn conv(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for (label, dev) in common::devices() {
        for (name, cin, cout, hw) in CONVS {
            let x = Tensor::randn([BATCH, cin, hw, hw], 0.0, 1.0, 1, &dev).expect("x");
            let w = Tensor::randn([cout, cin, 3, 3], 0.0, 0.1, 2, &dev).expect("w");
            let b = Tensor::randn([cout], 0.0, 0.1, 3, &dev).expect("b");
            let dout = Tensor::randn([BATCH, cout, hw, hw], 0.0, 1.0, 4, &dev).expect("dout");
            sync(&dev);
            // 2·N·OH·OW·F·C·9 for the forward; the backward does two such products.
            let flops = 2 * (BATCH * hw * hw * cout * cin * 9) as u64;
            group.throughput(Throughput::Elements(flops));
            group.bench_function(
                BenchmarkId::new(format!("{label}/forward"), name),
                |bench| {
                    bench.iter(|| {
                        let y = x.conv2d(&w, &b, 1, 1).expect("conv2d");
                        sync(&dev);
                        y
                    })
                },
            );
            group.throughput(Throughput::Elements(2 * flops));
            group.bench_function(
                BenchmarkId::new(format!("{label}/backward"), name),
                |bench| {
                    bench.iter(|| {
                        let g = x.conv2d_backward(&w, &dout, 1, 1).expect("conv2d_backward");
                        sync(&dev);
                        g
                    })
                },
            );
        }
    }
    group.finish();
}

fn pool_softmax_optim(c: &mut Criterion) {
    let mut group = c.benchmark_group("ops");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (label, dev) in common::devices() {
        let x = Tensor::randn([BATCH, 16, 28, 28], 0.0, 1.0, 1, &dev).expect("x");
        let (y, idx) = x.max_pool2d(2, 2, 2, 0).expect("pool");
        let g = x.pool_geom(2, 2, 2, 0).expect("geom");
        sync(&dev);
        group.throughput(Throughput::Bytes((x.numel() * 4) as u64));
        group.bench_function(
            BenchmarkId::new(label.clone(), "max_pool_forward"),
            |bench| {
                bench.iter(|| {
                    let r = x.max_pool2d(2, 2, 2, 0).expect("pool");
                    sync(&dev);
                    r
                })
            },
        );
        group.bench_function(
            BenchmarkId::new(label.clone(), "max_pool_backward"),
            |bench| {
                bench.iter(|| {
                    let r = y.max_pool2d_backward(&idx, &g).expect("pool backward");
                    sync(&dev);
                    r
                })
            },
        );

        let logits = Tensor::randn([BATCH, 10], 0.0, 1.0, 5, &dev).expect("logits");
        let labels = Tensor::from_vec(
            (0..BATCH as u32).map(|i| i % 10).collect::<Vec<_>>(),
            [BATCH],
            &dev,
        )
        .expect("labels");
        group.throughput(Throughput::Bytes((logits.numel() * 4) as u64));
        group.bench_function(
            BenchmarkId::new(label.clone(), "softmax_ce_forward_backward"),
            |bench| {
                bench.iter(|| {
                    let (loss, probs) = logits.softmax_cross_entropy(&labels).expect("ce");
                    let d = probs
                        .softmax_cross_entropy_backward(&labels, 1.0)
                        .expect("ce backward");
                    sync(&dev);
                    (loss, d)
                })
            },
        );

        let mut w = Tensor::randn([64, 64, 3, 3], 0.0, 0.1, 6, &dev).expect("w");
        let grad = Tensor::randn([64, 64, 3, 3], 0.0, 0.1, 7, &dev).expect("g");
        let mut m = Tensor::zeros([64, 64, 3, 3], wgnn::DType::F32, &dev).expect("m");
        let mut v = Tensor::zeros([64, 64, 3, 3], wgnn::DType::F32, &dev).expect("v");
        let guard = wgnn::optim::LossScaler::identity(&dev).expect("guard");
        let step = OptimStep {
            kind: OptimKind::Adam,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
            lr_t: 1e-3,
            t: 1,
        };
        group.throughput(Throughput::Bytes((w.numel() * 4 * 6) as u64)); // w, m, v read+written, g read
        group.bench_function(
            BenchmarkId::new(label.clone(), "adam_update_conv6"),
            |bench| {
                bench.iter(|| {
                    w.optim_update_(&grad, Some(&mut m), Some(&mut v), guard.state(), &step)
                        .expect("adam");
                    sync(&dev);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, conv, pool_softmax_optim);
criterion_main!(benches);
