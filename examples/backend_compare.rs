//! Where the time of a CNN goes, and what each backend buys — the book's ch.8 "GPU speed-up"
//! topic, measured. For every backend and dtype it times (device synchronised inside the timed
//! region, warm-up excluded, median of several runs):
//! (a) matmul at 256…4096 (as time allows), (b) each DeepConvNet conv layer forward and
//! backward at batch 100, (c) max-pool, ReLU and softmax-CE, (d) a full DeepConvNet training
//! step at batch 100 with its per-step accounting (and, with `--gpu-timestamps`, its GPU time
//! per kernel), and (e) that step's time split by layer.
//! Each row gives GFLOP/s or GB/s, the % of the backend's measured FMA peak or copy
//! bandwidth, and the speed-up over the CPU backend.
//!
//! ```text
//! cargo run --release --example backend_compare -- --quick
//! cargo run --release --example backend_compare -- --device all --dtype all --json results.json
//! ```

use clap::Parser;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use wgnn::bench::{copy_bandwidth_gbs, fma_peak_gflops, time_median};
use wgnn::data::{DeviceDataset, Mnist};
use wgnn::models::deep_convnet;
use wgnn::nn::cross_entropy;
use wgnn::ops::Kernels;
use wgnn::optim::{LossScaler, Optimizer};
use wgnn::train::{train_step, train_step_mixed};
use wgnn::{DType, Device, Result, Tensor};

/// Compare the CPU backend and the GPU adapters op by op.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Backends: all, cpu, gpu or gpu:N.
    #[arg(long, default_value = "all")]
    device: String,
    /// Dtypes: f32, f16 or all (f16 where the device supports it).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Fewer sizes and repetitions (a few minutes on a software GPU).
    #[arg(long)]
    quick: bool,
    /// Also write the rows as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Sections to run, comma-separated: matmul, conv, memory, step, split (default all).
    #[arg(long, default_value = "matmul,conv,memory,step,split")]
    sections: String,
    /// With the step section: time every kernel of one training step on the GPU (timestamp
    /// queries, on adapters with TIMESTAMP_QUERY) and print where its GPU time goes.
    #[arg(long)]
    gpu_timestamps: bool,
    /// Autotune the GEMMs (`GpuContext::set_autotune`) and print what it chose.
    #[arg(long)]
    autotune: bool,
}

#[derive(Serialize, Clone)]
struct Row {
    backend: String,
    dtype: String,
    section: String,
    op: String,
    ms: f64,
    /// GFLOP/s for compute rows, GB/s for memory rows.
    rate: f64,
    unit: &'static str,
    pct_of_peak: f64,
    speedup_vs_cpu: Option<f64>,
}

struct Backend {
    label: String,
    device: Device,
    fma_gflops: f64,
    copy_gbs: f64,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn backends(spec: &str) -> Result<Vec<Device>> {
    Ok(match spec {
        "all" => {
            let mut v = vec![Device::cpu()];
            for s in Device::list() {
                v.push(Device::gpu_by_index(s.index)?);
            }
            v
        }
        other => vec![Device::from_spec(other)?],
    })
}

fn rand(shape: &[usize], dtype: DType, seed: u64, dev: &Device) -> Result<Tensor> {
    Tensor::randn(shape, 0.0, 1.0, seed, dev)?.to_dtype(dtype)
}

/// DeepConvNet's conv layers at batch 100: (name, C in, C out, H = W, pad).
const CONVS: [(&str, usize, usize, usize, usize); 6] = [
    ("conv1", 1, 16, 28, 1),
    ("conv2", 16, 16, 28, 1),
    ("conv3", 16, 32, 14, 1),
    ("conv4", 32, 32, 14, 2),
    ("conv5", 32, 64, 8, 1),
    ("conv6", 64, 64, 8, 1),
];
const BATCH: usize = 100;

fn run(args: Args) -> Result<()> {
    let dtypes: Vec<DType> = match args.dtype.as_str() {
        "f32" => vec![DType::F32],
        "f16" => vec![DType::F16],
        "all" => vec![DType::F32, DType::F16],
        other => {
            return Err(wgnn::Error::invalid(
                "--dtype",
                format!("unknown dtype \"{other}\" (f32, f16, all)"),
            ));
        }
    };
    let reps = if args.quick { 3 } else { 7 };
    let known = ["matmul", "conv", "memory", "step", "split"];
    let sections: Vec<&str> = args.sections.split(',').map(str::trim).collect();
    if let Some(bad) = sections.iter().find(|s| !known.contains(s)) {
        return Err(wgnn::Error::invalid(
            "--sections",
            format!("unknown section \"{bad}\" (one of {})", known.join(", ")),
        ));
    }
    let want = |s: &str| sections.contains(&s);
    let mnist = Mnist::load_default()?;
    let batch_split = mnist.train.take(BATCH * 4);
    let mut rows: Vec<Row> = Vec::new();
    let mut accounting = Vec::new();
    let mut kernel_tables = Vec::new();
    for device in backends(&args.device)? {
        let b = Backend {
            label: device.to_string(),
            fma_gflops: fma_peak_gflops(&device)?,
            copy_gbs: copy_bandwidth_gbs(&device)?,
            device,
        };
        println!(
            "{}: FMA peak {:.1} GFLOP/s, copy bandwidth {:.1} GB/s",
            b.label, b.fma_gflops, b.copy_gbs
        );
        if let Some(ctx) = b.device.gpu_context() {
            ctx.set_autotune(args.autotune);
        }
        for &dtype in &dtypes {
            if dtype == DType::F16 && b.device.gpu_context().is_some_and(|c| !c.supports_f16()) {
                println!("{}: no SHADER_F16, f16 rows skipped", b.label);
                continue;
            }
            let dev = &b.device;
            let mut push = |section: &str, op: String, secs: f64, work: f64, compute: bool| {
                let rate = work / secs / 1e9;
                let peak = if compute { b.fma_gflops } else { b.copy_gbs };
                rows.push(Row {
                    backend: b.label.clone(),
                    dtype: dtype.name().into(),
                    section: section.into(),
                    op,
                    ms: secs * 1e3,
                    rate,
                    unit: if compute { "GFLOP/s" } else { "GB/s" },
                    pct_of_peak: 100.0 * rate / peak,
                    speedup_vs_cpu: None,
                });
            };

            // (a) matmul, growing while a run stays under a few seconds.
            let sizes: &[usize] = if args.quick {
                &[256, 512, 1024]
            } else {
                &[256, 512, 1024, 2048, 4096]
            };
            let mut last = 0.0;
            for &n in sizes.iter().filter(|_| want("matmul")) {
                if last * 8.0 > if args.quick { 2.0 } else { 10.0 } {
                    break;
                }
                let a = rand(&[n, n], dtype, 1, dev)?;
                let c = rand(&[n, n], dtype, 2, dev)?;
                let secs = time_median(dev, reps, || a.matmul_t(&c, false, false).map(|_| ()))?;
                last = secs;
                push(
                    "matmul",
                    format!("matmul {n}³"),
                    secs,
                    2.0 * (n as f64).powi(3),
                    true,
                );
            }

            // (b) conv layers.
            for (name, cin, cout, hw, pad) in CONVS.into_iter().filter(|_| want("conv")) {
                let x = rand(&[BATCH, cin, hw, hw], dtype, 3, dev)?;
                let w = rand(&[cout, cin, 3, 3], dtype, 4, dev)?;
                let bias = rand(&[cout], dtype, 5, dev)?;
                let y = x.conv2d(&w, &bias, 1, pad)?;
                let dy = rand(y.dims(), dtype, 6, dev)?;
                let (oh, ow) = (y.dims()[2], y.dims()[3]);
                let flops = 2.0 * (BATCH * oh * ow * cout * cin * 9) as f64;
                let f = time_median(dev, reps, || x.conv2d(&w, &bias, 1, pad).map(|_| ()))?;
                push("conv", format!("{name} forward"), f, flops, true);
                let bw = time_median(dev, reps, || x.conv2d_backward(&w, &dy, 1, pad).map(|_| ()))?;
                push("conv", format!("{name} backward"), bw, 2.0 * flops, true);
            }

            // (c) memory-bound ops at pool1's input / the logits.
            if want("memory") {
                let x = rand(&[BATCH, 16, 28, 28], dtype, 7, dev)?;
                let bytes = (x.numel() * dtype.size()) as f64;
                let secs = time_median(dev, reps, || x.max_pool2d(2, 2, 2, 0).map(|_| ()))?;
                push(
                    "memory",
                    "max-pool 2×2 forward".into(),
                    secs,
                    bytes * 1.25 + bytes / dtype.size() as f64,
                    false,
                );
                let secs = time_median(dev, reps, || x.relu().map(|_| ()))?;
                push("memory", "ReLU forward".into(), secs, 2.0 * bytes, false);
                let logits = rand(&[BATCH, 10], dtype, 8, dev)?;
                let labels = Tensor::from_vec(
                    (0..BATCH as u32).map(|i| i % 10).collect::<Vec<_>>(),
                    [BATCH],
                    dev,
                )?;
                let secs = time_median(dev, reps, || {
                    let (_, probs) = logits.softmax_cross_entropy(&labels)?;
                    probs
                        .softmax_cross_entropy_backward(&labels, 1.0)
                        .map(|_| ())
                })?;
                push(
                    "memory",
                    "softmax-CE forward+backward".into(),
                    secs,
                    (logits.numel() * dtype.size() * 4) as f64,
                    false,
                );
            }

            // (d) a full training step (f16 ⇒ the mixed-precision step).
            let data = DeviceDataset::from_mnist(&batch_split, dev)?;
            let order = data.ordered()?;
            let (bx, bt) = data.batch(&order, 0, BATCH)?;
            let mut model = deep_convnet(dev, 0)?;
            let mut opt = Optimizer::adam(0.001, 0.9, 0.999);
            let mut scaler = if dtype == DType::F16 {
                Some(LossScaler::standard(dev)?)
            } else {
                None
            };
            let mut step = || -> Result<()> {
                match &mut scaler {
                    Some(s) => train_step_mixed(&mut model, &cross_entropy, &mut opt, s, &bx, &bt)?,
                    None => train_step(&mut model, &cross_entropy, &mut opt, &bx, &bt)?,
                };
                dev.flush()
            };
            if want("step") {
                // Memory: the pool's footprint after one step from a trimmed pool (every buffer
                // the step needed at once, rounded to size classes, plus the model and data).
                if let Some(ctx) = dev.gpu_context() {
                    dev.sync()?;
                    ctx.trim_pool();
                }
                step()?;
                dev.sync()?;
                let held = dev.counters().live_buffer_bytes;
                let before = dev.counters();
                step()?;
                let c = dev.counters().since(&before);
                // Host time to record and submit one step (the GPU is idle at the start and
                // its execution is not waited for): the median of several.
                let mut record = Vec::new();
                for _ in 0..reps.max(5) {
                    dev.sync()?;
                    let t = Instant::now();
                    step()?;
                    record.push(t.elapsed().as_secs_f64());
                }
                dev.sync()?;
                record.sort_by(f64::total_cmp);
                let record_ms = record[record.len() / 2] * 1e3;
                let secs = time_median(dev, reps.min(5), &mut step)?;
                let step_flops = 3.0 * train_flops_forward();
                push(
                    "step",
                    format!(
                        "DeepConvNet training step ({} img/s)",
                        (BATCH as f64 / secs).round()
                    ),
                    secs,
                    step_flops,
                    true,
                );
                accounting.push(format!(
                "{} {}: {} submits, {} dispatches, {} bytes uploaded, {} bytes read back per training step; host records a step in {record_ms:.2} ms; GPU memory after a step from a trimmed pool {:.1} MB",
                b.label,
                dtype.name(),
                c.submits,
                c.dispatches,
                c.bytes_uploaded,
                c.bytes_read_back,
                held as f64 / 1e6
            ));
                if args.gpu_timestamps {
                    kernel_tables.push(kernel_table(dev, &b.label, dtype, secs, &mut step)?);
                }
            }

            // (e) the step's time split by layer (synchronised per layer).
            if dtype == DType::F32 && want("split") {
                let times = model.profile_step(&bx, &|logits| cross_entropy(logits, &bt))?;
                let total: f64 = times.iter().map(|t| t.1 + t.2).sum();
                for (name, f, bw) in times {
                    let share = 100.0 * (f + bw) / total;
                    rows.push(Row {
                        backend: b.label.clone(),
                        dtype: dtype.name().into(),
                        section: "split".into(),
                        op: format!(
                            "{name}: forward {:.2} ms + backward {:.2} ms",
                            f * 1e3,
                            bw * 1e3
                        ),
                        ms: (f + bw) * 1e3,
                        rate: share,
                        unit: "% of step",
                        pct_of_peak: f64::NAN,
                        speedup_vs_cpu: None,
                    });
                }
            }
        }
        if let Some(ctx) = b.device.gpu_context().filter(|_| args.autotune) {
            let mut table = format!(
                "autotuned GEMMs on {}:\n\n| shape class | chosen | ms |\n|---|---|---|\n",
                b.label
            );
            for (class, cfg, ms) in ctx.tuned_gemms() {
                table += &format!("| {class} | {cfg} | {ms:.3} |\n");
            }
            kernel_tables.push(table);
        }
    }

    // Speed-up of every row over the CPU row with the same op and dtype.
    let cpu_label = Device::cpu().to_string();
    let cpu_rows: Vec<Row> = rows
        .iter()
        .filter(|r| r.backend == cpu_label)
        .cloned()
        .collect();
    for r in rows.iter_mut() {
        let base = cpu_rows.iter().find(|c| {
            c.op.split(" (").next() == r.op.split(" (").next()
                && c.dtype == r.dtype
                && c.section == r.section
        });
        r.speedup_vs_cpu = base.filter(|_| r.section != "split").map(|c| c.ms / r.ms);
    }

    println!();
    println!("| backend | dtype | op | time (ms) | rate | % of peak | speed-up vs CPU |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        let pct = if r.pct_of_peak.is_nan() {
            "—".to_string()
        } else {
            format!("{:.1} %", r.pct_of_peak)
        };
        let up = r
            .speedup_vs_cpu
            .map_or("—".to_string(), |s| format!("{s:.2}×"));
        println!(
            "| {} | {} | {} | {:.3} | {:.2} {} | {pct} | {up} |",
            r.backend, r.dtype, r.op, r.ms, r.rate, r.unit
        );
    }
    println!();
    for line in &accounting {
        println!("{line}");
    }
    for table in &kernel_tables {
        println!("\n{table}");
    }

    if let Some(path) = &args.json {
        let json = serde_json::json!({ "rows": rows, "accounting": accounting });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n",
        )
        .map_err(|e| wgnn::Error::io(path, e))?;
        println!("written to {}", path.display());
    }
    Ok(())
}

/// One training step with every kernel timed on the GPU, as a markdown table of GPU time per
/// kernel (GEMMs told apart by their MODE), largest first; `step_secs` is the unprofiled
/// step's wall time.
fn kernel_table(
    dev: &Device,
    label: &str,
    dtype: DType,
    step_secs: f64,
    step: &mut dyn FnMut() -> Result<()>,
) -> Result<String> {
    let Some(ctx) = dev.gpu_context().filter(|c| c.supports_timestamps()) else {
        return Ok(format!(
            "{label} {}: no timestamp queries (TIMESTAMP_QUERY) here, so no per-kernel GPU times",
            dtype.name()
        ));
    };
    dev.sync()?;
    let ((), times) = ctx.profile_kernels(step)?;
    let mut by_kernel: std::collections::BTreeMap<String, (usize, f64)> = Default::default();
    for t in &times {
        let mode = t.constants.iter().find(|c| c.0 == "MODE").map(|c| c.1);
        let what = match (t.kernel.as_str(), mode) {
            (k, Some(0)) if k.starts_with("matmul.wgsl::matmul") => format!("{k} (matmul)"),
            (k, Some(1)) => format!("{k} (conv forward)"),
            (k, Some(2)) => format!("{k} (conv input gradient)"),
            (k, Some(3)) => format!("{k} (conv weight gradient)"),
            (k, _) => k.to_string(),
        };
        let e = by_kernel.entry(what).or_default();
        e.0 += 1;
        e.1 += t.seconds;
    }
    let total: f64 = times.iter().map(|t| t.seconds).sum();
    let mut rows: Vec<_> = by_kernel.into_iter().collect();
    rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    let mut out = format!(
        "GPU time per kernel, one DeepConvNet training step on {label} {} (timestamp queries; \
         {} dispatches, {:.2} ms of kernel time vs {:.2} ms for the unprofiled step):\n\n\
         | kernel | dispatches | GPU ms | % of kernel time |\n|---|---|---|---|\n",
        dtype.name(),
        times.len(),
        total * 1e3,
        step_secs * 1e3
    );
    for (kernel, (n, secs)) in rows {
        out += &format!(
            "| {kernel} | {n} | {:.3} | {:.1} % |\n",
            secs * 1e3,
            100.0 * secs / total.max(f64::MIN_POSITIVE)
        );
    }
    Ok(out)
}

/// Forward FLOPs of one DeepConvNet batch (convs and affines; the backward is about twice).
fn train_flops_forward() -> f64 {
    let convs: f64 = CONVS
        .iter()
        .map(|&(_, cin, cout, hw, pad)| {
            let o = hw + 2 * pad - 2;
            2.0 * (BATCH * o * o * cout * cin * 9) as f64
        })
        .sum();
    convs + 2.0 * (BATCH * (1024 * 50 + 50 * 10)) as f64
}
