//! Host time to record and submit one DeepConvNet training step on a GPU — everything but
//! waiting for the GPU: each step starts from an idle device, `train_step` + `flush` are
//! timed, and the median over many steps is printed with the dispatches per step. Issue 15's
//! acceptance 2 compares this, built in two trees, alternating.
//!
//! ```text
//! cargo run --release --example record_time -- --batch 100 --steps 15
//! ```

use clap::Parser;
use std::time::Instant;
use wgnn::data::{DeviceDataset, Mnist};
use wgnn::models::deep_convnet;
use wgnn::nn::cross_entropy;
use wgnn::optim::Optimizer;
use wgnn::train::train_step;
use wgnn::{Device, Result};

/// Host time to record one DeepConvNet training step.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Images per step (the GPU's own time does not count; a small batch makes the run short).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Steps timed (after one warm-up step).
    #[arg(long, default_value_t = 15)]
    steps: usize,
    /// The adapter: gpu or gpu:N.
    #[arg(long, default_value = "gpu")]
    device: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.batch == 0 || args.steps == 0 {
        return Err(wgnn::Error::invalid(
            "record_time",
            "--batch and --steps must be at least 1",
        ));
    }
    let dev = Device::from_spec(&args.device)?;
    if dev.gpu_context().is_none() {
        return Err(wgnn::Error::invalid(
            "--device",
            "record time is a GPU measurement; pass gpu or gpu:N",
        ));
    }
    let split = Mnist::load_default()?.train.take(args.batch);
    let data = DeviceDataset::from_mnist(&split, &dev)?;
    let (x, t) = data.batch(&data.ordered()?, 0, args.batch)?;
    let mut model = deep_convnet(&dev, 0)?;
    let mut opt = Optimizer::adam(0.001, 0.9, 0.999);
    train_step(&mut model, &cross_entropy, &mut opt, &x, &t)?;
    let before = dev.counters();
    let mut times = Vec::with_capacity(args.steps);
    for _ in 0..args.steps {
        dev.sync()?;
        let start = Instant::now();
        train_step(&mut model, &cross_entropy, &mut opt, &x, &t)?;
        dev.flush()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    dev.sync()?;
    let c = dev.counters().since(&before);
    times.sort_by(f64::total_cmp);
    let steps = args.steps as u64;
    println!(
        "{dev}, batch {}: host records a step in {:.3} ms (median of {}; fastest tenth {:.3} ms); \
         {} dispatches, {} submits, {} bind groups created per step",
        args.batch,
        times[times.len() / 2],
        args.steps,
        times[times.len() / 10],
        c.dispatches / steps,
        c.submits / steps,
        c.bind_groups_created / steps
    );
    Ok(())
}
