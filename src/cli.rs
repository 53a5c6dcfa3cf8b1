//! What the training examples share: their command-line options and the MNIST run.

use crate::data::{Dataset, DeviceDataset, Mnist};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::nn::{Sequential, cross_entropy};
use crate::ops::AugmentSpec;
use crate::optim::Optimizer;
use crate::tensor::Tensor;
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
    /// Directory with the dataset's four IDX files (default: the vendored `data/<dataset>`;
    /// for mnist $WGNN_DATA first).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Augment the training batches on the device with the dataset's recipe: MNIST rotation
    /// ±10°, scale ±10 %, shift ±2 px (Simard's elastic distortion: add
    /// `--augment-with elastic-alpha=34`);
    /// Fashion-MNIST horizontal flips, shift ±2 px, scale ±10 %, brightness and contrast
    /// ±10 % (digits are never flipped).
    #[arg(long)]
    pub augment: bool,
    /// Augment with the dataset's recipe changed by comma-separated KEY=VALUE pairs (implies
    /// --augment). Keys: rotate (degrees), scale (relative), shift (px), flip (true/false),
    /// brightness, contrast, elastic-alpha (px, 0: off), elastic-sigma (px). Example:
    /// `elastic-alpha=0,rotate=15`.
    #[arg(long, value_name = "KEY=VALUE,...")]
    pub augment_with: Option<String>,
    /// Before training, time one training step layer by layer (forward and backward, the
    /// device synchronised around each module, after one warm-up step) and print the split.
    /// The two steps update batch-norm running statistics as training steps would; the
    /// weights are not changed.
    #[arg(long)]
    pub profile: bool,
    /// Write pictures of the run into DIR: learning curves (loss.png, accuracy.png), the
    /// misclassified test images with true → predicted labels (misclassified.png; the most
    /// confident errors in confident_errors.png) and the
    /// first convolution's filters before and after training (filters_before.png,
    /// filters_after.png).
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Write TensorBoard event files into DIR while training (scalars per logged step and per
    /// epoch; with --plots also the pictures at the end): `tensorboard --logdir DIR`.
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// Write a PNG grid of augmented training images (first row: 8 originals; below:
    /// seven augmented versions of each, drawn as the trainer draws them with the seeds of
    /// epochs 0–6) to FILE before training.
    #[arg(long, value_name = "FILE")]
    pub save_augmented: Option<PathBuf>,
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
    /// Resume even from a checkpoint holding NaN or infinite values (to inspect a diverged
    /// run); refused by default.
    #[arg(long)]
    pub allow_non_finite: bool,
    /// Arithmetic: f32, mixed (f16 compute, f32 master weights, dynamic loss scaling), or
    /// auto (mixed only on a hardware GPU with SHADER_F16).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Learning-rate schedule over the run: constant (the book's), cosine (down to 0 at the
    /// last step), flat-cosine (constant for the first half of the epochs, then cosine) or
    /// step:EVERY:GAMMA (times GAMMA every EVERY epochs).
    #[arg(long, default_value = "constant")]
    pub lr_schedule: String,
    /// Ramp the learning rate up linearly over the first N epochs.
    #[arg(long, default_value_t = 0)]
    pub warmup_epochs: usize,
    /// Stop when the validation accuracy has not improved for N epochs (needs --val-split);
    /// with --checkpoint-dir, best.safetensors keeps the best epoch.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Steps between loss readbacks for the progress bar.
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// The `--augment` recipe of `dataset` (seed and offset are set per batch by the trainer).
pub fn augment_recipe(dataset: Dataset) -> AugmentSpec {
    let base = AugmentSpec {
        scale: 0.1,
        shift: 2.0,
        ..AugmentSpec::NONE
    };
    match dataset {
        // Elastic distortion (Simard's α 34, σ 4: `--augment-with elastic-alpha=34,
        // elastic-sigma=4`) lost to this affine recipe on a validation split (DeepConvNet,
        // 16 epochs: 99.12 % against 99.60 %), so it is not in the default.
        Dataset::Mnist => AugmentSpec {
            rotate: 10.0,
            elastic_sigma: 4.0,
            ..base
        },
        Dataset::FashionMnist => AugmentSpec {
            flip: true,
            brightness: 0.1,
            contrast: 0.1,
            ..base
        },
    }
}

/// `recipe` changed by `--augment-with`'s comma-separated `KEY=VALUE` pairs.
pub fn augment_overrides(recipe: AugmentSpec, pairs: &str) -> Result<AugmentSpec> {
    const OPT: &str = "--augment-with";
    let mut spec = recipe;
    for pair in pairs.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Error::invalid(OPT, format!("\"{pair}\" is not KEY=VALUE")));
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "flip" {
            spec.flip = match value {
                "true" | "1" | "on" => true,
                "false" | "0" | "off" => false,
                _ => {
                    return Err(Error::invalid(
                        OPT,
                        format!("flip takes true or false, not \"{value}\""),
                    ));
                }
            };
            continue;
        }
        let v: f32 = value
            .parse()
            .map_err(|_| Error::invalid(OPT, format!("{key}: \"{value}\" is not a number")))?;
        let field = match key {
            "rotate" => &mut spec.rotate,
            "scale" => &mut spec.scale,
            "shift" => &mut spec.shift,
            "brightness" => &mut spec.brightness,
            "contrast" => &mut spec.contrast,
            "elastic-alpha" => &mut spec.elastic_alpha,
            "elastic-sigma" => &mut spec.elastic_sigma,
            _ => {
                return Err(Error::invalid(
                    OPT,
                    format!(
                        "unknown key \"{key}\" (rotate, scale, shift, flip, brightness, \
                         contrast, elastic-alpha, elastic-sigma)"
                    ),
                ));
            }
        };
        *field = v;
    }
    Ok(spec)
}

/// Writes `--save-augmented`'s grid: the first (up to) 8 images of `train` in the top row,
/// below them seven augmented versions, each row drawn with the recipe and the seed the
/// trainer uses in epochs 0–6 of a run seeded `seed` (the batch position as in a first batch).
fn save_augmented(
    path: &std::path::Path,
    train: &DeviceDataset,
    spec: &AugmentSpec,
    seed: u64,
) -> Result<()> {
    let n = train.len().min(8);
    let (x, _) = train.batch(&train.ordered()?, 0, n)?;
    let mut rows = vec![x.clone()];
    for epoch in 0..7 {
        rows.push(x.augment(&spec.for_batch(seed, epoch, 0))?);
    }
    let all = Tensor::cat(&rows.iter().collect::<Vec<_>>(), 0)?;
    crate::image::Image::grid(&all, n, 2)?.save_png(path)?;
    println!(
        "augmented samples: {} (top row: originals; rows 2–8: seeds of epochs 0–6)",
        path.display()
    );
    Ok(())
}

/// The first 4-D parameter (a convolution's weights `[F, C, KH, KW]`) as a grid of its
/// filters, each scaled to [0, 1] on its own and enlarged to about 48 px (channel 0 only when
/// C is neither 1 nor 3); `None` for a model without one.
fn first_conv_filters(model: &mut Sequential) -> Result<Option<crate::image::Image>> {
    use crate::nn::ModuleExt;
    let Some(w) = model
        .named_parameters()
        .into_iter()
        .map(|(_, p)| p.value().clone())
        .find(|v| v.dims().len() == 4)
    else {
        return Ok(None);
    };
    let &[f, c, kh, kw] = w.dims() else {
        return Ok(None);
    };
    let keep = if c == 3 { 3 } else { 1 };
    let v = w.to_dtype(crate::DType::F32)?.to_vec::<f32>()?;
    let mut out = Vec::with_capacity(f * keep * kh * kw);
    for filter in v.chunks_exact(c * kh * kw) {
        let vals = &filter[..keep * kh * kw];
        let lo = vals.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = vals.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        out.extend(vals.iter().map(|x| (x - lo) / span));
    }
    let t = Tensor::from_vec(out, [f, keep, kh, kw], &Device::cpu())?;
    let cols = f.min(8);
    let factor = (48 / kh.max(kw)).max(1);
    Ok(Some(
        crate::image::Image::grid(&t, cols, 1)?.upscaled(factor),
    ))
}

/// Writes `misclassified.png` (the first 40 test images the model got wrong, captioned
/// "true → predicted" with the dataset's class names, as the book's `misclassified_mnist.py`)
/// and `confident_errors.png` (the 40 errors it was surest of, with that probability); none
/// when it got everything right.
fn misclassified(
    dir: &std::path::Path,
    dataset: Dataset,
    test: &DeviceDataset,
    scored: &[(u32, f32)],
    labels: &[u8],
) -> Result<Vec<PathBuf>> {
    let names = dataset.class_names();
    let mut wrong: Vec<u32> = scored
        .iter()
        .zip(labels)
        .enumerate()
        .filter(|(_, (p, t))| p.0 != **t as u32)
        .map(|(i, _)| i as u32)
        .collect();
    if wrong.is_empty() {
        return Ok(Vec::new());
    }
    let first: Vec<u32> = wrong.iter().copied().take(40).collect();
    wrong.sort_by(|&a, &b| scored[b as usize].1.total_cmp(&scored[a as usize].1));
    wrong.truncate(40);
    let mut written = Vec::new();
    for (file, picks, with_prob) in [
        ("misclassified.png", first, false),
        ("confident_errors.png", wrong, true),
    ] {
        let order = Tensor::from_vec(picks.clone(), [picks.len()], &test.device())?;
        let (x, _) = test.batch(&order, 0, picks.len())?;
        let captions: Vec<String> = picks
            .iter()
            .map(|&i| {
                let (p, prob) = scored[i as usize];
                let (t, p) = (labels[i as usize] as usize, p as usize);
                let text = format!("{} → {}", names[t], names.get(p).copied().unwrap_or("?"));
                if with_prob {
                    format!("{text} ({:.0}%)", 100.0 * prob)
                } else {
                    text
                }
            })
            .collect();
        let scale = if x.dims()[2] <= 32 { 3 } else { 1 };
        let path = dir.join(file);
        crate::plot::captioned_grid(&x, &captions, 8, scale)?.save_png(&path)?;
        written.push(path);
    }
    Ok(written)
}

/// Test accuracy per class, by name, and the three commonest confusions ("Shirt taken for
/// T-shirt/top 112×"), from the predictions and the true labels.
pub fn class_report(dataset: Dataset, preds: &[u32], labels: &[u8]) -> String {
    let names = dataset.class_names();
    let mut confusion = [[0usize; 10]; 10];
    for (&p, &t) in preds.iter().zip(labels) {
        if (p as usize) < 10 && (t as usize) < 10 {
            confusion[t as usize][p as usize] += 1;
        }
    }
    let mut s = String::from("test accuracy per class:");
    for (c, row) in confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        if total > 0 {
            let acc = 100.0 * row[c] as f64 / total as f64;
            s += &format!(" {} {acc:.1}%,", names[c]);
        }
    }
    s.pop();
    s.push('\n');
    let mut errors: Vec<(usize, usize, usize)> = (0..10)
        .flat_map(|t| (0..10).map(move |p| (t, p)))
        .filter(|&(t, p)| t != p && confusion[t][p] > 0)
        .map(|(t, p)| (confusion[t][p], t, p))
        .collect();
    errors.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    if !errors.is_empty() {
        let top: Vec<String> = errors
            .iter()
            .take(3)
            .map(|&(n, t, p)| format!("{} taken for {} {n}×", names[t], names[p]))
            .collect();
        s += &format!("commonest confusions: {}\n", top.join(", "));
    }
    s
}

/// `--profile`: one warm-up step, then one timed layer by layer, printed as a table.
fn profile(model: &mut Sequential, train: &DeviceDataset, batch_size: usize) -> Result<()> {
    use crate::nn::ModuleExt;
    let n = batch_size.min(train.len());
    let (x, t) = train.batch(&train.ordered()?, 0, n)?;
    let loss = |logits: &Tensor| cross_entropy(logits, &t);
    model.profile_step(&x, &loss)?;
    let times = model.profile_step(&x, &loss)?;
    model.zero_grad();
    let total: f64 = times.iter().map(|(_, f, b)| f + b).sum();
    println!(
        "one training step of {n} images, layer by layer ({:.1} ms in all):",
        total * 1e3
    );
    println!("| module | forward ms | backward ms | share |");
    println!("|---|---|---|---|");
    for (name, f, b) in &times {
        println!(
            "| {name} | {:.2} | {:.2} | {:.1} % |",
            f * 1e3,
            b * 1e3,
            100.0 * (f + b) / total
        );
    }
    Ok(())
}

impl TrainArgs {
    /// Checks every output path before any data loads, so that a run's figures are not lost
    /// after it trained: a directory option must not name a file (it is created when
    /// missing), a file option must not name a directory and its directory must exist.
    pub fn check_outputs(&self) -> Result<()> {
        let dirs = [
            ("--plots", &self.plots),
            ("--tensorboard", &self.tensorboard),
            ("--checkpoint-dir", &self.checkpoint_dir),
        ];
        for (flag, path) in dirs {
            if let Some(p) = path {
                check_output_dir(flag, p)?;
            }
        }
        if let Some(dir) = &self.checkpoint_dir {
            // Only the resumed run's own checkpoints may be there.
            let run_id = match &self.resume {
                Some(path) => crate::train::checkpoint::run_id_of(path)
                    .map_err(|e| Error::invalid("--resume", e.to_string()))?,
                None => None,
            };
            crate::train::checkpoint::check_dir(dir, run_id.as_deref())
                .map_err(|e| Error::invalid("--checkpoint-dir", e.to_string()))?;
        }
        let files = [
            ("--metrics-out", &self.metrics_out),
            ("--save-augmented", &self.save_augmented),
        ];
        for (flag, path) in files {
            if let Some(p) = path {
                check_output_file(flag, p)?;
            }
        }
        Ok(())
    }
}

/// A comma-separated list of seeds (`0,1,2`); an error naming `flag` and the bad entry.
pub fn parse_seeds(flag: &'static str, list: &str) -> Result<Vec<u64>> {
    list.split(',')
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|_| Error::invalid(flag, format!("{s:?} is not a seed")))
        })
        .collect()
}

/// A directory for outputs: created when missing; an error naming `flag` when `path` is a
/// file or cannot be created.
pub fn check_output_dir(flag: &'static str, path: &std::path::Path) -> Result<()> {
    if path.exists() && !path.is_dir() {
        return Err(Error::invalid(
            flag,
            format!("{} is a file, not a directory", path.display()),
        ));
    }
    std::fs::create_dir_all(path).map_err(|e| {
        Error::invalid(
            flag,
            format!("cannot create the directory {}: {e}", path.display()),
        )
    })
}

/// A file to write at the end of a run: an error naming `flag` when `path` is a directory or
/// its directory does not exist.
pub fn check_output_file(flag: &'static str, path: &std::path::Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::invalid(
            flag,
            format!("{} is a directory, not a file", path.display()),
        ));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = parent
        && !dir.is_dir()
    {
        return Err(Error::invalid(
            flag,
            format!(
                "the directory {} of {} does not exist",
                dir.display(),
                path.display()
            ),
        ));
    }
    Ok(())
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
    args.check_outputs()?;
    // The optimizer first: --lr=-1 or --weight-decay=nan are refused before any data loads.
    let mut opt = Optimizer::by_name(&args.optimizer, args.lr)?;
    if let Some(lambda) = args.weight_decay {
        opt = opt.with_weight_decay(lambda);
    }
    opt.validate()
        .map_err(|e| Error::invalid("--lr/--weight-decay", e.to_string()))?;
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
    let filters_before = first_conv_filters(&mut model)?;
    if args.profile {
        profile(&mut model, &train, args.batch_size.unwrap_or(100))?;
    }
    println!(
        "optimizer {:?} lr {} ({lr_schedule:?} schedule), batch {}, {} epochs, seed {}",
        opt.kind(),
        opt.lr(),
        batch_size,
        args.epochs,
        args.seed
    );
    let augment = match &args.augment_with {
        Some(pairs) => Some(augment_overrides(augment_recipe(dataset), pairs)?),
        None => args.augment.then(|| augment_recipe(dataset)),
    };
    if let Some(spec) = &augment {
        println!("augmentation on the device: {spec:?}");
    }
    if let Some(path) = &args.save_augmented {
        let Some(spec) = &augment else {
            return Err(Error::invalid(
                "--save-augmented",
                "needs --augment or --augment-with (there is nothing to show)",
            ));
        };
        save_augmented(path, &train, spec, args.seed)?;
    }
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch_size,
        seed: args.seed,
        log_every: args.log_every,
        progress: !args.no_progress,
        checkpoint_dir: args.checkpoint_dir.clone(),
        resume: args.resume.clone(),
        allow_non_finite: args.allow_non_finite,
        precision,
        lr_schedule,
        augment,
        tensorboard: args.tensorboard.clone(),
        verbose: true,
        warmup_epochs: args.warmup_epochs,
        patience: args.patience,
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
    println!("{}", metrics.summary());
    let scored = crate::train::predict_confidence(&mut model, &test, batch_size)?;
    let preds: Vec<u32> = scored.iter().map(|p| p.0).collect();
    print!("{}", class_report(dataset, &preds, &test_split.labels));
    if let Some(dir) = &args.plots {
        let mut written = crate::plot::learning_curves(&metrics, name, dir)?;
        written.extend(misclassified(
            dir,
            dataset,
            &test,
            &scored,
            &test_split.labels,
        )?);
        if let (Some(before), Some(after)) = (filters_before, first_conv_filters(&mut model)?) {
            for (img, file) in [(before, "filters_before.png"), (after, "filters_after.png")] {
                img.save_png(dir.join(file))?;
                written.push(dir.join(file));
            }
        }
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        println!("plots: {}", names.join(", "));
        if let Some(tb) = &args.tensorboard {
            // The pictures too, as images in a second event file of the same run.
            let mut w = crate::tensorboard::SummaryWriter::new(tb)?;
            let step = metrics.epochs.len() as i64;
            for p in &written {
                let png = std::fs::read(p).map_err(|e| Error::io(p, e))?;
                let tag = p
                    .file_stem()
                    .map_or("plot".into(), |s| s.to_string_lossy().into_owned());
                w.add_png(&format!("plots/{tag}"), &png, step)?;
            }
        }
    }
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

/// One contender of a [`compare_runs`] experiment: a name, its model and its optimizer.
pub struct Contender {
    /// Row and legend label.
    pub name: String,
    /// The model, freshly initialised.
    pub model: Sequential,
    /// Its optimizer.
    pub opt: Optimizer,
}

/// What [`compare_runs`] measured: per contender, the mean training loss of each block of
/// `every` iterations and the final test accuracy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// Contender names, in order.
    pub names: Vec<String>,
    /// Iterations per block.
    pub every: usize,
    /// Iterations in all.
    pub iterations: usize,
    /// `mean_loss[block][contender]`.
    pub mean_loss: Vec<Vec<f64>>,
    /// Test accuracy of each contender after training.
    pub test_accuracy: Vec<f64>,
}

/// The book's ch.6 experiment loop: each contender trains `iterations` steps of `batch_size`
/// on `train` (the same seeded batches for all), reporting its mean loss per `every`
/// iterations (one readback per block), then is evaluated on `test`. Prints one line per
/// contender as it finishes.
pub fn compare_runs(
    contenders: Vec<Contender>,
    train: &DeviceDataset,
    test: &DeviceDataset,
    iterations: usize,
    batch_size: usize,
    every: usize,
    seed: u64,
) -> Result<Comparison> {
    if every == 0 || batch_size == 0 || iterations == 0 || batch_size > train.len() {
        return Err(Error::invalid(
            "compare_runs",
            format!(
                "every {every}, batch {batch_size} and iterations {iterations} must be positive, \
                 the batch at most the {} training examples",
                train.len()
            ),
        ));
    }
    let device = train.device();
    let blocks = iterations.div_ceil(every);
    let mut cmp = Comparison {
        names: contenders.iter().map(|c| c.name.clone()).collect(),
        every,
        iterations,
        mean_loss: vec![vec![0f64; contenders.len()]; blocks],
        test_accuracy: Vec::new(),
    };
    for (j, mut c) in contenders.into_iter().enumerate() {
        let t0 = Instant::now();
        let (mut epoch, mut offset) = (0, 0);
        let mut order = train.shuffled(seed, epoch)?;
        let mut block_sum = Tensor::zeros([1], crate::DType::F32, &device)?;
        for it in 0..iterations {
            if offset + batch_size > train.len() {
                epoch += 1;
                order = train.shuffled(seed, epoch)?;
                offset = 0;
            }
            let (x, t) = train.batch(&order, offset, batch_size)?;
            offset += batch_size;
            let (loss, _) =
                crate::train::train_step(&mut c.model, &cross_entropy, &mut c.opt, &x, &t)?;
            block_sum.axpy_(1.0, &loss.reshape([1])?)?;
            if (it + 1) % every == 0 || it + 1 == iterations {
                let n = (it % every + 1) as f64;
                cmp.mean_loss[it / every][j] = block_sum.item()? as f64 / n;
                block_sum.fill_(0.0)?;
            } else {
                device.flush()?;
            }
        }
        let acc = crate::train::evaluate(&mut c.model, test, 500)?;
        println!(
            "{:>12}: {iterations} iterations in {:.1} s, final block loss {:.4}, test accuracy {:.2}%",
            c.name,
            t0.elapsed().as_secs_f64(),
            cmp.mean_loss[blocks - 1][j],
            100.0 * acc
        );
        cmp.test_accuracy.push(acc);
    }
    Ok(cmp)
}

impl Comparison {
    /// The loss table as Markdown, with a last row of test accuracies.
    pub fn table(&self) -> String {
        let mut s = String::from("| iterations |");
        self.names.iter().for_each(|n| s += &format!(" {n} |"));
        s += "\n|---|";
        self.names.iter().for_each(|_| s += "---|");
        s.push('\n');
        for (b, row) in self.mean_loss.iter().enumerate() {
            let end = ((b + 1) * self.every).min(self.iterations);
            s += &format!("| {}–{} |", b * self.every + 1, end);
            row.iter().for_each(|v| s += &format!(" {v:.4} |"));
            s.push('\n');
        }
        s += "| test accuracy |";
        self.test_accuracy
            .iter()
            .for_each(|a| s += &format!(" {:.2} % |", 100.0 * a));
        s.push('\n');
        s
    }

    /// The loss curves as a chart (x: iterations at each block's end; y: its mean loss).
    pub fn chart(&self, title: &str) -> crate::plot::LineChart {
        let series = self
            .names
            .iter()
            .enumerate()
            .map(|(j, n)| {
                let pts = self
                    .mean_loss
                    .iter()
                    .enumerate()
                    .map(|(b, row)| (((b + 1) * self.every).min(self.iterations) as f64, row[j]))
                    .collect();
                crate::plot::Series {
                    name: n.clone(),
                    points: pts,
                    markers: false,
                    bars: false,
                    lines: true,
                }
            })
            .collect();
        crate::plot::LineChart {
            title: title.into(),
            x_label: "iterations".into(),
            y_label: "training loss (mean per block)".into(),
            series,
            y_range: None,
        }
    }
}
