//! `rl::CartPole` against Gymnasium's `CartPole-v1` (fixture `tests/fixtures/cartpole_gym.json`
//! from `benches/cartpole.py --fixture`): from Gymnasium's initial states, Gymnasium's action
//! sequences give its states (within 1e-6; the largest difference is printed), its rewards and its
//! termination or truncation step; plus the `Env` rules (spaces, resets, bad actions,
//! stepping past the end) and `VecEnv`'s autoreset.

use serde_json::Value;
use wgnn::rl::{CartPole, Env, MAX_EPISODE_STEPS, Space, VecEnv};

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cartpole_gym.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture")).expect("JSON")
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
