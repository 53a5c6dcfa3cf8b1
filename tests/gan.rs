//! `examples/gan.rs` — d2l's toy GAN — trained on the CPU for five seeds: the discriminator
//! ends at the equilibrium loss (ln 2 for both players) and the generator's distribution
//! (mean and covariance, exact for its linear map) near the data's. A GAN at d2l's settings
//! still circles the optimum after 20 epochs (PyTorch's twin, `benches/toy_gan.py`, does too),
//! so the figures are asserted as medians over the seeds, with margins an untrained or
//! broken generator (errors near 100 %) cannot meet.

mod common;

#[path = "../examples/gan.rs"]
mod gan;

use wgnn::nn::ModuleExt;
use wgnn::optim::Optimizer;
use wgnn::{Device, Tensor};

/// Three iterations of d2l's updates (D then G, Adam, summed BCE with logits) from PyTorch's
/// initial weights, batch and noise (`benches/toy_gan.py --fixture`) end with PyTorch's
/// parameters and losses within 1e-5, on the CPU and every GPU (Adam with PyTorch's ε,
/// `Optimizer::with_torch_eps`, as the example).
#[test]
fn three_updates_match_pytorch() -> wgnn::Result<()> {
    let text = std::fs::read_to_string("tests/fixtures/toy_gan_steps.json")
        .expect("tests/fixtures/toy_gan_steps.json (benches/toy_gan.py --fixture)");
    let fx: serde_json::Value = serde_json::from_str(&text).expect("the fixture is JSON");
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .expect("an array")
            .iter()
            .map(|x| x.as_f64().expect("a number") as f32)
            .collect()
    };
    for dev in common::all_devices() {
        let (mut g, mut d) = (gan::generator(&dev)?, gan::discriminator(&dev)?);
        for (net, m) in [("G", &mut g), ("D", &mut d)] {
            for (name, p) in m.named_parameters() {
                let v = floats(&fx["init"][net][&name]);
                p.set_value(Tensor::from_slice(&v, p.value().dims(), &dev)?)?;
            }
        }
        let x = Tensor::from_slice(&floats(&fx["x"]), [8, 2], &dev)?;
        let z = Tensor::from_slice(&floats(&fx["z"]), [8, 2], &dev)?;
        let (mut opt_g, mut opt_d) = (
            Optimizer::adam(0.005, 0.9, 0.999).with_torch_eps(1e-8),
            Optimizer::adam(0.05, 0.9, 0.999).with_torch_eps(1e-8),
        );
        for (step, want) in fx["losses"].as_array().expect("losses").iter().enumerate() {
            let (l_d, l_g) = gan::update(&mut g, &mut d, &mut opt_g, &mut opt_d, &x, &z)?;
            let want = floats(want);
            common::assert_close(
                &format!("{dev}: losses of update {step}"),
                &[l_d, l_g],
                &want,
                1e-5,
                1e-5,
            );
        }
        for (net, m) in [("G", &mut g), ("D", &mut d)] {
            for (name, p) in m.named_parameters() {
                let want = floats(&fx["after"][net][&name]);
                let got = p.value().to_vec::<f32>()?;
                common::assert_close(&format!("{dev}: {net}.{name}"), &got, &want, 1e-5, 1e-5);
            }
        }
    }
    Ok(())
}

#[test]
fn toy_gan_learns_the_datas_mean_and_covariance() -> wgnn::Result<()> {
    let dev = Device::cpu();
    let cfg = gan::Config::default();
    let mut mean_errs = Vec::new();
    let mut cov_errs = Vec::new();
    for seed in 0..5 {
        let o = gan::toy_gan(seed, &cfg, &dev, false)?;
        println!(
            "toy GAN seed {seed}: loss_D {:.3}, loss_G {:.3}, mean error {:.1} %, covariance \
             error {:.1} %",
            o.loss_d,
            o.loss_g,
            100.0 * o.mean_err,
            100.0 * o.cov_err
        );
        for (name, loss) in [("loss_D", o.loss_d), ("loss_G", o.loss_g)] {
            assert!(
                (loss - std::f64::consts::LN_2).abs() < 0.05,
                "seed {seed}: {name} {loss} is not near ln 2"
            );
        }
        // The exact moments and those of 10,000 samples agree.
        for i in 0..2 {
            assert!(
                (o.mean[i] - o.sample_mean[i]).abs() < 0.1,
                "seed {seed}: {o:?}"
            );
        }
        mean_errs.push(o.mean_err);
        cov_errs.push(o.cov_err);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (m, c) = (median(&mut mean_errs), median(&mut cov_errs));
    assert!(m < 0.2, "median mean error {m}");
    assert!(c < 0.25, "median covariance error {c}");
    Ok(())
}
