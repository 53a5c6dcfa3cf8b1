//! What the training examples share: their command-line options and the MNIST run.

use crate::data::{Dataset, DeviceDataset, Mnist};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{Sequential, cross_entropy};
use crate::optim::Optimizer;
use crate::train::{LrSchedule, Metrics, Precision, TrainConfig, fit_validated};
use std::path::PathBuf;
use std::time::Instant;

/// Options of `vgg_like`, `simple_convnet` and friends (flattened into each example's clap
/// parser, which sets the defaults that differ).
#[derive(clap::Args, Clone, Debug)]
pub struct TrainArgs {
    /// Device: cpu, gpu, gpu:N or auto (a hardware GPU if present, else the CPU).
    #[arg(long, default_value = "auto", env = "WGNN_DEVICE")]
    pub device: String,
    /// Seed for initial weights, dropout masks and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epochs.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Mini-batch size (default: the book's 100; the zoo: d2l's per model).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate (default: the optimizer's book default).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Optimizer: sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Weight decay λ (L2 in the gradient; decoupled for adamw, whose default is 0.01;
    /// 0 for the others).
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Train on the first N training images only (quick runs).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only (default: all 10,000).
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Dataset: mnist or fashion-mnist (both vendored under data/).
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Directory with the dataset's four IDX files (default: the vendored data/<dataset>;
    /// for mnist $WGNN_DATA first).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Augment the training batches on the device with the dataset's recipe: MNIST rotation
    /// ±10°, scale ±10 %, shift ±2 px; Fashion-MNIST horizontal flips, shift ±2 px, scale ±10 %,
    /// brightness and contrast ±10 % (digits are never flipped).
    #[arg(long)]
    pub augment: bool,
    /// Resize every batch to N×N pixels on the device (bilinear), as d2l does for the bigger
    /// nets.
    #[arg(long)]
    pub resize: Option<usize>,
    /// Hold out N training images (a seeded random choice) as a validation set, evaluated
    /// after every epoch beside the test set: choose recipes on it, not on the test set.
    #[arg(long)]
    pub val_split: Option<usize>,
    /// Write the metrics JSON here.
    #[arg(long)]
    pub metrics_out: Option<PathBuf>,
    /// Save a checkpoint after every epoch into this directory.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Resume from this checkpoint (e.g. CHECKPOINT_DIR/last.safetensors).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Arithmetic: f32, mixed (f16 compute, f32 master weights, dynamic loss scaling), or
    /// auto (mixed only on a hardware GPU with SHADER_F16).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Learning-rate schedule over the run: constant (the book's), cosine (down to 0 at the
    /// last step) or flat-cosine (constant for the first half of the epochs, then cosine).
    #[arg(long, default_value = "constant")]
    pub lr_schedule: String,
    /// Steps between loss readbacks for the progress bar.
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// The `--augment` recipe of `dataset` (seed and offset are set per batch by the trainer).
pub fn augment_recipe(dataset: Dataset) -> crate::ops::AugmentSpec {
    let base = crate::ops::AugmentSpec {
        rotate: 0.0,
        scale: 0.1,
        shift: 2.0,
        flip: false,
        brightness: 0.0,
        contrast: 0.0,
        seed: 0,
        offset: 0,
    };
    match dataset {
        Dataset::Mnist => crate::ops::AugmentSpec {
            rotate: 10.0,
            ..base
        },
        Dataset::FashionMnist => crate::ops::AugmentSpec {
            flip: true,
            brightness: 0.1,
            contrast: 0.1,
            ..base
        },
    }
}

/// Loads MNIST, builds the model with `build` on the chosen device, trains and reports.
pub fn run_mnist(
    args: &TrainArgs,
    name: &str,
    build: impl Fn(&Device, u64) -> Result<Sequential>,
) -> Result<Metrics> {
    let device = Device::from_spec(&args.device)?;
    let kind = if device.is_gpu() { "GPU" } else { "CPU" };
    println!("{name}: training on the {kind}: {device}");
    let dataset = Dataset::parse(&args.dataset)?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| dataset.default_dir());
    let t = Instant::now();
    let mnist = Mnist::load(&dir)?;
    let (train_all, val_split) = match args.val_split {
        Some(n) => {
            let (rest, held) = mnist.train.split_off_seeded(n, args.seed)?;
            (rest, Some(held))
        }
        None => (mnist.train.clone(), None),
    };
    let train_split = match args.train_limit {
        Some(0) => return Err(Error::invalid("--train-limit", "must be at least 1")),
        Some(n) => train_all.take(n),
        None => train_all,
    };
    let test_split = match args.test_limit {
        Some(0) => return Err(Error::invalid("--test-limit", "must be at least 1")),
        Some(n) => mnist.test.take(n),
        None => mnist.test.clone(),
    };
    let load = |split: &crate::data::MnistSplit| -> Result<DeviceDataset> {
        let d = DeviceDataset::from_mnist(split, &device)?;
        match args.resize {
            Some(n) => d.with_resize(n, n),
            None => Ok(d),
        }
    };
    let train = load(&train_split)?;
    let val = match &val_split {
        Some(v) => Some(load(v)?),
        None => None,
    };
    let test = load(&test_split)?;
    println!(
        "data: {} {} ({} train, {} validation, {} test images) loaded in {:.2} s",
        dataset.name(),
        dir.display(),
        train.len(),
        val.as_ref().map_or(0, |v| v.len()),
        test.len(),
        t.elapsed().as_secs_f64()
    );
    let (precision, why) = Precision::resolve(&args.precision, &device)?;
    println!("precision: {precision:?} ({why})");
    let lr_schedule = LrSchedule::parse(&args.lr_schedule)?;
    let batch_size = args.batch_size.unwrap_or(100);
    let mut model = build(&device, args.seed)?;
    print!("{}", model.layer_summary());
    let mut opt = Optimizer::by_name(&args.optimizer, args.lr)?;
    if let Some(lambda) = args.weight_decay {
        opt = opt.with_weight_decay(lambda);
    }
    println!(
        "optimizer {:?} lr {} ({lr_schedule:?} schedule), batch {}, {} epochs, seed {}",
        opt.kind(),
        opt.lr(),
        batch_size,
        args.epochs,
        args.seed
    );
    if args.augment {
        println!("augmentation on the device: {:?}", augment_recipe(dataset));
    }
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch_size,
        seed: args.seed,
        log_every: args.log_every,
        progress: !args.no_progress,
        checkpoint_dir: args.checkpoint_dir.clone(),
        resume: args.resume.clone(),
        precision,
        lr_schedule,
        augment: args.augment.then(|| augment_recipe(dataset)),
        ..TrainConfig::default()
    };
    let metrics = fit_validated(
        &mut model,
        &cross_entropy,
        &mut opt,
        &train,
        val.as_ref(),
        &test,
        &cfg,
    )?;
    println!(
        "test acc: {:.2}% on {} images; mean {:.0} training images/s on {}",
        100.0 * metrics.test_accuracy,
        metrics.test_examples,
        metrics.images_per_sec,
        metrics.device
    );
    if precision == Precision::Mixed {
        println!(
            "mixed precision: final loss scale {}, {} steps skipped",
            metrics.loss_scale, metrics.skipped_steps
        );
    }
    if device.is_gpu() {
        println!(
            "per training step: {:.2} submits, {:.1} bytes read back, {:.1} bytes uploaded",
            metrics.submits_per_step,
            metrics.bytes_read_back_per_step,
            metrics.bytes_uploaded_per_step
        );
    }
    if let Some(path) = &args.metrics_out {
        metrics.write_json(path)?;
        println!("metrics written to {}", path.display());
    }
    Ok(metrics)
}
