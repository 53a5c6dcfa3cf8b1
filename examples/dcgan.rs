//! PyTorch's DCGAN example on MNIST or Fashion-MNIST, sized for 28×28 images (or 32×32 with
//! `--resize 32`): `models::dcgan`'s generator (transposed convolutions, BatchNorm, ReLU,
//! tanh) and discriminator (strided convolutions without biases, LeakyReLU 0.2, BatchNorm but
//! on its first layer, one logit), DCGAN's initialisation, Adam lr 2e-4 with β1 0.5, noise of
//! 100 drawn on the device, binary cross-entropy (with logits). Prints PyTorch's line per
//! iteration block — `Loss_D`, `Loss_G`, `D(x)`, `D(G(z))` before and after the D step — and
//! after every epoch writes a grid of 64 samples from one fixed noise batch to `--out-dir`,
//! with the figures in `metrics.json` (and TensorBoard with `--tensorboard`).
//!
//! ```text
//! cargo run --release --example dcgan -- --epochs 5 --out-dir runs/dcgan --score
//! cargo run --release --example dcgan -- --dataset fashion-mnist --resize 32 --limit 10000
//! cargo run --release --example dcgan -- --checkpoint-dir runs/dcgan/ckpt --epochs 3
//! cargo run --release --example dcgan -- --resume runs/dcgan/ckpt --epochs 5 --interpolate
//! cargo run --release --example dcgan -- --score-samples runs/dcgan_torch/samples.safetensors \
//!     --out-dir runs/dcgan_torch
//! ```
//!
//! `--score` rates the final generator's samples with a DeepConvNet classifier trained on the
//! same dataset (the repository's `data/classifiers/deep_convnet_<dataset>.safetensors`, trained
//! once by this example with `--train-classifier`; `--classifier FILE` loads another): the share of 10,000 samples it labels with confidence ≥ 0.9, its label
//! histogram, and the Fréchet distance between its penultimate (50-d) features of the samples
//! and of the 10,000 test images — FID's formula in this classifier's feature space
//! ([`wgnn::score`]). The samples are kept in `samples.safetensors`. `--score-samples FILE`
//! scores another generator's samples by the same yardstick (`benches/dcgan.py`, the PyTorch
//! twin, writes its own there) without training.
//!
//! `--sample-mode train` (the default, as PyTorch's example draws its grids) samples with
//! G's BatchNorm on each batch's statistics; `eval` uses the running statistics. Either way G's
//! running statistics are left as training left them.
//!
//! `--checkpoint-dir DIR` keeps `generator/` and `discriminator/` checkpoints (`epoch-N` and
//! `last`, with each net's Adam state) after every epoch; `--resume DIR` goes on from DIR's
//! `last` pair. Epoch `e` draws its noise and order from `(--seed, e)`, so a resumed run
//! repeats an uninterrupted one. `--interpolate` writes `interpolation.png`: 8 rows, each
//! G's images along the straight line between two noise vectors in 10 steps.

use clap::Parser;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wgnn::data::{DataLoader, Mnist, TensorDataset};
use wgnn::models::dcgan;
use wgnn::nn::{Module, ModuleExt, Sequential, StateDict};
use wgnn::optim::Optimizer;
use wgnn::prelude::*;
use wgnn::tensorboard::SummaryWriter;
use wgnn::train::checkpoint;

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
    /// Passes over the training images (counting those a --resume restores).
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
    /// G's BatchNorm when sampling: train (batch statistics, PyTorch's example) or eval.
    #[arg(long, default_value = "train")]
    sample_mode: String,
    /// Keep generator/ and discriminator/ checkpoints here after every epoch.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Go on from this checkpoint directory's `last` pair.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Write TensorBoard event files (losses, D's beliefs, sample grids) into this directory.
    #[arg(long)]
    tensorboard: Option<PathBuf>,
    /// After training, draw `interpolation.png`: G along lines in the noise space.
    #[arg(long)]
    interpolate: bool,
    /// Score 10,000 samples of the final generator with a classifier (see the module doc).
    #[arg(long)]
    score: bool,
    /// Score the samples in this safetensors file (tensor `samples`, [N, 1, S, S] in [-1, 1])
    /// instead of training.
    #[arg(long)]
    score_samples: Option<PathBuf>,
    /// The scoring classifier's state dict (`models::deep_convnet`, safetensors); without
    /// it, the repository's for the dataset (`data/classifiers/`).
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Train the scoring classifier here for `--classifier-epochs` (saved as
    /// `classifier.safetensors` in `--out-dir`) instead of loading one.
    #[arg(long)]
    train_classifier: bool,
    /// Epochs of the scoring classifier's training.
    #[arg(long, default_value_t = 5)]
    classifier_epochs: usize,
}

/// How G's BatchNorm normalises when it samples.
#[derive(Clone, Copy, PartialEq)]
enum SampleMode {
    /// On each batch's statistics (PyTorch's example: G stays in training mode).
    Train,
    /// On the running statistics.
    Eval,
}

/// One epoch's figures (means over its iterations).
struct EpochFigures {
    epoch: usize,
    /// loss_d, loss_g, d_x, d_g_z1, d_g_z2.
    means: [f64; 5],
    images_per_sec: f64,
}

impl EpochFigures {
    fn to_json(&self) -> Value {
        let m = &self.means;
        json!({"epoch": self.epoch, "loss_d": m[0], "loss_g": m[1], "d_x": m[2],
               "d_g_z1": m[3], "d_g_z2": m[4], "images_per_sec": self.images_per_sec})
    }
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

/// `g`'s images for the noise `z`, with its BatchNorm in `mode`; G's parameters and running
/// statistics are as they were afterwards, and it is back in training mode.
fn generate(g: &mut Sequential, z: &Tensor, mode: SampleMode) -> Result<Tensor> {
    // Training-mode BatchNorm updates the running statistics: keep them to put back.
    let kept = g.state_dict();
    if mode == SampleMode::Eval {
        g.eval();
    }
    let out = {
        let _guard = no_grad();
        g.forward(z)
    };
    g.train();
    g.load_state_dict(&kept, true)?;
    out
}

/// `images` in [-1, 1] as a PNG grid of `cols` columns, enlarged 2×.
fn grid(images: &Tensor, cols: usize) -> Result<wgnn::image::Image> {
    let s = ((images + 1.0)? * 0.5)?;
    let captions = vec![String::new(); s.dims()[0]];
    wgnn::plot::captioned_grid(&s, &captions, cols, 2)
}

/// The interpolation grid: 8 rows, each G's images at 10 evenly spaced points of the segment
/// between two noise vectors.
fn interpolation(g: &mut Sequential, args: &Args, mode: SampleMode, dev: &Device) -> Result<()> {
    let (rows, steps, nz) = (8, 10, args.nz);
    let z0 = randn([rows, 1, nz], dev)?;
    let z1 = randn([rows, 1, nz], dev)?;
    let t: Vec<f32> = (0..steps).map(|j| j as f32 / (steps - 1) as f32).collect();
    let t = Tensor::from_vec(t, [1, steps, 1], dev)?;
    let z = (z0.mul(&(1.0 - &t)?)? + z1.mul(&t)?)?.reshape([rows * steps, nz, 1, 1])?;
    let path = args.out_dir.join("interpolation.png");
    grid(&generate(g, &z, mode)?, steps)?.save_png(&path)?;
    println!("interpolation: {}", path.display());
    Ok(())
}

/// The checkpoint directories of the two nets under `dir`.
fn net_dirs(dir: &Path) -> [PathBuf; 2] {
    [dir.join("generator"), dir.join("discriminator")]
}

/// Restores G, D and their optimizers from `dir`'s `last` pair; returns the epochs done and
/// the run's id. The two must come from the same run and epoch.
fn resume(
    dir: &Path,
    g: &mut Sequential,
    d: &mut Sequential,
    opt_g: &mut Optimizer,
    opt_d: &mut Optimizer,
) -> Result<(usize, Option<String>)> {
    let [gd, dd] = net_dirs(dir);
    let gi = checkpoint::load(&gd.join("last.safetensors"), g, opt_g)?;
    let di = checkpoint::load(&dd.join("last.safetensors"), d, opt_d)?;
    if gi.epoch != di.epoch || gi.run_id != di.run_id {
        return Err(Error::invalid(
            "--resume",
            format!(
                "{}: the generator's checkpoint (epoch {}, run {:?}) and the discriminator's \
                 (epoch {}, run {:?}) are not a pair",
                dir.display(),
                gi.epoch,
                gi.run_id,
                di.epoch,
                di.run_id
            ),
        ));
    }
    println!(
        "resumed from {} after epoch {} ({} updates of each net)",
        dir.display(),
        gi.epoch,
        gi.optim_steps
    );
    Ok((gi.epoch, gi.run_id))
}

/// The noise and order seed of epoch `epoch` (0-based), from `--seed`.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(epoch as u64 + 1)
}

/// `metrics.json`'s epochs from an earlier run in `--out-dir` (a resumed run keeps those up
/// to `upto`); none when there is no readable file.
fn earlier_epochs(args: &Args, upto: usize) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(args.out_dir.join("metrics.json")) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    v["epochs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["epoch"].as_u64().is_some_and(|n| n as usize <= upto))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The repository's scoring classifier for `dataset` (`data/classifiers/`), trained once by
/// this example so that every run is scored by the same yardstick.
fn vendored_classifier(dataset: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/classifiers"))
        .join(format!("deep_convnet_{dataset}.safetensors"))
}

/// The scoring classifier: `--classifier`'s state dict, else the repository's for the
/// dataset, else (`--train-classifier`, or none vendored) a DeepConvNet trained here on the
/// dataset's 28×28 training images (Adam 1e-3, batch 100) and saved in the output directory.
/// Its test accuracy is printed either way.
fn classifier(args: &Args, data: &Mnist, dev: &Device) -> Result<Sequential> {
    // DeepConvNet takes 28×28 images: 32×32 samples are scored resized back to 28.
    let size = 28;
    let mut net = wgnn::models::deep_convnet(dev, args.seed)?;
    let test = to_tensor(&data.test, data.test.n, size, dev)?;
    let vendored = vendored_classifier(&args.dataset);
    let load = match &args.classifier {
        Some(path) => Some(path.clone()),
        None if !args.train_classifier && vendored.is_file() => Some(vendored),
        None => None,
    };
    match load {
        Some(path) => {
            net.load_state_dict_file(&path, true)?;
            println!("scoring classifier: {}", path.display());
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

/// 10,000 samples of `g` from fresh noise (batches of 500), in [-1, 1].
fn draw_samples(g: &mut Sequential, args: &Args, mode: SampleMode, dev: &Device) -> Result<Tensor> {
    let mut parts = Vec::new();
    for _ in 0..20 {
        parts.push(generate(g, &randn([500, args.nz, 1, 1], dev)?, mode)?);
    }
    Tensor::cat(&parts.iter().collect::<Vec<_>>(), 0)
}

/// The tensor `samples` of the safetensors file at `path` (`[N, 1, S, S]`, S 28 or 32).
fn load_samples(path: &Path, dev: &Device) -> Result<Tensor> {
    let dict = StateDict::load(path)?;
    let Some(s) = dict.get("samples") else {
        return Err(Error::invalid(
            "--score-samples",
            format!(
                "{}: no tensor named `samples` (it holds: {})",
                path.display(),
                dict.keys().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let d = s.dims();
    if d.len() != 4 || d[1] != 1 || d[2] != d[3] || !matches!(d[2], 28 | 32) || d[0] == 0 {
        return Err(Error::invalid(
            "--score-samples",
            format!(
                "{}: samples {}, expected [N, 1, 28, 28] or [N, 1, 32, 32]",
                path.display(),
                s.shape()
            ),
        ));
    }
    s.to_device(dev)
}

/// The score of `samples` (`[N, 1, S, S]` in [-1, 1]) against the test images.
fn score(args: &Args, data: &Mnist, samples: &Tensor, dev: &Device) -> Result<Value> {
    let mut net = classifier(args, data, dev)?;
    let n = samples.dims()[0];
    let samples = match samples.dims()[2] {
        28 => samples.clone(),
        _ => samples.resize_bilinear(28, 28)?,
    };
    let test = to_tensor(&data.test, data.test.n.min(10_000), 28, dev)?;
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
    Ok(
        json!({"samples": n, "confident": fake.confident, "test_confident": real.confident,
              "histogram": fake.histogram, "frechet_distance": fd}),
    )
}

/// Writes `value` as JSON to `path` (an error names `flag`).
fn write_json(flag: &'static str, path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::invalid(flag, format!("{}: {e}", path.display())))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| Error::invalid(flag, format!("{}: {e}", path.display())))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.batch_size == 0 || args.log_every == 0 {
        return Err(Error::invalid("--batch-size/--log-every", "must be ≥ 1"));
    }
    let mode = match args.sample_mode.as_str() {
        "train" => SampleMode::Train,
        "eval" => SampleMode::Eval,
        other => {
            return Err(Error::invalid(
                "--sample-mode",
                format!("{other:?}: train or eval"),
            ));
        }
    };
    for (flag, dir) in [
        ("--out-dir", Some(&args.out_dir)),
        ("--checkpoint-dir", args.checkpoint_dir.as_ref()),
        ("--tensorboard", args.tensorboard.as_ref()),
    ] {
        if let Some(d) = dir {
            wgnn::cli::check_output_dir(flag, d)?;
        }
    }
    let dev = Device::from_spec(&args.device)?;
    let mnist = Mnist::load(&data_dir(&args)?)?;
    if let Some(path) = &args.score_samples {
        let samples = load_samples(path, &dev)?;
        let s = score(&args, &mnist, &samples, &dev)?;
        let out = args.out_dir.join("score.json");
        write_json(
            "--out-dir",
            &out,
            &json!({"samples_file": path.display().to_string(), "dataset": args.dataset,
                    "score": s}),
        )?;
        println!("score: {}", out.display());
        return Ok(());
    }
    manual_seed(args.seed);
    let data = images(&args, &mnist, &dev)?;
    let size = args.resize;
    let mut g = dcgan::generator(size, args.nz, args.ngf, 1, &dev)?;
    let mut d = dcgan::discriminator(size, args.ndf, 1, &dev)?;
    dcgan::dcgan_init(&mut g)?;
    dcgan::dcgan_init(&mut d)?;
    let mut opt_g = Optimizer::adam(args.lr, args.beta1, 0.999);
    let mut opt_d = Optimizer::adam(args.lr, args.beta1, 0.999);
    let fixed = randn([64, args.nz, 1, 1], &dev)?;
    let (mut first, mut run_id) = (0, checkpoint::new_run_id());
    if let Some(dir) = &args.resume {
        let (done, id) = resume(dir, &mut g, &mut d, &mut opt_g, &mut opt_d)?;
        first = done;
        run_id = id.unwrap_or(run_id);
    }
    if let Some(dir) = &args.checkpoint_dir {
        for sub in net_dirs(dir) {
            checkpoint::check_dir(&sub, args.resume.as_ref().map(|_| run_id.as_str()))?;
            std::fs::create_dir_all(&sub).map_err(|e| Error::io(&sub, e))?;
        }
    }
    let set = TensorDataset::new(vec![data.clone()])?;
    let mut loader = DataLoader::new(&set, args.batch_size)?
        .shuffle(args.seed)
        .drop_last(true);
    loader.set_epoch(first);
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
    let mut board = match &args.tensorboard {
        Some(dir) => Some(SummaryWriter::new(dir)?),
        None => None,
    };
    let mut epochs = match args.resume {
        Some(_) => earlier_epochs(&args, first),
        None => Vec::new(),
    };
    let mut metrics = json!({"dataset": args.dataset, "size": size, "device": dev.to_string(),
                             "batch_size": args.batch_size, "seed": args.seed,
                             "threads": rayon::current_num_threads(),
                             "sample_mode": args.sample_mode, "epochs": epochs});
    let metrics_path = args.out_dir.join("metrics.json");
    const NAMES: [&str; 5] = ["loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2"];
    for epoch in first..args.epochs {
        manual_seed(epoch_seed(args.seed, epoch));
        let start = Instant::now();
        let batches = loader.len();
        let mut sum = Tensor::zeros([5], DType::F32, &dev)?;
        for (i, batch) in loader.epoch().enumerate() {
            let real = &batch?[0];
            let step = dcgan::train_step(&mut g, &mut d, &mut opt_g, &mut opt_d, real, args.nz)?;
            let row = step.stacked()?;
            sum = (&sum + &row)?;
            if (i + 1) % args.log_every == 0 || i + 1 == batches {
                let r = row.to_vec::<f32>()?;
                println!(
                    "[{}/{}][{}/{}] Loss_D: {:.4} Loss_G: {:.4} D(x): {:.4} D(G(z)): {:.4} / {:.4}",
                    epoch + 1,
                    args.epochs,
                    i + 1,
                    batches,
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4]
                );
                if let Some(b) = &mut board {
                    let it = (epoch * batches + i + 1) as i64;
                    for (name, v) in NAMES.iter().zip(&r) {
                        b.add_scalar(&format!("iteration/{name}"), *v, it)?;
                    }
                }
            }
        }
        let total = sum.to_vec::<f32>()?;
        let secs = start.elapsed().as_secs_f64();
        let fig = EpochFigures {
            epoch: epoch + 1,
            means: std::array::from_fn(|k| total[k] as f64 / batches as f64),
            images_per_sec: (batches * args.batch_size) as f64 / secs,
        };
        let image = grid(&generate(&mut g, &fixed, mode)?, 8)?;
        let path = args
            .out_dir
            .join(format!("samples_epoch_{}.png", epoch + 1));
        image.save_png(&path)?;
        let m = &fig.means;
        println!(
            "epoch {}/{}: Loss_D {:.4}, Loss_G {:.4}, D(x) {:.4}, D(G(z)) {:.4} / {:.4}, {:.0} images/s; \
             samples: {}",
            epoch + 1,
            args.epochs,
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            fig.images_per_sec,
            path.display()
        );
        if let Some(b) = &mut board {
            let step = (epoch + 1) as i64;
            for (name, v) in NAMES.iter().zip(m) {
                b.add_scalar(&format!("epoch/{name}"), *v as f32, step)?;
            }
            b.add_scalar("epoch/images_per_sec", fig.images_per_sec as f32, step)?;
            b.add_image("samples", &image, step)?;
        }
        if let Some(dir) = &args.checkpoint_dir {
            let [gd, dd] = net_dirs(dir);
            for name in [
                format!("epoch-{}.safetensors", epoch + 1),
                "last.safetensors".into(),
            ] {
                checkpoint::save_in_run(&gd.join(&name), &mut g, &opt_g, epoch + 1, &run_id)?;
                checkpoint::save_in_run(&dd.join(&name), &mut d, &opt_d, epoch + 1, &run_id)?;
            }
        }
        epochs.push(fig.to_json());
        metrics["epochs"] = json!(epochs);
        write_json("--out-dir", &metrics_path, &metrics)?;
    }
    if args.interpolate {
        interpolation(&mut g, &args, mode, &dev)?;
    }
    if args.score {
        let samples = draw_samples(&mut g, &args, mode, &dev)?;
        let path = args.out_dir.join("samples.safetensors");
        StateDict::from_iter([("samples".to_string(), samples.clone())]).save(&path)?;
        println!("samples: {}", path.display());
        metrics["score"] = score(&args, &mnist, &samples, &dev)?;
        write_json("--out-dir", &metrics_path, &metrics)?;
    }
    Ok(())
}
