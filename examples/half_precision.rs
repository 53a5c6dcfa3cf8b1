//! The book's ch.8 half-precision experiment made real: trains DeepConvNet in f32 (or loads a
//! checkpoint), then evaluates the same model
//! - in f32,
//! - as the book's `half_float_network.py` does: weights and inputs rounded to the f16 grid,
//!   arithmetic in f32,
//! - with true f16 kernels (f16 weights, inputs and activations; f32 accumulation), where the
//!   device supports them (the CPU reference always does),
//!
//! then trains the same net from the same seed in mixed precision (f16 activations and
//! gradients, f32 master weights, dynamic loss scaling), and prints a table: precision, test
//! accuracy, bytes of parameters + activations per batch, images/s.
//!
//! ```text
//! cargo run --release --example half_precision -- --device cpu --epochs 1
//! cargo run --release --example half_precision -- --device gpu --train-limit 2000 --epochs 1
//! ```

use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;
use wgnn::autograd::no_grad;
use wgnn::data::{DeviceDataset, Mnist, default_data_dir};
use wgnn::models::deep_convnet;
use wgnn::nn::{ModuleExt, Sequential, cross_entropy};
use wgnn::optim::Optimizer;
use wgnn::train::{Precision, TrainConfig, checkpoint, evaluate, evaluate_with, fit};
use wgnn::{DType, Device, Tensor};

/// Train DeepConvNet in f32 and evaluate it in f32 and f16.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Device: cpu, gpu, gpu:N or auto.
    #[arg(long, default_value = "auto", env = "WGNN_DEVICE")]
    device: String,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training epochs (ignored with --checkpoint).
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Train on the first N images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on the first N test images (default: all 10,000).
    #[arg(long)]
    test_limit: Option<usize>,
    /// Evaluate this checkpoint (from `vgg_like --checkpoint-dir`) instead of training.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Directory with the MNIST files.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Evaluation batch size (also the batch the byte counts are given for).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    metrics_out: Option<PathBuf>,
}

struct Row {
    precision: &'static str,
    accuracy: f64,
    bytes_per_batch: usize,
    images_per_sec: f64,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Bytes of parameters plus the activations of one forward of `batch` images, in `dtype`.
fn bytes_per_batch(
    model: &mut Sequential,
    test: &DeviceDataset,
    batch: usize,
    dtype: DType,
) -> wgnn::Result<usize> {
    let order = test.ordered()?;
    let (x, _) = test.batch(&order, 0, batch.min(test.len()))?;
    let _no_grad = no_grad();
    model.eval();
    let dt = model.dtype();
    let (_, activations) = model.forward_counting(&x.to_dtype(dt)?)?;
    model.train();
    Ok((model.num_params() + activations) * dtype.size())
}

fn timed(f: impl FnOnce() -> wgnn::Result<f64>, images: usize) -> wgnn::Result<(f64, f64)> {
    let t = Instant::now();
    let acc = f()?;
    Ok((acc, images as f64 / t.elapsed().as_secs_f64()))
}

fn run(args: Args) -> wgnn::Result<()> {
    let device = Device::from_spec(&args.device)?;
    println!("half_precision on {device}");
    let mnist = Mnist::load(&args.data_dir.clone().unwrap_or_else(default_data_dir))?;
    let train_split = args
        .train_limit
        .map_or_else(|| mnist.train.clone(), |n| mnist.train.take(n));
    let test_split = args
        .test_limit
        .map_or_else(|| mnist.test.clone(), |n| mnist.test.take(n));
    let train = DeviceDataset::from_mnist(&train_split, &device)?;
    let test = DeviceDataset::from_mnist(&test_split, &device)?;
    let mut model = deep_convnet(&device, args.seed)?;
    let mut opt = Optimizer::adam(0.001, 0.9, 0.999);
    let cfg = TrainConfig {
        epochs: args.epochs,
        seed: args.seed,
        progress: false,
        verbose: true,
        log_every: 100,
        ..TrainConfig::default()
    };
    let f32_train_ips = match &args.checkpoint {
        Some(path) => {
            let info = checkpoint::load(path, &mut model, &mut opt)?;
            println!("loaded {} (epoch {})", path.display(), info.epoch);
            None
        }
        None => {
            println!("training in f32:");
            Some(fit(&mut model, &cross_entropy, &mut opt, &train, &test, &cfg)?.images_per_sec)
        }
    };
    let n = test.len();
    let bs = args.batch_size;
    let mut rows = Vec::new();

    let (acc, ips) = timed(|| evaluate(&mut model, &test, bs), n)?;
    rows.push(Row {
        precision: "f32",
        accuracy: acc,
        bytes_per_batch: bytes_per_batch(&mut model, &test, bs, DType::F32)?,
        images_per_sec: ips,
    });

    // The book's experiment: weights and inputs on the f16 grid, arithmetic in f32.
    let f32_params: Vec<Tensor> = model
        .named_parameters()
        .into_iter()
        .map(|(_, p)| p.value().detach())
        .collect();
    model.to_dtype(DType::F16)?;
    model.to_dtype(DType::F32)?;
    let (acc, ips) = timed(
        || {
            evaluate_with(&mut model, &test, bs, |x| {
                x.to_dtype(DType::F16)?.to_dtype(DType::F32)
            })
        },
        n,
    )?;
    rows.push(Row {
        precision: "f16 grid, f32 math (book)",
        accuracy: acc,
        bytes_per_batch: bytes_per_batch(&mut model, &test, bs, DType::F16)?,
        images_per_sec: ips,
    });

    // True f16 kernels.
    for ((_, p), v) in model.named_parameters().into_iter().zip(f32_params) {
        p.set_value(v)?;
    }
    let f16_ok = device.gpu_context().is_none_or(|c| c.supports_f16());
    if f16_ok {
        model.to_dtype(DType::F16)?;
        let (acc, ips) = timed(|| evaluate(&mut model, &test, bs), n)?;
        rows.push(Row {
            precision: "f16 kernels",
            accuracy: acc,
            bytes_per_batch: bytes_per_batch(&mut model, &test, bs, DType::F16)?,
            images_per_sec: ips,
        });
        model.to_dtype(DType::F32)?;
    } else {
        println!("this adapter lacks SHADER_F16: no true-f16 row");
    }

    // Mixed-precision training of the same net from the same seed.
    let mixed = if f16_ok && args.checkpoint.is_none() {
        println!("training in mixed precision:");
        let mut mmodel = deep_convnet(&device, args.seed)?;
        let mut mopt = Optimizer::adam(0.001, 0.9, 0.999);
        let m = fit(
            &mut mmodel,
            &cross_entropy,
            &mut mopt,
            &train,
            &test,
            &TrainConfig {
                precision: Precision::Mixed,
                ..cfg.clone()
            },
        )?;
        // A mixed step keeps f32 masters plus f16 copies of the parameters, and f16 activations.
        let order = test.ordered()?;
        let (x, _) = test.batch(&order, 0, bs.min(test.len()))?;
        let _no_grad = no_grad();
        mmodel.eval();
        let (_, activations) = mmodel.forward_counting(&x)?;
        let bytes = mmodel.num_params() * (4 + 2) + activations * 2;
        Some((m, bytes))
    } else {
        None
    };

    println!();
    println!(
        "| precision | test accuracy ({n} images) | params + activations per batch of {bs} | images/s |"
    );
    println!("|---|---|---|---|");
    if let Some(ips) = f32_train_ips {
        println!(
            "| f32 training | {:.2} % | {:.2} MB | {ips:.0} (training) |",
            100.0 * rows[0].accuracy,
            rows[0].bytes_per_batch as f64 / 1e6
        );
    }
    if let Some((m, bytes)) = &mixed {
        println!(
            "| mixed training | {:.2} % | {:.2} MB | {:.0} (training) |",
            100.0 * m.test_accuracy,
            *bytes as f64 / 1e6,
            m.images_per_sec
        );
    }
    for r in &rows {
        println!(
            "| {} | {:.2} % | {:.2} MB | {:.0} (inference) |",
            r.precision,
            100.0 * r.accuracy,
            r.bytes_per_batch as f64 / 1e6,
            r.images_per_sec
        );
    }
    if let Some((m, _)) = &mixed {
        println!(
            "mixed precision: {} steps skipped, final loss scale {}",
            m.skipped_steps, m.loss_scale
        );
    }
    let f32_acc = rows[0].accuracy;
    for r in &rows[1..] {
        println!(
            "{}: {:+.2} percentage points vs f32",
            r.precision,
            100.0 * (r.accuracy - f32_acc)
        );
    }
    if let Some(path) = &args.metrics_out {
        let get = |name: &str| rows.iter().find(|r| r.precision.starts_with(name));
        let json = serde_json::json!({
            "device": device.to_string(),
            "f32_test_accuracy": f32_acc,
            "f16_grid_test_accuracy": get("f16 grid").map(|r| r.accuracy),
            "f16_inference_test_accuracy": get("f16 kernels").map(|r| r.accuracy),
            "mixed_test_accuracy": mixed.as_ref().map(|(m, _)| m.test_accuracy),
            "mixed_skipped_steps": mixed.as_ref().map(|(m, _)| m.skipped_steps),
            "mixed_loss_scale": mixed.as_ref().map(|(m, _)| m.loss_scale),
            "images_per_sec": {
                "f32_training": f32_train_ips,
                "mixed_training": mixed.as_ref().map(|(m, _)| m.images_per_sec),
                "f32_inference": get("f32").map(|r| r.images_per_sec),
                "f16_grid_inference": get("f16 grid").map(|r| r.images_per_sec),
                "f16_inference": get("f16 kernels").map(|r| r.images_per_sec),
            },
            "rows": rows.iter().map(|r| serde_json::json!({
                "precision": r.precision,
                "test_accuracy": r.accuracy,
                "bytes_per_batch": r.bytes_per_batch,
                "images_per_sec": r.images_per_sec,
            })).collect::<Vec<_>>(),
        });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n",
        )
        .map_err(|e| wgnn::Error::io(path, e))?;
        println!("metrics written to {}", path.display());
    }
    Ok(())
}
