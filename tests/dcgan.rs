//! `models::dcgan` and the sample score: the generator and discriminator for 28×28 and 32×32
//! images have PyTorch's DCGAN shapes and initialisation, refuse other sizes, and one D + G
//! iteration trains on the CPU and on every GPU; `score::judge` reads a classifier's inner
//! features, its confidence and its labels.

mod common;

use wgnn::models::dcgan;
use wgnn::nn::{Module, ModuleExt, Sequential};
use wgnn::optim::Optimizer;
use wgnn::{DType, Device, Tensor};

#[test]
fn shapes_and_initialisation() -> wgnn::Result<()> {
    let dev = Device::cpu();
    for size in [28, 32] {
        wgnn::manual_seed(1);
        let mut g = dcgan::generator(size, 100, 16, 1, &dev)?;
        let mut d = dcgan::discriminator(size, 16, 1, &dev)?;
        dcgan::dcgan_init(&mut g)?;
        dcgan::dcgan_init(&mut d)?;
        let z = wgnn::randn([3, 100, 1, 1], &dev)?;
        let x = g.forward(&z)?;
        assert_eq!(x.dims(), [3, 1, size, size], "{size}: generated images");
        let v = x.to_vec::<f32>()?;
        assert!(
            v.iter().all(|p| (-1.0..=1.0).contains(p)),
            "{size}: tanh output"
        );
        assert_eq!(
            d.forward(&x)?.dims(),
            [3, 1, 1, 1],
            "{size}: one logit per image"
        );
        for (name, p) in g.named_parameters().into_iter().chain(d.named_parameters()) {
            let v = p.value().to_vec::<f32>()?;
            let n = v.len() as f64;
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
            let std = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            match (p.value().dims().len(), name.ends_with("gamma")) {
                (4, _) => assert!(
                    mean.abs() < 0.01 && (std - 0.02).abs() < 0.005,
                    "{size} {name}: {mean} ± {std}"
                ),
                (_, true) => assert!((mean - 1.0).abs() < 0.02, "{size} {name}: {mean}"),
                _ => assert!(
                    v.iter().all(|&b| b == 0.0),
                    "{size} {name}: biases start at 0"
                ),
            }
        }
    }
    for bad in [
        dcgan::generator(64, 100, 16, 1, &dev).err(),
        dcgan::discriminator(28, 0, 1, &dev).err(),
        dcgan::generator(28, 100, usize::MAX / 4, 1, &dev).err(),
    ] {
        assert!(bad.is_some(), "a bad size was accepted");
    }
    Ok(())
}

/// A 28×28 DCGAN with 8 feature maps and noise of `nz`, DCGAN's initialisation from `seed`,
/// and the example's two Adam optimizers (G's, D's).
fn small_dcgan(
    seed: u64,
    nz: usize,
    dev: &Device,
) -> wgnn::Result<(Sequential, Sequential, Optimizer, Optimizer)> {
    wgnn::manual_seed(seed);
    let mut g = dcgan::generator(28, nz, 8, 1, dev)?;
    let mut d = dcgan::discriminator(28, 8, 1, dev)?;
    dcgan::dcgan_init(&mut g)?;
    dcgan::dcgan_init(&mut d)?;
    let adam = || Optimizer::adam(2e-4, 0.5, 0.999);
    Ok((g, d, adam(), adam()))
}

#[test]
fn one_iteration_trains_on_every_device() -> wgnn::Result<()> {
    for dev in common::all_devices() {
        let (mut g, mut d, mut opt_g, mut opt_d) = small_dcgan(2, 8, &dev)?;
        let real = ((wgnn::rand([4, 1, 28, 28], &dev)? * 2.0)? - 1.0)?;
        let values = |g: &mut Sequential, d: &mut Sequential| -> wgnn::Result<Vec<Vec<f32>>> {
            g.named_parameters()
                .into_iter()
                .chain(d.named_parameters())
                .map(|(_, p)| p.value().to_vec::<f32>())
                .collect()
        };
        let before = values(&mut g, &mut d)?;
        let step = dcgan::train_step(&mut g, &mut d, &mut opt_g, &mut opt_d, &real, 8)?;
        let figures = Tensor::read_scalars(&[&step.loss_d, &step.loss_g, &step.d_x])?;
        let (ld, lg, d_x) = (figures[0] as f32, figures[1] as f32, figures[2]);
        assert!((0.0..=1.0).contains(&d_x), "{dev}: D(x) {d_x}");
        assert_eq!(step.stacked()?.dims(), [5]);
        assert!(ld.is_finite() && lg.is_finite(), "{dev}: losses {ld} {lg}");
        // At initialisation D is undecided: ln 2 per term.
        assert!(
            (ld - 2.0 * std::f32::consts::LN_2).abs() < 0.1,
            "{dev}: loss_D {ld}"
        );
        let after = values(&mut g, &mut d)?;
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(moved, before.len(), "{dev}: every parameter takes a step");
    }
    Ok(())
}

/// Acceptance 4 of issue 26: one DCGAN iteration (a D step and a G step) on a GPU is one
/// submit per optimizer step, with the noise drawn on the device: nothing is uploaded and
/// nothing read back (the real batch is already there, as a device-resident dataset's is).
#[test]
fn one_iteration_is_a_submit_per_step_with_nothing_uploaded() -> wgnn::Result<()> {
    // A context of its own: the other tests' work must not show in its counters.
    for dev in common::fresh_gpus() {
        let (mut g, mut d, mut opt_g, mut opt_d) = small_dcgan(3, 16, &dev)?;
        let real = ((wgnn::rand([16, 1, 28, 28], &dev)? * 2.0)? - 1.0)?;
        let mut sum = Tensor::zeros([5], DType::F32, &dev)?;
        let mut iteration = |sum: &mut Tensor| -> wgnn::Result<wgnn::gpu::Counters> {
            dev.sync()?;
            let before = dev.counters();
            let step = dcgan::train_step(&mut g, &mut d, &mut opt_g, &mut opt_d, &real, 16)?;
            *sum = (&*sum + &step.stacked()?)?;
            dev.flush()?;
            Ok(dev.counters().since(&before))
        };
        iteration(&mut sum)?; // pipelines compile and buffers are made on the first
        let c = iteration(&mut sum)?;
        assert!(
            c.submits <= 2,
            "{dev}: one iteration took {} submits ({} dispatches)",
            c.submits,
            c.dispatches
        );
        assert_eq!(c.bytes_uploaded, 0, "{dev}: the iteration uploaded data");
        assert_eq!(c.bytes_read_back, 0, "{dev}: the iteration read data back");
        let figures = sum.to_vec::<f32>()?;
        assert!(figures.iter().all(|v| v.is_finite()), "{dev}: {figures:?}");
        println!(
            "dcgan: one iteration (D step + G step, batch 16) on {dev}: {} submits, {} \
             dispatches, 0 bytes uploaded",
            c.submits, c.dispatches
        );
    }
    Ok(())
}

/// `score::judge` on a hand-set classifier: features from the named inner module, the share
/// labelled with confidence ≥ 0.9 and the label histogram from the last; an unknown feature
/// layer is an error naming the modules.
#[test]
fn judge_reads_features_and_confidence() -> wgnn::Result<()> {
    use wgnn::nn::{Linear, Sequential};
    let dev = Device::cpu();
    let mut net = Sequential::new()
        .add("feat", Linear::new(2, 2, &dev)?)?
        .add("head", Linear::new(2, 3, &dev)?)?;
    let set = |net: &mut Sequential, name: &str, v: &[f32], dims: &[usize]| -> wgnn::Result<()> {
        for (n, p) in net.named_parameters() {
            if n == name {
                p.set_value(Tensor::from_slice(v, dims, &dev)?)?;
            }
        }
        Ok(())
    };
    set(&mut net, "feat.weight", &[1.0, 0.0, 0.0, 1.0], &[2, 2])?;
    set(&mut net, "feat.bias", &[0.0, 0.0], &[2])?;
    set(
        &mut net,
        "head.weight",
        &[10.0, 0.0, 0.0, 0.0, 10.0, 0.0],
        &[2, 3],
    )?;
    set(&mut net, "head.bias", &[0.0, 0.0, 0.0], &[3])?;
    // Two confident (logit 10), two not (logit 0.5: p ≈ 0.45).
    let x = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 0.05, 0.0, 0.0, 0.05], [4, 2], &dev)?;
    let v = wgnn::score::judge(&mut net, "feat", &x, 3)?;
    assert!((v.confident - 0.5).abs() < 1e-12, "{v:?}");
    assert_eq!(v.histogram, [0.5, 0.5, 0.0]);
    assert!(
        (v.mean[0] - 0.2625).abs() < 1e-6 && (v.mean[1] - 0.2625).abs() < 1e-6,
        "{v:?}"
    );
    let Err(e) = wgnn::score::judge(&mut net, "nope", &x, 3) else {
        panic!("an unknown feature layer was accepted");
    };
    assert!(e.to_string().contains("feat, head"), "{e}");
    Ok(())
}
