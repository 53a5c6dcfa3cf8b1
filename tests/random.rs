//! Random values drawn on the device (`wgnn::randn`, `wgnn::rand`, `Kernels::random`): the
//! CPU and every GPU draw the same values from the counter hash (uniform bit for bit, normal up
//! to the last bits of `ln` and `cos`), their moments and tails are those of the distribution,
//! a GPU draws them with nothing uploaded, and bad parameters are refused with the op's name;
//! categorical draws (`Categorical::sample`) follow their rule on every device with the
//! distribution's frequencies, and `log_prob`, `entropy` and their gradients are exact.

mod common;

use wgnn::ops::{Distribution, Kernels, RandomSpec};
use wgnn::rng::{counter_normal, counter_uniform};
use wgnn::{Device, Tensor};

fn spec(dist: Distribution, seed: u32, offset: u32) -> RandomSpec {
    RandomSpec { dist, seed, offset }
}

const NORMAL: Distribution = Distribution::Normal {
    mean: 0.0,
    std: 1.0,
};

/// Mean and standard deviation in f64.
fn moments(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn the_cpu_draws_the_documented_expressions() -> wgnn::Result<()> {
    let cpu = Device::cpu();
    let u = Distribution::Uniform {
        low: -2.0,
        high: 3.0,
    };
    let got = Tensor::random([5, 7], &spec(u, 9, 100), &cpu)?.to_vec::<f32>()?;
    for (i, &g) in got.iter().enumerate() {
        assert_eq!(
            g,
            -2.0 + 5.0 * counter_uniform(9, 100 + i as u32),
            "uniform {i}"
        );
    }
    let nrm = Distribution::Normal {
        mean: 1.5,
        std: 0.5,
    };
    // The counter wraps around at 2^32: element i uses draws offset + 2i and offset + 2i + 1.
    let offset = u32::MAX - 4;
    let got = Tensor::random([6], &spec(nrm, 3, offset), &cpu)?.to_vec::<f32>()?;
    for (i, &g) in got.iter().enumerate() {
        let k = offset.wrapping_add(2 * i as u32);
        assert_eq!(g, 1.5 + 0.5 * counter_normal(3, k), "normal {i}");
    }
    Ok(())
}

#[test]
fn every_device_draws_the_same_values() -> wgnn::Result<()> {
    let cpu = Device::cpu();
    let cases = [
        (spec(NORMAL, 0, 0), 1),
        (spec(NORMAL, 12345, 7), 4099),
        (spec(NORMAL, u32::MAX, u32::MAX - 10), 257),
        (
            spec(
                Distribution::Uniform {
                    low: 0.0,
                    high: 1.0,
                },
                77,
                0,
            ),
            70_000,
        ),
        (
            spec(
                Distribution::Uniform {
                    low: -0.5,
                    high: 0.5,
                },
                1,
                u32::MAX - 3,
            ),
            33,
        ),
    ];
    for dev in common::gpus() {
        for (s, n) in &cases {
            let want = Tensor::random([*n], s, &cpu)?.to_vec::<f32>()?;
            let got = Tensor::random([*n], s, &dev)?.to_vec::<f32>()?;
            match s.dist {
                // 24-bit draws times exact bounds: the same bits.
                Distribution::Uniform { .. } => assert_eq!(got, want, "{s:?} on {dev}"),
                // ln and cos: WGSL promises a few ulp (cos absolutely, about 2^-11 on some
                // GPUs), so allow 1e-3 absolute for values up to 5.77.
                Distribution::Normal { .. } => {
                    common::assert_close(&format!("{s:?} on {dev}"), &got, &want, 1e-3, 1e-4)
                }
            }
        }
    }
    Ok(())
}

#[test]
fn moments_and_tails_are_the_distributions() -> wgnn::Result<()> {
    for dev in common::all_devices() {
        wgnn::manual_seed(5);
        let n = 1 << 18;
        let z = wgnn::randn([n], &dev)?.to_vec::<f32>()?;
        let (mean, std) = moments(&z);
        // Standard errors: 1/√n ≈ 0.002 for the mean, 1/√(2n) ≈ 0.0014 for the std: 5σ bounds.
        assert!(mean.abs() < 0.01, "{dev}: randn mean {mean}");
        assert!((std - 1.0).abs() < 0.007, "{dev}: randn std {std}");
        // Tails: P(|z| > 2) = 4.55 %, P(|z| > 3) = 0.27 %; the largest |z| the 24-bit draws
        // can give is √(48 ln 2) ≈ 5.77.
        let share = |t: f32| z.iter().filter(|v| v.abs() > t).count() as f64 / n as f64;
        assert!(
            (share(2.0) - 0.0455).abs() < 0.002,
            "{dev}: |z| > 2: {}",
            share(2.0)
        );
        assert!(
            (share(3.0) - 0.0027).abs() < 0.0006,
            "{dev}: |z| > 3: {}",
            share(3.0)
        );
        assert!(z.iter().all(|v| v.abs() <= 5.8), "{dev}: a value past 5.77");
        // Neighbours are independent: the lag-1 correlation is within 5/√n of 0.
        let lag: f64 = z.windows(2).map(|w| w[0] as f64 * w[1] as f64).sum::<f64>() / n as f64;
        assert!(lag.abs() < 0.01, "{dev}: lag-1 correlation {lag}");

        let u = wgnn::rand([n], &dev)?.to_vec::<f32>()?;
        let (mean, std) = moments(&u);
        assert!((mean - 0.5).abs() < 0.003, "{dev}: rand mean {mean}");
        assert!(
            (std - 12f64.sqrt().recip()).abs() < 0.002,
            "{dev}: rand std {std}"
        );
        assert!(
            u.iter().all(|v| (0.0..1.0).contains(v)),
            "{dev}: rand outside [0, 1)"
        );
        // Ten equal bins hold 10 % each (σ ≈ 0.06 %).
        let mut bins = [0usize; 10];
        for v in &u {
            bins[(v * 10.0) as usize] += 1;
        }
        for (b, c) in bins.iter().enumerate() {
            let share = *c as f64 / n as f64;
            assert!((share - 0.1).abs() < 0.003, "{dev}: bin {b} holds {share}");
        }
    }
    Ok(())
}

#[test]
fn the_default_generator_repeats_after_manual_seed_and_moves_on() -> wgnn::Result<()> {
    let cpu = Device::cpu();
    wgnn::manual_seed(42);
    let a = wgnn::randn([16], &cpu)?.to_vec::<f32>()?;
    let b = wgnn::randn([16], &cpu)?.to_vec::<f32>()?;
    wgnn::manual_seed(42);
    let a2 = wgnn::randn([16], &cpu)?.to_vec::<f32>()?;
    assert_eq!(a, a2, "the same seed draws the same values");
    assert_ne!(a, b, "two calls draw different values");
    Ok(())
}

#[test]
fn a_gpu_draws_noise_with_nothing_uploaded() -> wgnn::Result<()> {
    // A context of its own: the other tests' work must not show in its counters.
    for dev in common::fresh_gpus() {
        let z = wgnn::randn([64, 100, 1, 1], &dev)?; // pipelines compile on the first call
        drop(z);
        dev.sync()?;
        let before = dev.counters();
        let z = wgnn::randn([64, 100, 1, 1], &dev)?;
        let u = wgnn::rand([1000], &dev)?;
        dev.flush()?;
        let c = dev.counters().since(&before);
        assert_eq!(c.bytes_uploaded, 0, "{dev}: drawing noise uploaded data");
        assert_eq!(c.dispatches, 2, "{dev}: one dispatch per fill");
        assert_eq!((z.dims(), u.dims()), (&[64, 100, 1, 1][..], &[1000][..]));
    }
    Ok(())
}

#[test]
fn bad_parameters_are_refused_by_name() {
    let cpu = Device::cpu();
    let bad = [
        Distribution::Normal {
            mean: 0.0,
            std: -1.0,
        },
        Distribution::Normal {
            mean: f32::NAN,
            std: 1.0,
        },
        Distribution::Uniform {
            low: 1.0,
            high: 0.0,
        },
        Distribution::Uniform {
            low: 0.0,
            high: f32::INFINITY,
        },
    ];
    for dist in bad {
        let m = Tensor::random([4], &spec(dist, 0, 0), &cpu)
            .err()
            .unwrap_or_else(|| panic!("{dist:?} was accepted"))
            .to_string();
        assert!(m.contains("random"), "{dist:?}: {m}");
    }
    let m = Tensor::random([1usize << 31, 2], &spec(NORMAL, 0, 0), &cpu)
        .expect_err("2^32 normal values from a 32-bit counter")
        .to_string();
    assert!(m.contains("random") && m.contains("2^31"), "{m}");
}

/// The documented rule of `sample_categorical`, computed here in f32.
fn pick(row: &[f32], seed: u32, r: u32) -> u32 {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = row.iter().fold(0.0, |s, &v| s + (v - m).exp());
    let t = counter_uniform(seed, r) * total;
    let mut acc = 0.0f32;
    for (k, &v) in row.iter().enumerate() {
        acc += (v - m).exp();
        if acc > t {
            return k as u32;
        }
    }
    row.len() as u32 - 1
}

#[test]
fn categorical_draws_follow_the_rule_on_every_device() -> wgnn::Result<()> {
    let cpu = Device::cpu();
    let (rows, k) = (4000, 7);
    let mut rng = wgnn::rng::SplitMix64::new(11);
    let logits: Vec<f32> = (0..rows * k)
        .map(|_| 3.0 * rng.next_normal() as f32)
        .collect();
    let seed = 1234;
    let want: Vec<u32> = logits
        .chunks(k)
        .enumerate()
        .map(|(r, row)| pick(row, seed, r as u32))
        .collect();
    let x = Tensor::from_slice(&logits, [rows / 4, 4, k], &cpu)?;
    let got = x.sample_categorical(seed, 0)?;
    assert_eq!(got.dims(), [rows / 4, 4]);
    assert_eq!(got.to_vec::<u32>()?, want, "the CPU draws");
    for dev in common::gpus() {
        let on = x
            .to_device(&dev)?
            .sample_categorical(seed, 0)?
            .to_vec::<u32>()?;
        // exp may differ in its last bits, which moves a pick only when u·total falls within
        // rounding of a running sum: allow 1 in 1,000 rows, each next to its CPU pick.
        let differ: Vec<usize> = (0..rows).filter(|&r| on[r] != want[r]).collect();
        assert!(
            differ.len() <= rows / 1000,
            "{dev}: {} rows differ",
            differ.len()
        );
        for r in differ {
            assert_eq!(on[r].abs_diff(want[r]), 1, "{dev}: row {r}");
        }
    }
    Ok(())
}

#[test]
fn categorical_frequencies_are_the_probabilities() -> wgnn::Result<()> {
    use wgnn::distributions::Categorical;
    let probs = [0.2f32, 0.3, 0.5, 0.0];
    let n = 100_000;
    for dev in common::all_devices() {
        let p = Tensor::from_slice(&probs, [1, 4], &dev)?.expand([n, 4])?;
        wgnn::manual_seed(9);
        let a = Categorical::from_probs(&p)?.sample()?.to_vec::<u32>()?;
        for (k, &pk) in probs.iter().enumerate() {
            let share = a.iter().filter(|&&v| v == k as u32).count() as f64 / n as f64;
            // σ = √(p(1−p)/n) ≤ 0.0016: a 5σ bound; category 3 has probability 0.
            let tol = if pk == 0.0 { 0.0 } else { 0.008 };
            assert!(
                (share - pk as f64).abs() <= tol,
                "{dev}: category {k} drawn {share}, probability {pk}"
            );
        }
    }
    Ok(())
}

#[test]
fn categorical_log_prob_entropy_and_gradient() -> wgnn::Result<()> {
    use wgnn::distributions::Categorical;
    for dev in common::all_devices() {
        let mut logits = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 0.5, 0.5, 0.5], [2, 3], &dev)?;
        logits.set_requires_grad(true)?;
        let pi = Categorical::new(&logits)?;
        let actions = Tensor::from_slice(&[2u32, 0], [2], &dev)?;
        let lp = pi.log_prob(&actions)?;
        let lse = (1f32.exp() + 2f32.exp() + 3f32.exp()).ln();
        common::assert_close(
            &format!("log_prob on {dev}"),
            &lp.to_vec::<f32>()?,
            &[3.0 - lse, -(3f32.ln())],
            1e-6,
            1e-6,
        );
        let p: Vec<f32> = [1f32, 2.0, 3.0].iter().map(|v| (v - lse).exp()).collect();
        let h0: f32 = -p.iter().map(|v| v * v.ln()).sum::<f32>();
        common::assert_close(
            &format!("entropy on {dev}"),
            &pi.entropy()?.to_vec::<f32>()?,
            &[h0, 3f32.ln()],
            1e-6,
            1e-6,
        );
        // d/dlogits of Σ log_prob: one-hot(action) − softmax, per row.
        lp.sum()?.backward()?;
        let g = logits.grad().expect("a gradient").to_vec::<f32>()?;
        let want = [
            -p[0],
            -p[1],
            1.0 - p[2],
            1.0 - 1.0 / 3.0,
            -1.0 / 3.0,
            -1.0 / 3.0,
        ];
        common::assert_close(&format!("gradient on {dev}"), &g, &want, 1e-6, 1e-6);
        // from_probs normalises and keeps zero-probability categories finite.
        let q = Categorical::from_probs(&Tensor::from_slice(&[2.0f32, 0.0, 2.0], [3], &dev)?)?;
        let h = q.entropy()?.to_vec::<f32>()?[0];
        assert!((h - 2f32.ln()).abs() < 1e-6, "{dev}: entropy {h}");
    }
    Ok(())
}

#[test]
fn categorical_bad_input_is_refused_by_name() -> wgnn::Result<()> {
    use wgnn::distributions::Categorical;
    let cpu = Device::cpu();
    let message = |r: wgnn::Result<Tensor>| r.expect_err("accepted").to_string();
    let m = message(Tensor::zeros([3, 0], wgnn::DType::F32, &cpu)?.sample_categorical(0, 0));
    assert!(
        m.contains("sample_categorical") && m.contains("65,535"),
        "{m}"
    );
    let m = message(Tensor::zeros([1, 70_000], wgnn::DType::F32, &cpu)?.sample_categorical(0, 0));
    assert!(m.contains("65,535"), "{m}");
    let m = message(Tensor::from_slice(&[1u32, 2], [2], &cpu)?.sample_categorical(0, 0));
    assert!(m.contains("sample_categorical"), "{m}");
    let pi = Categorical::new(&Tensor::zeros([2, 3], wgnn::DType::F32, &cpu)?)?;
    let m = message(pi.log_prob(&Tensor::from_slice(&[0u32, 1, 2], [3], &cpu)?));
    assert!(
        m.contains("Categorical::log_prob") && m.contains("[3]"),
        "{m}"
    );
    let scalar = Tensor::from_slice(&[1.0f32], [], &cpu)?;
    let e = Categorical::new(&scalar)
        .expect_err("a scalar accepted")
        .to_string();
    assert!(e.contains("Categorical::new"), "{e}");
    Ok(())
}
