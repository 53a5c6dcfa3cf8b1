//! Mixed precision: the loss scaler's rules on every device, and short mixed runs whose loss
//! falls like the f32 run's.

mod common;

use wgnn::data::{DeviceDataset, Mnist};
use wgnn::models::{MlpConfig, mlp};
use wgnn::nn::{ModuleExt, Param, cross_entropy};
use wgnn::optim::{LossScaler, Optimizer};
use wgnn::train::{Precision, TrainConfig, fit};
use wgnn::{DType, Device, Result, Tensor};

fn param(dev: &Device) -> Result<Param> {
    Param::new(
        Tensor::from_slice(&[1.0f32, -2.0, 3.0, 0.5], [4], dev)?,
        false,
    )
}

/// Overflow ⇒ the step is skipped (weights and Adam state untouched) and the scale halves;
/// a clean step ⇒ the update uses the gradient divided by the scale.
#[test]
fn overflow_skips_the_step_and_halves_the_scale() -> Result<()> {
    for dev in common::all_devices() {
        let mut p = param(&dev)?;
        let mut opt = Optimizer::sgd(0.5);
        let mut scaler = LossScaler::new(1024.0, 2000, &dev)?;
        p.set_grad(Some(Tensor::from_slice(
            &[1.0f32, f32::INFINITY, 0.0, 2.0],
            [4],
            &dev,
        )?))?;
        opt.step_scaled([("w".to_string(), &mut p)], &mut scaler)?;
        assert_eq!(
            p.value().to_vec::<f32>()?,
            vec![1.0, -2.0, 3.0, 0.5],
            "{dev}: weights changed on overflow"
        );
        assert_eq!(
            scaler.read()?,
            (512.0, 1),
            "{dev}: scale not halved / skip not counted"
        );

        p.set_grad(Some(
            Tensor::from_slice(&[f32::NAN, 0.0, 0.0, 0.0], [4], &dev)?.to_dtype(DType::F32)?,
        ))?;
        opt.step_scaled([("w".to_string(), &mut p)], &mut scaler)?;
        assert_eq!(
            scaler.read()?,
            (256.0, 2),
            "{dev}: NaN must count as overflow"
        );

        // Scaled gradient 256·[2, 4, -8, 0] → SGD uses [2, 4, -8, 0].
        p.set_grad(Some(Tensor::from_slice(
            &[512.0f32, 1024.0, -2048.0, 0.0],
            [4],
            &dev,
        )?))?;
        opt.step_scaled([("w".to_string(), &mut p)], &mut scaler)?;
        assert_eq!(
            p.value().to_vec::<f32>()?,
            vec![0.0, -4.0, 7.0, 0.5],
            "{dev}: unscaled update"
        );
        assert_eq!(scaler.read()?, (256.0, 2));
        println!("mixed_precision: scaler rules hold on {dev}");
    }
    Ok(())
}

/// f16 gradients overflow where f32 ones would not: an f16 inf is caught the same way.
#[test]
fn f16_gradients_are_checked_too() -> Result<()> {
    for dev in common::cpu_and_f16_gpus() {
        let mut p = param(&dev)?;
        let mut opt = Optimizer::adam(0.001, 0.9, 0.999);
        let mut scaler = LossScaler::standard(&dev)?;
        // The f32 master used in f16 (as mixed precision does) with an upstream gradient of
        // 70000, beyond f16's 65504: it is inf in f16, and still inf once cast back to f32.
        let upstream =
            Tensor::from_slice(&[1.0f32, 70000.0, 0.0, 0.0], [4], &dev)?.to_dtype(DType::F16)?;
        p.value().to_dtype(DType::F16)?.backward_with(&upstream)?;
        let g = p.grad().expect("a gradient").to_vec::<f32>()?;
        assert_eq!((g[0], g[1]), (1.0, f32::INFINITY), "{dev}: {g:?}");
        opt.step_scaled([("w".to_string(), &mut p)], &mut scaler)?;
        assert_eq!(
            p.value().to_vec::<f32>()?,
            vec![1.0, -2.0, 3.0, 0.5],
            "{dev}"
        );
        assert_eq!(scaler.read()?, (32768.0, 1), "{dev}");
    }
    Ok(())
}

/// 2,000 clean steps double the scale (and reset the count).
#[test]
fn two_thousand_clean_steps_double_the_scale() -> Result<()> {
    for dev in common::all_devices() {
        let mut p = param(&dev)?;
        let mut opt = Optimizer::sgd(0.0);
        let mut scaler = LossScaler::new(8.0, 2000, &dev)?;
        p.set_grad(Some(Tensor::from_slice(
            &[1.0f32, 1.0, 1.0, 1.0],
            [4],
            &dev,
        )?))?;
        for i in 0..2000 {
            opt.step_scaled([("w".to_string(), &mut p)], &mut scaler)?;
            if i == 1998 {
                assert_eq!(scaler.read()?.0, 8.0, "{dev}: doubled too early");
            }
            if i % 256 == 0 {
                dev.flush()?;
            }
        }
        assert_eq!(
            scaler.read()?,
            (16.0, 0),
            "{dev}: not doubled after 2,000 clean steps"
        );
    }
    Ok(())
}

/// Two epochs of Adam (0.002, batch 50) in `precision`, quietly.
fn two_epochs(
    model: &mut wgnn::nn::Sequential,
    train: &DeviceDataset,
    test: &DeviceDataset,
    precision: Precision,
) -> Result<wgnn::train::Metrics> {
    let mut opt = Optimizer::adam(0.002, 0.9, 0.999);
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 50,
        precision,
        progress: false,
        verbose: false,
        ..TrainConfig::default()
    };
    fit(model, &cross_entropy, &mut opt, train, test, &cfg)
}

/// A short mixed-precision run learns like the f32 run of the same seed (CPU and f16 GPUs).
#[test]
fn mixed_training_follows_f32() -> Result<()> {
    let mnist = Mnist::load_default()?;
    for dev in common::cpu_and_f16_gpus() {
        let train = DeviceDataset::from_mnist(&mnist.train.take(2000), &dev)?;
        let test = DeviceDataset::from_mnist(&mnist.test.take(500), &dev)?;
        let run = |precision| -> Result<(f64, f64, u64)> {
            let mut model = mlp(&MlpConfig::new(&[784, 64, 10]), &dev, 9)?;
            let m = two_epochs(&mut model, &train, &test, precision)?;
            Ok((m.epochs[1].train_loss, m.test_accuracy, m.skipped_steps))
        };
        let (loss32, acc32, _) = run(Precision::F32)?;
        let (loss16, acc16, skipped) = run(Precision::Mixed)?;
        println!(
            "mixed_precision: {dev}: epoch-2 loss f32 {loss32:.4} mixed {loss16:.4}; accuracy {acc32:.3} vs {acc16:.3}; {skipped} skipped"
        );
        assert!(
            (loss16 - loss32).abs() <= 0.02 * loss32 + 0.01,
            "{dev}: mixed loss {loss16} vs f32 {loss32}"
        );
        assert!(
            (acc16 - acc32).abs() <= 0.02,
            "{dev}: mixed accuracy {acc16} vs f32 {acc32}"
        );
        assert!(acc16 > 0.8, "{dev}: mixed run did not learn");
    }
    Ok(())
}

/// BatchNorm under mixed precision: the batch statistics come out in f16 while the running
/// statistics stay f32 (they used to meet in one `axpy_` and fail with a dtype mismatch).
/// Trains the book's Extend MLP (Affine → BN → ReLU) and checks the f32 run's accuracy is
/// matched and the running statistics kept their dtype and moved.
#[test]
fn mixed_training_with_batch_norm() -> Result<()> {
    let mnist = Mnist::load_default()?;
    for dev in common::cpu_and_f16_gpus() {
        let train = DeviceDataset::from_mnist(&mnist.train.take(2000), &dev)?;
        let test = DeviceDataset::from_mnist(&mnist.test.take(500), &dev)?;
        let run = |precision| -> Result<(f64, Vec<f32>)> {
            let mut cfg_mlp = MlpConfig::new(&[784, 64, 64, 10]);
            cfg_mlp.batch_norm = true;
            let mut model = mlp(&cfg_mlp, &dev, 5)?;
            let m = two_epochs(&mut model, &train, &test, precision)?;
            let mut stats = Vec::new();
            for (name, t) in model.named_buffers() {
                assert_eq!(t.dtype(), DType::F32, "{dev}: {name} is no longer f32");
                stats.extend(t.to_vec::<f32>()?);
            }
            Ok((m.test_accuracy, stats))
        };
        let (acc32, stats32) = run(Precision::F32)?;
        let (acc16, stats16) = run(Precision::Mixed)?;
        println!("mixed_precision: {dev}: BatchNorm MLP accuracy f32 {acc32:.3} mixed {acc16:.3}");
        assert!(
            (acc16 - acc32).abs() <= 0.02,
            "{dev}: mixed accuracy {acc16} vs f32 {acc32}"
        );
        assert!(acc16 > 0.8, "{dev}: mixed run did not learn");
        assert_eq!(stats16.len(), 4 * 64);
        assert!(
            stats16.iter().any(|&v| v != 0.0) && stats16.iter().all(|v| v.is_finite()),
            "{dev}: running statistics did not move"
        );
        // The two runs' weights drift apart over 80 steps, and the statistics with them: compare
        // the whole vector (relative L2), not element by element.
        let num: f32 = stats16
            .iter()
            .zip(&stats32)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let den: f32 = stats32.iter().map(|b| b * b).sum();
        let rel = (num / den).sqrt();
        println!("mixed_precision: {dev}: running statistics mixed vs f32, relative L2 {rel:.4}");
        assert!(
            rel <= 0.05,
            "{dev}: mixed running statistics differ from f32 by {rel} (relative L2)"
        );
    }
    Ok(())
}

#[test]
fn precision_choices_are_explained() -> Result<()> {
    let cpu = Device::cpu();
    assert_eq!(Precision::resolve("auto", &cpu)?.0, Precision::F32);
    assert_eq!(Precision::resolve("mixed", &cpu)?.0, Precision::Mixed);
    let e = Precision::resolve("f16", &cpu)
        .expect_err("pure f16")
        .to_string();
    assert!(e.contains("--precision mixed"), "{e}");
    let e = Precision::resolve("bf16", &cpu)
        .expect_err("unknown")
        .to_string();
    assert!(
        e.contains("bf16") && e.contains("f32, mixed, f16, auto"),
        "{e}"
    );
    for dev in common::gpus() {
        let (p, why) = Precision::resolve("auto", &dev)?;
        let hw = dev
            .gpu_context()
            .is_some_and(|c| c.summary().is_hardware() && c.supports_f16());
        assert_eq!(p == Precision::Mixed, hw, "{dev}: auto chose {p:?} ({why})");
    }
    Ok(())
}

/// A step the scaler skips is not an Adam step: after [ok, skipped, ok] the weights equal
/// those of [ok, ok] with the same two gradients (PyTorch's GradScaler skips
/// `optimizer.step()`; before, the skipped step still advanced Adam's bias correction).
#[test]
fn skipped_steps_do_not_advance_adams_bias_correction() -> Result<()> {
    for dev in common::all_devices() {
        let g1 = [0.5f32, -1.0, 0.25, 2.0];
        let g2 = [-0.75f32, 0.5, 1.5, -0.125];
        let grad = |g: &[f32], scale: f32| -> Result<Tensor> {
            let v: Vec<f32> = g.iter().map(|x| x * scale).collect();
            Tensor::from_slice(&v, [4], &dev)
        };
        // With a skipped step in the middle (the scale halves from 1024 to 512 there).
        let mut p = param(&dev)?;
        let mut opt = Optimizer::adam(0.1, 0.9, 0.999);
        let mut scaler = LossScaler::new(1024.0, 2000, &dev)?;
        p.set_grad(Some(grad(&g1, 1024.0)?))?;
        opt.step_scaled([("w".to_string(), &mut p)], &mut scaler)?;
        p.set_grad(Some(grad(&[f32::INFINITY, 0.0, 0.0, 0.0], 1.0)?))?;
        opt.step_scaled([("w".to_string(), &mut p)], &mut scaler)?;
        p.set_grad(Some(grad(&g2, 512.0)?))?;
        opt.step_scaled([("w".to_string(), &mut p)], &mut scaler)?;
        assert_eq!(scaler.read()?, (512.0, 1), "{dev}: one step skipped");
        let got = p.value().to_vec::<f32>()?;
        // The same two updates without the skipped step.
        let mut q = param(&dev)?;
        let mut plain = Optimizer::adam(0.1, 0.9, 0.999);
        for g in [&g1, &g2] {
            q.set_grad(Some(grad(g, 1.0)?))?;
            plain.step([("w".to_string(), &mut q)])?;
        }
        let want = q.value().to_vec::<f32>()?;
        // Adam's t = 2 in both; the rate is computed in f32 after a skip and in f64 otherwise.
        common::assert_close(
            &format!("Adam after a skipped step on {dev}"),
            &got,
            &want,
            1e-6,
            1e-6,
        );
        println!("mixed_precision: {dev}: a skipped step leaves Adam's t alone");
    }
    Ok(())
}
