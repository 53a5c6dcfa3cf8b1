//! PyTorch's DCGAN example on MNIST or Fashion-MNIST, sized for 28×28 images (or 32×32 with
//! `--resize 32`): `models::dcgan`'s generator (transposed convolutions, BatchNorm, ReLU,
//! tanh) and discriminator (strided convolutions, LeakyReLU 0.2, BatchNorm but on its first
//! layer, one logit), DCGAN's initialisation, Adam lr 2e-4 with β1 0.5, noise of 100, binary
//! cross-entropy (with logits). Prints PyTorch's line per iteration block — `Loss_D`, `Loss_G`,
//! `D(x)`, `D(G(z))` before and after the D step — and after every epoch writes a grid of 64
//! samples from one fixed noise batch to `--out-dir`, with the figures in `metrics.json`.
//!
//! ```text
//! cargo run --release --example dcgan -- --epochs 5 --out-dir runs/dcgan
//! cargo run --release --example dcgan -- --dataset fashion-mnist --resize 32 --limit 10000
//! ```
//!
//! `--score` rates the final generator's samples with a DeepConvNet classifier trained on the
//! same dataset (`--classifier FILE` loads one, else it is trained here and saved to the
//! output directory): the share of 10,000 samples it labels with confidence ≥ 0.9, its label
//! histogram, and the Fréchet distance between its penultimate (50-d) features of the samples
//! and of the 10,000 test images — FID's formula in this classifier's feature space
//! ([`wgnn::score`]).
//!
//! Issue 26 in progress: `--interpolate`, checkpoints, TensorBoard and the PyTorch twin are
//! not built yet.

use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;
use wgnn::data::{DataLoader, Mnist, TensorDataset};
use wgnn::models::dcgan;
use wgnn::nn::{Module, ModuleExt, Sequential, bce_with_logits};
use wgnn::optim::Optimizer;
use wgnn::prelude::*;

/// DCGAN on MNIST or Fashion-MNIST.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Device: cpu, gpu, gpu:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    /// mnist or fashion-mnist (the vendored copies under data/).
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Image size: 28 (as stored) or 32 (resized bilinearly, as the DCGAN paper's nets).
    #[arg(long, default_value_t = 28)]
    resize: usize,
    /// Passes over the training images.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Images per batch (PyTorch's example: 64).
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Train on the first N training images only (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Adam's learning rate for both nets.
    #[arg(long, default_value_t = 2e-4)]
    lr: f32,
    /// Adam's β1.
    #[arg(long, default_value_t = 0.5)]
    beta1: f32,
    /// Noise size.
    #[arg(long, default_value_t = 100)]
    nz: usize,
    /// Generator width (feature maps before its last layer).
    #[arg(long, default_value_t = 64)]
    ngf: usize,
    /// Discriminator width (feature maps of its first layer).
    #[arg(long, default_value_t = 64)]
    ndf: usize,
    /// Seed of the weights, the noise and the order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the sample grids (`samples_epoch_K.png`) and `metrics.json` go.
    #[arg(long, default_value = "runs/dcgan")]
    out_dir: PathBuf,
    /// Print the losses every this many iterations.
    #[arg(long, default_value_t = 100)]
    log_every: usize,
    /// Score 10,000 samples of the final generator with a classifier (see the module doc).
    #[arg(long)]
    score: bool,
    /// The scoring classifier's state dict (`models::deep_convnet`, safetensors); without
    /// it, one is trained for `--classifier-epochs` and saved as `classifier.safetensors`.
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Epochs of the scoring classifier's training when there is no `--classifier`.
    #[arg(long, default_value_t = 2)]
    classifier_epochs: usize,
}

/// One epoch's figures (means over its iterations).
struct EpochFigures {
    loss_d: f64,
    loss_g: f64,
    d_x: f64,
    d_g_z1: f64,
    d_g_z2: f64,
    images_per_sec: f64,
}

/// The dataset's directory.
fn data_dir(args: &Args) -> Result<PathBuf> {
    match args.dataset.as_str() {
        "mnist" => Ok(wgnn::data::mnist::default_data_dir()),
        "fashion-mnist" => Ok(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/fashion-mnist"
        ))),
        other => Err(Error::invalid(
            "--dataset",
            format!("{other:?}: mnist or fashion-mnist"),
        )),
    }
}

/// `split`'s first `n` images in [-1, 1] as `[n, 1, size, size]` on `dev`.
fn to_tensor(
    split: &wgnn::data::MnistSplit,
    n: usize,
    size: usize,
    dev: &Device,
) -> Result<Tensor> {
    let px = split.rows * split.cols;
    let v: Vec<f32> = split.images[..n * px]
        .iter()
        .map(|&p| p as f32 / 127.5 - 1.0)
        .collect();
    let x = Tensor::from_vec(v, [n, 1, split.rows, split.cols], dev)?;
    match size {
        28 => Ok(x),
        32 => x.resize_bilinear(32, 32),
        other => Err(Error::invalid("--resize", format!("{other}: 28 or 32"))),
    }
}

/// The training images in [-1, 1] as `[N, 1, size, size]` on `dev`.
fn images(args: &Args, data: &Mnist, dev: &Device) -> Result<Tensor> {
    let n = args.limit.unwrap_or(data.train.n).min(data.train.n);
    if n == 0 {
        return Err(Error::invalid("--limit", "no training images"));
    }
    to_tensor(&data.train, n, args.resize, dev)
}

/// The mean of `sigmoid(logits)`: D's average belief that the batch is real.
fn belief(logits: &Tensor) -> Result<f64> {
    Ok(logits.sigmoid()?.mean()?.item()? as f64)
}

/// 64 samples of `g` from `noise` as a PNG grid (8 × 8, enlarged 2×), in evaluation mode.
fn sample_grid(g: &mut Sequential, noise: &Tensor, path: &std::path::Path) -> Result<()> {
    g.eval();
    let s = {
        let _guard = no_grad();
        ((g.forward(noise)? + 1.0)? * 0.5)?
    };
    g.train();
    let captions = vec![String::new(); s.dims()[0]];
    wgnn::plot::captioned_grid(&s, &captions, 8, 2)?.save_png(path)
}

/// The scoring classifier: `--classifier`'s state dict, or a DeepConvNet trained here on the
/// dataset's 28×28 training images (Adam 1e-3, batch 100) and saved in the output directory.
/// Its test accuracy is printed either way.
fn classifier(args: &Args, data: &Mnist, dev: &Device) -> Result<Sequential> {
    // DeepConvNet takes 28×28 images: 32×32 samples are scored resized back to 28.
    let size = 28;
    let mut net = wgnn::models::deep_convnet(dev, args.seed)?;
    let test = to_tensor(&data.test, data.test.n, size, dev)?;
    match &args.classifier {
        Some(path) => {
            net.load_state_dict_file(path, true)?;
        }
        None => {
            let x = to_tensor(&data.train, data.train.n, size, dev)?;
            let y = Tensor::from_vec(
                data.train
                    .labels
                    .iter()
                    .map(|&l| l as u32)
                    .collect::<Vec<_>>(),
                [data.train.n],
                dev,
            )?;
            let set = TensorDataset::new(vec![x, y])?;
            let mut loader = DataLoader::new(&set, 100)?.shuffle(args.seed + 1);
            let mut opt = Optimizer::adam(1e-3, 0.9, 0.999);
            for epoch in 0..args.classifier_epochs {
                net.train();
                let start = Instant::now();
                for batch in loader.epoch() {
                    let batch = batch?;
                    net.zero_grad();
                    wgnn::nn::cross_entropy(&net.forward(&batch[0])?, &batch[1])?.backward()?;
                    opt.step(net.named_parameters())?;
                }
                println!(
                    "scoring classifier: epoch {}/{} in {:.0} s",
                    epoch + 1,
                    args.classifier_epochs,
                    start.elapsed().as_secs_f64()
                );
            }
            let path = args.out_dir.join("classifier.safetensors");
            net.state_dict().save(&path)?;
            println!("scoring classifier saved: {}", path.display());
        }
    }
    net.eval();
    let mut correct = 0usize;
    for start in (0..data.test.n).step_by(500) {
        let b = 500.min(data.test.n - start);
        let _guard = no_grad();
        let pred = net
            .forward(&test.narrow(0, start, b)?)?
            .argmax(-1, false)?
            .to_vec::<u32>()?;
        correct += pred
            .iter()
            .zip(&data.test.labels[start..start + b])
            .filter(|(p, l)| **p == **l as u32)
            .count();
    }
    println!(
        "scoring classifier: {:.2} % on the {} test images",
        100.0 * correct as f64 / data.test.n as f64,
        data.test.n
    );
    Ok(net)
}

/// The score of `g`'s samples (10,000 from fresh noise) against the test images.
fn score(args: &Args, data: &Mnist, g: &mut Sequential, dev: &Device) -> Result<String> {
    let mut net = classifier(args, data, dev)?;
    let n = 10_000;
    g.eval();
    let mut parts = Vec::new();
    for _ in 0..n / 500 {
        let _guard = no_grad();
        parts.push(g.forward(&randn([500, args.nz, 1, 1], dev)?)?);
    }
    g.train();
    let mut samples = Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0)?;
    if args.resize != 28 {
        samples = samples.resize_bilinear(28, 28)?;
    }
    let test = to_tensor(&data.test, data.test.n.min(n), 28, dev)?;
    let fake = wgnn::score::judge(&mut net, "relu7", &samples, 500)?;
    let real = wgnn::score::judge(&mut net, "relu7", &test, 500)?;
    let fd = wgnn::score::frechet_distance(&fake.mean, &fake.cov, &real.mean, &real.cov)?;
    let hist = |h: &[f64]| {
        h.iter()
            .map(|v| format!("{:.1}", 100.0 * v))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "score of {n} samples: {:.1} % labelled with confidence ≥ 0.9 (test images: {:.1} %); \
         labels (%): [{}]; Fréchet distance in the classifier's features: {fd:.3} \
         (not FID: DeepConvNet's 50-d features)",
        100.0 * fake.confident,
        100.0 * real.confident,
        hist(&fake.histogram)
    );
    Ok(format!(
        "{{\"samples\": {n}, \"confident\": {:.5}, \"test_confident\": {:.5}, \"histogram\": {:?}, \
         \"frechet_distance\": {fd:.5}}}",
        fake.confident, real.confident, fake.histogram
    ))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.batch_size == 0 || args.log_every == 0 {
        return Err(Error::invalid("--batch-size/--log-every", "must be ≥ 1"));
    }
    wgnn::cli::check_output_dir("--out-dir", &args.out_dir)?;
    let dev = Device::from_spec(&args.device)?;
    manual_seed(args.seed);
    let mnist = Mnist::load(&data_dir(&args)?)?;
    let data = images(&args, &mnist, &dev)?;
    let size = args.resize;
    let mut g = dcgan::generator(size, args.nz, args.ngf, 1, &dev)?;
    let mut d = dcgan::discriminator(size, args.ndf, 1, &dev)?;
    dcgan::dcgan_init(&mut g)?;
    dcgan::dcgan_init(&mut d)?;
    let mut opt_g = Optimizer::adam(args.lr, args.beta1, 0.999);
    let mut opt_d = Optimizer::adam(args.lr, args.beta1, 0.999);
    let fixed = randn([64, args.nz, 1, 1], &dev)?;
    let set = TensorDataset::new(vec![data.clone()])?;
    let mut loader = DataLoader::new(&set, args.batch_size)?
        .shuffle(args.seed)
        .drop_last(true);
    if loader.is_empty() {
        return Err(Error::invalid(
            "--batch-size",
            format!(
                "{} images make no full batch of {}",
                data.dims()[0],
                args.batch_size
            ),
        ));
    }
    println!(
        "DCGAN on {dev}: {} {}×{size} images ({} batches of {}), G {} parameters, D {}",
        data.dims()[0],
        size,
        loader.len(),
        args.batch_size,
        g.num_params(),
        d.num_params()
    );
    let mut epochs = Vec::new();
    let mut metrics_json = String::new();
    for epoch in 0..args.epochs {
        let start = Instant::now();
        let mut sums = [0f64; 5];
        let mut iters = 0usize;
        let batches = loader.len();
        for (i, batch) in loader.epoch().enumerate() {
            let real = &batch?[0];
            let b = real.dims()[0];
            let ones = Tensor::ones([b], DType::F32, &dev)?;
            let zeros = Tensor::zeros([b], DType::F32, &dev)?;
            // (1) D: maximise log D(x) + log(1 − D(G(z))).
            d.zero_grad();
            let out_real = d.forward(real)?.reshape([b])?;
            let z = randn([b, args.nz, 1, 1], &dev)?;
            let fake = g.forward(&z)?;
            let out_fake = d.forward(&fake.detach())?.reshape([b])?;
            let err_d = (bce_with_logits(&out_real, &ones)? + bce_with_logits(&out_fake, &zeros)?)?;
            err_d.backward()?;
            opt_d.step(d.named_parameters())?;
            // (2) G: maximise log D(G(z)) through the updated D.
            g.zero_grad();
            let out = d.forward(&fake)?.reshape([b])?;
            let err_g = bce_with_logits(&out, &ones)?;
            err_g.backward()?;
            opt_g.step(g.named_parameters())?;
            let row = [
                err_d.item()? as f64,
                err_g.item()? as f64,
                belief(&out_real)?,
                belief(&out_fake)?,
                belief(&out)?,
            ];
            for (s, v) in sums.iter_mut().zip(row) {
                *s += v;
            }
            iters += 1;
            if (i + 1) % args.log_every == 0 || i + 1 == batches {
                println!(
                    "[{}/{}][{}/{}] Loss_D: {:.4} Loss_G: {:.4} D(x): {:.4} D(G(z)): {:.4} / {:.4}",
                    epoch + 1,
                    args.epochs,
                    i + 1,
                    batches,
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    row[4]
                );
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let m = |k: usize| sums[k] / iters as f64;
        let fig = EpochFigures {
            loss_d: m(0),
            loss_g: m(1),
            d_x: m(2),
            d_g_z1: m(3),
            d_g_z2: m(4),
            images_per_sec: (iters * args.batch_size) as f64 / secs,
        };
        let grid = args
            .out_dir
            .join(format!("samples_epoch_{}.png", epoch + 1));
        sample_grid(&mut g, &fixed, &grid)?;
        println!(
            "epoch {}/{}: Loss_D {:.4}, Loss_G {:.4}, D(x) {:.4}, D(G(z)) {:.4} / {:.4}, {:.0} images/s; \
             samples: {}",
            epoch + 1,
            args.epochs,
            fig.loss_d,
            fig.loss_g,
            fig.d_x,
            fig.d_g_z1,
            fig.d_g_z2,
            fig.images_per_sec,
            grid.display()
        );
        epochs.push(fig);
        let rows: Vec<String> = epochs
            .iter()
            .enumerate()
            .map(|(e, f)| {
                format!(
                    "{{\"epoch\": {}, \"loss_d\": {:.5}, \"loss_g\": {:.5}, \"d_x\": {:.5}, \
                     \"d_g_z1\": {:.5}, \"d_g_z2\": {:.5}, \"images_per_sec\": {:.1}}}",
                    e + 1,
                    f.loss_d,
                    f.loss_g,
                    f.d_x,
                    f.d_g_z1,
                    f.d_g_z2,
                    f.images_per_sec
                )
            })
            .collect();
        metrics_json = format!(
            "{{\"dataset\": \"{}\", \"size\": {size}, \"device\": \"{dev}\", \"batch_size\": {}, \
             \"seed\": {}, \"epochs\": [{}]",
            args.dataset,
            args.batch_size,
            args.seed,
            rows.join(", ")
        );
        write_metrics(&args, &format!("{metrics_json}}}\n"))?;
    }
    if args.score {
        let s = score(&args, &mnist, &mut g, &dev)?;
        write_metrics(&args, &format!("{metrics_json}, \"score\": {s}}}\n"))?;
    }
    Ok(())
}

/// Writes `json` to `metrics.json` in the output directory.
fn write_metrics(args: &Args, json: &str) -> Result<()> {
    let path = args.out_dir.join("metrics.json");
    std::fs::write(&path, json)
        .map_err(|e| Error::invalid("--out-dir", format!("{}: {e}", path.display())))
}
