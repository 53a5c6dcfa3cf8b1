//! `wgnn::playground`: the Neural Network Playground's model learns its data sets as the page
//! would train them (an epoch per step), on the CPU and every GPU, and its heat maps show it.

mod common;

use wgnn::playground::{Config, Playground};

fn cfg(data: &str, features: &[&str], hidden: &[usize]) -> Config {
    Config {
        data: data.into(),
        features: features.iter().map(|f| f.to_string()).collect(),
        hidden: hidden.to_vec(),
        ..Config::default()
    }
}

/// Epochs until the test loss falls under `target` (checked every 10), or `None` by `max`.
fn epochs_to(p: &mut Playground, target: f64, max: usize) -> wgnn::Result<Option<usize>> {
    while p.epoch() < max {
        for _ in 0..10 {
            p.step()?;
        }
        if p.losses()?.1 < target {
            return Ok(Some(p.epoch()));
        }
    }
    Ok(None)
}

#[test]
fn the_spiral_with_sine_features_and_two_hidden_layers() -> wgnn::Result<()> {
    let c = cfg("spiral", &["x1", "x2", "sin(x1)", "sin(x2)"], &[8, 8]);
    let mut p = Playground::new(&c, &wgnn::Device::cpu())?;
    let start = std::time::Instant::now();
    let n = epochs_to(&mut p, 0.1, 3000)?;
    println!(
        "spiral: test loss < 0.1 after {n:?} epochs, {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        n.is_some(),
        "the spiral was not learnt: losses {:?}",
        p.losses()?
    );
    Ok(())
}

#[test]
fn a_linear_model_cannot_learn_the_spiral_or_the_circle() -> wgnn::Result<()> {
    for data in ["spiral", "circle"] {
        let mut p = Playground::new(&cfg(data, &["x1", "x2"], &[]), &wgnn::Device::cpu())?;
        let first = p.losses()?.1;
        assert_eq!(
            epochs_to(&mut p, 0.3, 200)?,
            None,
            "{data}: a line separated it"
        );
        // It learns what a line can, no more: the loss stays near the constant guess's.
        let last = p.losses()?.1;
        assert!(last > 0.35 && last.is_finite(), "{data}: {first} → {last}");
    }
    Ok(())
}

#[test]
fn every_data_set_is_learnt_on_every_device() -> wgnn::Result<()> {
    let cases = [
        ("circle", &["x1", "x2"][..], &[4, 2][..], 0.05),
        ("circle", &["x1^2", "x2^2"][..], &[][..], 0.05),
        ("xor", &["x1x2"][..], &[][..], 0.05),
        ("gauss", &["x1", "x2"][..], &[][..], 0.05),
        ("plane", &["x1", "x2"][..], &[][..], 0.001),
    ];
    for dev in common::all_devices() {
        for (data, features, hidden, target) in cases {
            let mut p = Playground::new(&cfg(data, features, hidden), &dev)?;
            let n = epochs_to(&mut p, target, 1000)?;
            assert!(
                n.is_some(),
                "{dev}: {data} {features:?} {hidden:?}: losses {:?} after {} epochs",
                p.losses()?,
                p.epoch()
            );
        }
    }
    Ok(())
}

#[test]
fn heat_maps_follow_the_learnt_boundary() -> wgnn::Result<()> {
    for dev in common::all_devices() {
        let mut p = Playground::new(&cfg("circle", &["x1", "x2"], &[4, 2]), &dev)?;
        let before = p.heat_maps(21)?;
        assert_eq!(before.output.len(), 21 * 21);
        assert_eq!(before.neurons.len(), 2);
        assert_eq!((before.neurons[0].len(), before.neurons[1].len()), (4, 2));
        assert!(before.neurons[0].iter().all(|m| m.len() == 21 * 21));
        epochs_to(&mut p, 0.05, 1000)?;
        let after = p.heat_maps(21)?;
        assert_ne!(
            before.output, after.output,
            "{dev}: training changed nothing"
        );
        // The centre (+1) and the corners (−1) of the circle data set, row-major from the top.
        let centre = after.output[10 * 21 + 10];
        let corner = after.output[0];
        assert!(
            centre > 0.5 && corner < -0.5,
            "{dev}: centre {centre}, corner {corner}"
        );
        assert!(
            after.output.iter().all(|v| v.abs() <= 1.0),
            "{dev}: tanh output"
        );
        let w = p.weights()?;
        assert_eq!(w.len(), 3);
        assert_eq!(
            (w[0].len(), w[0][0].len(), w[2].len(), w[2][0].len()),
            (2, 4, 2, 1)
        );
        assert!(p.heat_maps(1).is_err() && p.heat_maps(201).is_err());
    }
    Ok(())
}

#[test]
fn regularization_shrinks_the_weights() -> wgnn::Result<()> {
    let norm = |p: &Playground| -> wgnn::Result<f64> {
        Ok(p.weights()?
            .iter()
            .flatten()
            .flatten()
            .map(|w| (*w as f64).abs())
            .sum())
    };
    let base = cfg("xor", &["x1", "x2", "x1x2"], &[4]);
    let mut plain = Playground::new(&base, &wgnn::Device::cpu())?;
    for reg in ["l1", "l2"] {
        let c = wgnn::playground::Config {
            regularization: reg.into(),
            regularization_rate: 0.03,
            ..base.clone()
        };
        let mut p = Playground::new(&c, &wgnn::Device::cpu())?;
        for _ in 0..100 {
            p.step()?;
        }
        if plain.epoch() == 0 {
            for _ in 0..100 {
                plain.step()?;
            }
        }
        let (a, b) = (norm(&plain)?, norm(&p)?);
        assert!(b < 0.7 * a, "{reg}: Σ|w| {b} against {a} without");
    }
    Ok(())
}
