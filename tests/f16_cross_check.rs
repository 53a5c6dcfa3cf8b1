//! f16 kernels: every op instantiated for f16 on each adapter with SHADER_F16, against the CPU
//! reference (which widens f16 to f32, computes, and rounds back) on the same f16 inputs.
//!
//! Tolerance: both sides accumulate in f32 and round once to f16, so most results agree to
//! 1 ulp of f16 (2⁻¹⁰ relative); where the GPU rounds an intermediate to f16 that the CPU keeps
//! in f32 (conv: product, then bias; broadcast arithmetic in f16) a second ulp can appear, and
//! near cancellations the error is absolute, relative to the largest output. Hence
//! |gpu − cpu| ≤ 2⁻⁸·|cpu| + 2⁻⁹·max|cpu|.

mod common;

use half::f16;
use wgnn::ops::{DropoutSpec, Kernels};
use wgnn::{DType, Device, Result, Tensor};

enum Out {
    Float(Vec<f32>),
    Index(Vec<u32>),
}

fn read(t: &Tensor) -> Result<Out> {
    Ok(match t.dtype() {
        DType::F16 => Out::Float(t.to_vec::<f16>()?.iter().map(|v| v.to_f32()).collect()),
        DType::F32 => Out::Float(t.to_vec::<f32>()?),
        DType::U32 => Out::Index(t.to_vec::<u32>()?),
    })
}

/// f16 GPUs (SHADER_F16), opened once.
fn f16_gpus() -> Vec<Device> {
    let all = common::gpus();
    let with: Vec<Device> = all
        .iter()
        .filter(|d| d.gpu_context().is_some_and(|c| c.supports_f16()))
        .cloned()
        .collect();
    if with.len() < all.len() {
        println!(
            "f16_cross_check: {} adapter(s) without SHADER_F16 skipped",
            all.len() - with.len()
        );
    }
    with
}

/// Random f16 tensor built on the CPU (seeded normal, rounded to f16) and moved to `dev`.
fn h(shape: &[usize], std: f32, seed: u64, dev: &Device) -> Result<Tensor> {
    Tensor::randn(shape, 0.0, std, seed, &Device::cpu())?
        .to_dtype(DType::F16)?
        .to_device(dev)
}

/// Runs `f` on the CPU and on every f16 GPU and compares every output.
fn check(name: &str, f: impl Fn(&Device) -> Result<Vec<Tensor>>) {
    let want: Vec<Out> = f(&Device::cpu())
        .unwrap_or_else(|e| panic!("{name} on cpu: {e}"))
        .iter()
        .map(|t| read(t).expect("read cpu"))
        .collect();
    for dev in f16_gpus() {
        let got = f(&dev).unwrap_or_else(|e| panic!("{name} on {dev}: {e}"));
        assert_eq!(got.len(), want.len());
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.dtype(),
                if matches!(w, Out::Index(_)) {
                    DType::U32
                } else {
                    g.dtype()
                }
            );
            match (read(g).expect("read gpu"), w) {
                (Out::Index(g), Out::Index(w)) => assert_eq!(&g, w, "{name} output {k} on {dev}"),
                (Out::Float(g), Out::Float(w)) => {
                    let max = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    for (i, (a, b)) in g.iter().zip(w).enumerate() {
                        let tol = b.abs() / 256.0 + max / 512.0;
                        assert!(
                            (a - b).abs() <= tol,
                            "{name} output {k} on {dev}: element {i}: gpu {a} vs cpu {b} (tol {tol})"
                        );
                    }
                }
                _ => panic!("{name} output {k} on {dev}: dtype differs"),
            }
        }
    }
}

#[test]
fn conversions_round_like_the_half_crate() {
    let mut vals: Vec<f32> = (0..4000)
        .map(|i| ((i as f32) * 0.37).sin() * 10f32.powi(i % 12 - 6))
        .collect();
    vals.extend([
        0.0,
        -0.0,
        65504.0,
        65520.0,
        1e6,
        -1e6,
        6e-8,
        3e-8,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
    ]);
    let want: Vec<u16> = vals.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    for dev in f16_gpus() {
        println!("f16_cross_check: {dev}");
        let t = Tensor::from_slice(&vals, [vals.len()], &dev)
            .expect("upload")
            .to_dtype(DType::F16)
            .expect("f32 -> f16");
        let got: Vec<u16> = t
            .to_vec::<f16>()
            .expect("read")
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(
            got, want,
            "{dev}: f32 -> f16 rounding differs from the half crate"
        );
        let back = t
            .to_dtype(DType::F32)
            .expect("f16 -> f32")
            .to_vec::<f32>()
            .expect("read");
        let want_back: Vec<f32> = want.iter().map(|&b| f16::from_bits(b).to_f32()).collect();
        assert!(
            back.iter()
                .zip(&want_back)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{dev}: f16 -> f32 is not exact"
        );
    }
}

#[test]
fn matmul_all_transposes() {
    for (m, k, n) in [(7, 33, 17), (1, 100, 1), (64, 64, 65)] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            check(&format!("matmul {m}x{k}x{n} ta={ta} tb={tb}"), |dev| {
                let a = if ta {
                    h(&[k, m], 1.0, 1, dev)?
                } else {
                    h(&[m, k], 1.0, 1, dev)?
                };
                let b = if tb {
                    h(&[n, k], 1.0, 2, dev)?
                } else {
                    h(&[k, n], 1.0, 2, dev)?
                };
                Ok(vec![a.matmul_t(&b, ta, tb)?])
            });
        }
    }
}

#[test]
fn elementwise_and_activations() {
    check("elementwise", |dev| {
        let x = h(&[33, 7], 2.0, 3, dev)?;
        let y = h(&[33, 7], 2.0, 4, dev)?;
        let s = x.sigmoid()?;
        Ok(vec![
            x.add(&y)?,
            x.sub(&y)?,
            x.mul(&y)?,
            x.scale(0.3)?,
            x.relu()?,
            s.clone(),
            x.gelu()?,
            x.div(&s)?,
            x.maximum(&y)?,
            x.gt(&y)?,
        ])
    });
}

#[test]
fn broadcasts_and_reductions() {
    check("broadcast", |dev| {
        let x = h(&[2, 3, 5, 7], 1.0, 6, dev)?;
        let c = h(&[3, 1, 1], 1.0, 7, dev)?;
        let row = h(&[7], 1.0, 8, dev)?;
        Ok(vec![
            x.add(&c)?,
            x.mul(&row)?,
            x.sub(&row)?,
            x.sum_to(&[3, 1, 1])?,
            x.sum_to(&[7])?,
        ])
    });
    check("reductions", |dev| {
        let x = h(&[100, 33], 1.0, 9, dev)?;
        Ok(vec![
            x.sum_dim(&[0], false)?,
            x.sum_dim(&[-1], true)?,
            x.amax(&[0], false)?,
            x.logsumexp(&[-1], false)?,
            x.sum()?,
            x.mean()?,
            x.transpose_last2()?,
        ])
    });
}

#[test]
fn softmax_and_cross_entropy() {
    check("softmax", |dev| {
        let x = h(&[20, 10], 3.0, 10, dev)?;
        let dy = h(&[20, 10], 1.0, 11, dev)?;
        let labels = Tensor::from_vec(
            (0..20u32).map(|i| (i * 7) % 10).collect::<Vec<_>>(),
            [20],
            dev,
        )?;
        let y = x.softmax(-1)?;
        let (loss, probs) = x.softmax_cross_entropy(&labels)?;
        let dx = probs.softmax_cross_entropy_backward(&labels, 1.0)?;
        Ok(vec![
            y.clone(),
            dy.softmax_backward(&y)?,
            loss,
            probs,
            dx,
            x.argmax_rows()?,
            x.count_correct(&labels)?,
        ])
    });
}

#[test]
fn convolution_pooling_and_dropout() {
    check("im2col/col2im", |dev| {
        let x = h(&[2, 3, 9, 7], 1.0, 12, dev)?;
        let col = x.im2col(3, 3, 2, 1)?;
        let g = x.conv_geom(3, 3, 2, 1)?;
        Ok(vec![col.clone(), col.col2im(&g)?])
    });
    check("conv2d", |dev| {
        let x = h(&[2, 3, 10, 10], 1.0, 13, dev)?;
        let w = h(&[4, 3, 3, 3], 0.3, 14, dev)?;
        let b = h(&[4], 0.1, 15, dev)?;
        let y = x.conv2d(&w, &b, 1, 1)?;
        let dy = h(&[2, 4, 10, 10], 1.0, 16, dev)?;
        let (dx, dw, db) = x.conv2d_backward(&w, &dy, 1, 1)?;
        Ok(vec![y, dx, dw, db])
    });
    check("max_pool2d", |dev| {
        let x = h(&[2, 3, 8, 9], 1.0, 17, dev)?;
        let (y, idx) = x.max_pool2d(3, 3, 2, 1)?;
        let dy = h(y.dims(), 1.0, 18, dev)?;
        let dx = dy.max_pool2d_backward(&idx, &x.pool_geom(3, 3, 2, 1)?)?;
        Ok(vec![y, idx, dx])
    });
    check("dropout mask", |dev| {
        let spec = DropoutSpec {
            ratio: 0.3,
            scale: 1.0 / 0.7,
            seed: 42,
            offset: 5,
        };
        Ok(vec![Tensor::dropout_mask_as(
            [1000],
            DType::F16,
            &spec,
            dev,
        )?])
    });
}

#[test]
fn mixed_dtypes_are_rejected() -> Result<()> {
    for dev in common::all_devices() {
        let a = Tensor::zeros([2, 2], DType::F32, &dev)?;
        let b = Tensor::zeros([2, 2], DType::F16, &dev)?;
        let e = a.add(&b).expect_err("f32 + f16").to_string();
        assert!(
            e.contains("add") && e.contains("expected dtype f32, got f16"),
            "{e}"
        );
    }
    Ok(())
}

/// A model trained in f32 and converted to f16 classifies as well (the book's ch.8 claim):
/// on the CPU reference and with true f16 kernels on each f16 GPU.
#[test]
fn f16_inference_keeps_accuracy() -> Result<()> {
    use wgnn::data::{DeviceDataset, Mnist};
    use wgnn::models::{MlpConfig, mlp};
    use wgnn::nn::{ModuleExt, cross_entropy};
    use wgnn::optim::Optimizer;
    use wgnn::train::{TrainConfig, evaluate, fit};
    let mnist = Mnist::load_default()?;
    for dev in common::cpu_and_f16_gpus() {
        let train = DeviceDataset::from_mnist(&mnist.train.take(3000), &dev)?;
        let test = DeviceDataset::from_mnist(&mnist.test.take(1000), &dev)?;
        let mut model = mlp(&MlpConfig::new(&[784, 64, 10]), &dev, 3)?;
        let mut opt = Optimizer::adam(0.002, 0.9, 0.999);
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 100,
            progress: false,
            verbose: false,
            ..TrainConfig::default()
        };
        fit(&mut model, &cross_entropy, &mut opt, &train, &test, &cfg)?;
        let acc32 = evaluate(&mut model, &test, 250)?;
        model.to_dtype(DType::F16)?;
        assert_eq!(model.dtype(), DType::F16);
        let acc16 = evaluate(&mut model, &test, 250)?;
        println!("f16_cross_check: {dev}: accuracy f32 {acc32:.4}, f16 kernels {acc16:.4}");
        assert!(acc32 > 0.8, "{dev}: the f32 model did not learn ({acc32})");
        assert!(
            (acc16 - acc32).abs() <= 0.005,
            "{dev}: f16 inference {acc16} vs f32 {acc32}"
        );
    }
    Ok(())
}

#[test]
fn in_place_ops() {
    check("axpy_/fill_/gemm_", |dev| {
        let x = h(&[17, 9], 1.0, 20, dev)?;
        let mut y = h(&[17, 9], 1.0, 21, dev)?;
        y.axpy_(-0.75, &x)?;
        let mut f = h(&[5], 1.0, 22, dev)?;
        f.fill_(0.1)?;
        let a = h(&[17, 9], 1.0, 23, dev)?;
        let b = h(&[9, 6], 1.0, 24, dev)?;
        let mut c = h(&[17, 6], 1.0, 25, dev)?;
        c.gemm_(&a, &b, false, false, 0.5, 1.0)?;
        Ok(vec![y, f, c])
    });
}

/// Where an adapter lacks SHADER_F16 (simulated with WGNN_DISABLE_F16=1 in a child process,
/// so the rest of the suite keeps f16), asking for f16 is an error that names the adapter and
/// the missing feature, and `--precision auto` falls back to f32 saying why.
#[test]
fn f16_where_unsupported_is_a_clear_error() {
    const CHILD: &str = "WGNN_TEST_NO_F16_CHILD";
    if std::env::var_os(CHILD).is_some() {
        for dev in common::gpus() {
            let ctx = dev.gpu_context().expect("gpu");
            assert!(!ctx.supports_f16() && !ctx.summary().shader_f16);
            let x = Tensor::zeros([4], DType::F32, &dev).expect("f32 works");
            let e = x.to_dtype(DType::F16).expect_err("no f16").to_string();
            assert!(
                e.contains("SHADER_F16") && e.contains(&ctx.summary().name),
                "{e}"
            );
            let e = Tensor::zeros([4], DType::F16, &dev)
                .and_then(|h| h.relu())
                .expect_err("no f16 relu")
                .to_string();
            assert!(e.contains("relu") && e.contains("SHADER_F16"), "{e}");
            let e = wgnn::train::Precision::resolve("mixed", &dev)
                .expect_err("no mixed")
                .to_string();
            assert!(
                e.contains("SHADER_F16") && e.contains("--precision f32"),
                "{e}"
            );
            let (p, why) = wgnn::train::Precision::resolve("auto", &dev).expect("auto");
            assert_eq!(p, wgnn::train::Precision::F32);
            assert!(why.contains("SHADER_F16"), "{why}");
        }
        return;
    }
    if common::gpus().is_empty() {
        println!("f16_cross_check: no GPU, nothing to disable");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "f16_where_unsupported_is_a_clear_error",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("WGNN_DISABLE_F16", "1")
        .output()
        .expect("spawn the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child failed:\n{text}"
    );
}
