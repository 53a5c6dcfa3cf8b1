//! One DeepConvNet training step (batch 100: gather, forward, loss, backward, Adam) on the CPU
//! backend and the first GPU adapter, plus the per-step accounting: submits, dispatches and
//! bytes moved, printed once per device (goal: 1 submit, nothing read back or uploaded).
//!
//! ```text
//! cargo bench --bench train_step
//! ```

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use wgnn::data::{DeviceDataset, Mnist};
use wgnn::models::deep_convnet;
use wgnn::nn::cross_entropy;
use wgnn::optim::Optimizer;
use wgnn::train::train_step;

const BATCH: usize = 100;

fn step(c: &mut Criterion) {
    let mnist = Mnist::load_default().expect("vendored MNIST");
    let split = mnist.train.take(BATCH * 20);
    let mut group = c.benchmark_group("train_step");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(BATCH as u64));
    for (label, dev) in common::devices() {
        let data = DeviceDataset::from_mnist(&split, &dev).expect("dataset");
        let order = data.shuffled(0, 0).expect("order");
        let mut model = deep_convnet(&dev, 0).expect("model");
        let mut opt = Optimizer::adam(0.001, 0.9, 0.999);
        let mut i = 0;
        let mut one_step = |model: &mut wgnn::nn::Sequential, opt: &mut Optimizer| {
            let (x, t) = data.batch(&order, (i % 20) * BATCH, BATCH).expect("batch");
            i += 1;
            let (loss, _) = train_step(model, &cross_entropy, opt, &x, &t).expect("step");
            dev.flush().expect("flush");
            loss
        };
        one_step(&mut model, &mut opt);
        dev.sync().expect("sync");
        let before = dev.counters();
        one_step(&mut model, &mut opt);
        let c = dev.counters().since(&before);
        eprintln!(
            "train_step on {dev}: {} submits, {} dispatches, {} bytes uploaded, {} bytes read back per step",
            c.submits, c.dispatches, c.bytes_uploaded, c.bytes_read_back
        );
        group.bench_function(BenchmarkId::new(label, "deep_convnet_batch100"), |bench| {
            bench.iter(|| {
                let loss = one_step(&mut model, &mut opt);
                dev.sync().expect("sync");
                loss
            })
        });
    }
    group.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
