//! `rl::CartPole` against Gymnasium's `CartPole-v1` (fixture `tests/fixtures/cartpole_gym.json`
//! from `benches/cartpole.py --fixture`): from Gymnasium's initial states, Gymnasium's action
//! sequences give its states (within 1e-6; the largest difference is printed), its rewards and its
//! termination or truncation step; plus the `Env` rules (spaces, resets, bad actions,
//! stepping past the end) and `VecEnv`'s autoreset; and one REINFORCE and one actor-critic
//! update of `examples/cartpole.rs` against PyTorch's examples (fixture
//! `tests/fixtures/cartpole_update.json` from `benches/cartpole.py --update-fixture`).

mod common;

#[path = "../examples/cartpole.rs"]
mod example;

use example::{Algo, episode_loss, evaluate, policy};
use serde_json::Value;
use wgnn::Tensor;
use wgnn::distributions::Categorical;
use wgnn::nn::ModuleExt;
use wgnn::optim::Optimizer;
use wgnn::rl::{CartPole, Env, MAX_EPISODE_STEPS, Space, VecEnv};

fn fixture() -> Value {
    load("cartpole_gym.json")
}

fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("the fixture")).expect("JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

/// A PyTorch tensor `{shape, values}` in wgnn's layout: `nn.Linear`'s `[out, in]` weight is
/// wgnn's `[in, out]`.
fn torch_tensor(t: &Value) -> Vec<f32> {
    let v = floats(&t["values"]);
    let shape: Vec<usize> = t["shape"]
        .as_array()
        .expect("a shape")
        .iter()
        .map(|d| d.as_u64().expect("a size") as usize)
        .collect();
    match shape[..] {
        [rows, cols] => (0..rows * cols)
            .map(|i| v[(i % rows) * cols + i / rows])
            .collect(),
        _ => v,
    }
}

/// From PyTorch's initial weights (dropout off: the fixture's REINFORCE ran in eval mode),
/// PyTorch's episode (observations, actions, rewards) gives its log-probabilities, values,
/// loss, gradients, and parameters after one Adam step with PyTorch's ε, on every device.
#[test]
fn one_update_equals_pytorch() -> wgnn::Result<()> {
    let fx = load("cartpole_update.json");
    for dev in common::all_devices() {
        for case in fx["cases"].as_array().expect("cases") {
            let algo = match case["algo"].as_str() {
                Some("reinforce") => Algo::Reinforce,
                Some("a2c") => Algo::A2c,
                other => panic!("unknown algo {other:?}"),
            };
            let what = |s: &str| format!("{dev} {}: {s}", case["algo"]);
            let mut net = policy(algo, &dev)?;
            net.eval();
            for (name, p) in net.named_parameters() {
                let v = torch_tensor(&case["initial_params"][&name]);
                p.set_value(Tensor::from_slice(&v, p.value().dims(), &dev)?)?;
            }
            let lr = case["lr"].as_f64().expect("lr") as f32;
            let eps = case["adam_eps"].as_f64().expect("eps") as f32;
            let mut opt = Optimizer::adam(lr, 0.9, 0.999).with_torch_eps(eps);
            let (mut log_probs, mut values) = (Vec::new(), Vec::new());
            let actions = case["actions"].as_array().expect("actions");
            for (obs, a) in case["observations"]
                .as_array()
                .expect("obs")
                .iter()
                .zip(actions)
            {
                let (scores, value) = evaluate(algo, net.as_mut(), floats(obs), &dev)?;
                let action = Tensor::from_slice(&[a.as_u64().expect("action") as u32], [1], &dev)?;
                log_probs.push(Categorical::new(&scores)?.log_prob(&action)?);
                values.extend(value);
            }
            let first = |ts: &[Tensor]| -> wgnn::Result<Vec<f32>> {
                ts.iter().map(|t| t.to_vec::<f32>().map(|v| v[0])).collect()
            };
            let want = floats(&case["log_probs"]);
            common::assert_close(
                &what("log-probabilities"),
                &first(&log_probs)?,
                &want,
                1e-5,
                1e-5,
            );
            if algo == Algo::A2c {
                let want = floats(&case["values"]);
                common::assert_close(&what("values"), &first(&values)?, &want, 1e-5, 1e-5);
            }
            let rewards = floats(&case["rewards"]);
            let loss = episode_loss(algo, &log_probs, &values, &rewards, &dev)?;
            let want = case["loss"].as_f64().expect("loss") as f32;
            common::assert_close(&what("loss"), &[loss.item()?], &[want], 1e-5, 1e-5);
            net.zero_grad();
            loss.backward()?;
            for (name, p) in net.named_parameters() {
                let g = p.grad().expect("a gradient").to_vec::<f32>()?;
                let want = torch_tensor(&case["grads"][&name]);
                common::assert_close(&what(&format!("gradient of {name}")), &g, &want, 1e-5, 1e-4);
            }
            opt.step(net.named_parameters())?;
            for (name, p) in net.named_parameters() {
                let v = p.value().to_vec::<f32>()?;
                let want = torch_tensor(&case["params_after_adam"][&name]);
                common::assert_close(&what(&format!("{name} after Adam")), &v, &want, 2e-5, 1e-5);
            }
        }
    }
    Ok(())
}

fn state(v: &Value) -> [f64; 4] {
    std::array::from_fn(|i| v[i].as_f64().expect("a number"))
}

#[test]
fn gymnasium_trajectories_replay_exactly() {
    let fx = fixture();
    let c = &fx["constants"];
    assert_eq!(
        c["max_episode_steps"].as_u64(),
        Some(MAX_EPISODE_STEPS as u64)
    );
    assert_eq!(c["kinematics_integrator"], "euler");
    let cases = fx["cases"].as_array().expect("cases");
    assert!(cases.len() >= 8, "the fixture has {} cases", cases.len());
    let mut worst = 0f64;
    for (n, case) in cases.iter().enumerate() {
        let mut env = CartPole::new(0);
        let obs = env.reset_to(state(&case["initial_state"]));
        let want_obs: Vec<f32> = case["initial_obs"]
            .as_array()
            .expect("initial_obs")
            .iter()
            .map(|v| v.as_f64().expect("a number") as f32)
            .collect();
        assert_eq!(
            obs, want_obs,
            "case {n}: the first observation is the state in f32"
        );
        let actions = case["actions"].as_array().expect("actions");
        let states = case["states"].as_array().expect("states");
        for (t, a) in actions.iter().enumerate() {
            let step = env
                .step(a.as_u64().expect("an action") as usize)
                .expect("a step");
            let want = state(&states[t]);
            for (got, w) in env.state().iter().zip(want) {
                let d = (got - w).abs();
                worst = worst.max(d);
                assert!(
                    d <= 1e-6,
                    "case {n} step {t}: state {:?}, Gymnasium {want:?}",
                    env.state()
                );
            }
            assert_eq!(
                step.reward as f64,
                case["rewards"][t].as_f64().unwrap(),
                "case {n} step {t}"
            );
            assert_eq!(
                step.terminated,
                case["terminated"][t] == true,
                "case {n} step {t}: terminated"
            );
            assert_eq!(
                step.truncated,
                case["truncated"][t] == true,
                "case {n} step {t}: truncated"
            );
            assert_eq!(step.observation, env.state().map(|v| v as f32).to_vec());
        }
        assert_eq!(
            env.steps() as u64,
            case["steps"].as_u64().unwrap(),
            "case {n}: episode length"
        );
        // The episode is over: another step is refused.
        assert!(
            env.step(0).is_err(),
            "case {n}: a step after the end was accepted"
        );
    }
    println!(
        "cartpole: {} Gymnasium trajectories replayed, largest state difference {worst:e}",
        cases.len()
    );
}

#[test]
fn the_env_rules() {
    let mut env = CartPole::new(7);
    assert_eq!(env.action_space(), Space::Discrete(2));
    assert_eq!(env.observation_space().size(), 4);
    let m = env.step(0).expect_err("a step before reset").to_string();
    assert!(m.contains("CartPole::step") && m.contains("reset"), "{m}");
    let first = env.reset(Some(3));
    assert!(first.iter().all(|v| v.abs() <= 0.05), "{first:?}");
    let m = env.step(2).expect_err("action 2").to_string();
    assert!(m.contains("action 2"), "{m}");
    // A reseeded reset repeats; an unseeded one goes on with the stream.
    let again = env.reset(Some(3));
    assert_eq!(first, again);
    assert_ne!(env.reset(None), first);
    // Pushing right forever tips the pole left (θ < 0) within a second or so.
    env.reset(Some(3));
    let mut steps = 0;
    loop {
        steps += 1;
        if env.step(1).unwrap().terminated {
            break;
        }
    }
    assert!(
        env.state()[2] < 0.0 && steps < 60,
        "{steps} steps, state {:?}",
        env.state()
    );
}

#[test]
fn vec_env_resets_what_ends() {
    let mut envs = VecEnv::new((0..3).map(CartPole::new).collect()).unwrap();
    let obs = envs.reset(Some(10));
    assert_eq!(obs.len(), 12);
    let mut ended = 0;
    for _ in 0..200 {
        let s = envs.step(&[1, 0, 1]).unwrap();
        assert_eq!(s.observations.len(), 12);
        for (i, last) in &s.final_observations {
            assert!(s.terminated[*i] || s.truncated[*i]);
            // The next episode starts near the origin; the last state of the old one is away.
            let fresh = &s.observations[i * 4..i * 4 + 4];
            assert!(fresh.iter().all(|v| v.abs() <= 0.05), "{fresh:?}");
            assert!(last.iter().any(|v| v.abs() > 0.05), "{last:?}");
            ended += 1;
        }
    }
    assert!(
        ended >= 6,
        "only {ended} episodes ended under constant pushes"
    );
    assert!(
        envs.step(&[0, 1]).is_err(),
        "two actions for three environments"
    );
    assert!(VecEnv::<CartPole>::new(Vec::new()).is_err());
}
