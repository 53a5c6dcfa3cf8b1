//! Reinforcement learning: environments an agent acts in, and the policy-gradient arithmetic
//! on their rewards.
//!
//! - [`Env`]: Gymnasium's interface in Rust (`reset`, `step`, observation and action spaces),
//!   and [`VecEnv`], N environments stepped in one call with automatic resets.
//! - [`CartPole`]: Gymnasium's `CartPole-v1`, its physics step for step (f64 state, Euler
//!   steps, the same operation order), seeded; `render_cartpole` draws a frame of it (with the
//!   `plots` feature).
//! - [`discounted_returns`], [`normalize_returns`], [`nstep_returns`]: the returns REINFORCE
//!   and actor-critic weigh their log-probabilities by.
//!
//! Actions are sampled on the device by [`crate::distributions::Categorical`].

mod cartpole;
#[cfg(feature = "plots")]
mod render;

pub use cartpole::{CartPole, MAX_EPISODE_STEPS, REWARD_THRESHOLD};
#[cfg(feature = "plots")]
pub use render::render_cartpole;

use crate::error::{Error, Result};

/// The set of an environment's observations or actions (Gymnasium's `spaces`).
#[derive(Clone, Debug, PartialEq)]
pub enum Space {
    /// The integers `0..n`.
    Discrete(usize),
    /// Real vectors within `low ..= high`, element by element (unbounded: ±∞).
    Box {
        /// Lower bounds.
        low: Vec<f32>,
        /// Upper bounds.
        high: Vec<f32>,
    },
}

impl Space {
    /// Elements of one value: 1 for a discrete space, the vector length of a box.
    pub fn size(&self) -> usize {
        match self {
            Space::Discrete(_) => 1,
            Space::Box { low, .. } => low.len(),
        }
    }

    /// The number of choices of a discrete space (`None` for a box).
    pub fn choices(&self) -> Option<usize> {
        match self {
            Space::Discrete(n) => Some(*n),
            Space::Box { .. } => None,
        }
    }
}

/// What one step of an environment returns (Gymnasium's `obs, reward, terminated,
/// truncated`).
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The observation after the step.
    pub observation: Vec<f32>,
    /// The reward for the step.
    pub reward: f32,
    /// The episode ended by the task's rules (the pole fell, the cart left the track).
    pub terminated: bool,
    /// The episode was cut at its time limit.
    pub truncated: bool,
}

impl Step {
    /// The episode is over either way.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// An environment with discrete actions (Gymnasium's `Env`).
pub trait Env {
    /// Its observations.
    fn observation_space(&self) -> Space;
    /// Its actions.
    fn action_space(&self) -> Space;
    /// Starts an episode and returns its first observation; `Some(seed)` reseeds the
    /// environment's generator first (as `reset(seed=…)`), `None` goes on with its stream.
    fn reset(&mut self, seed: Option<u64>) -> Vec<f32>;
    /// Takes `action`; an action outside the action space, or a step after the episode ended
    /// without a reset, is an error naming it.
    fn step(&mut self, action: usize) -> Result<Step>;
}

/// `n` environments stepped together (Gymnasium's vector environments, same-step autoreset):
/// observations are `[n, obs]` row-major, and an environment whose episode ends is reset at
/// once, so the observation it returns is the next episode's first one (the last one of the
/// finished episode is in [`VecStep::final_observations`]).
pub struct VecEnv<E: Env> {
    envs: Vec<E>,
}

/// One step of a [`VecEnv`].
#[derive(Clone, Debug, PartialEq)]
pub struct VecStep {
    /// `[n, obs]`: each environment's next observation (after a reset where it finished).
    pub observations: Vec<f32>,
    /// Each environment's reward.
    pub rewards: Vec<f32>,
    /// Each environment's episode ended by the task's rules.
    pub terminated: Vec<bool>,
    /// Each environment's episode was cut at its time limit.
    pub truncated: Vec<bool>,
    /// The last observation of each episode that ended this step, by environment index.
    pub final_observations: Vec<(usize, Vec<f32>)>,
}

impl<E: Env> VecEnv<E> {
    /// The environments `envs` (at least one).
    pub fn new(envs: Vec<E>) -> Result<VecEnv<E>> {
        if envs.is_empty() {
            return Err(Error::invalid(
                "VecEnv::new",
                "needs at least one environment",
            ));
        }
        Ok(VecEnv { envs })
    }

    /// The number of environments.
    pub fn len(&self) -> usize {
        self.envs.len()
    }

    /// Never: a `VecEnv` holds at least one environment.
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    /// Resets every environment (environment i with `seed + i` when seeded) → `[n, obs]`.
    pub fn reset(&mut self, seed: Option<u64>) -> Vec<f32> {
        let mut out = Vec::new();
        for (i, e) in self.envs.iter_mut().enumerate() {
            out.extend(e.reset(seed.map(|s| s.wrapping_add(i as u64))));
        }
        out
    }

    /// Steps environment i with `actions[i]`; one action per environment.
    pub fn step(&mut self, actions: &[usize]) -> Result<VecStep> {
        if actions.len() != self.envs.len() {
            return Err(Error::invalid(
                "VecEnv::step",
                format!(
                    "{} actions for {} environments",
                    actions.len(),
                    self.envs.len()
                ),
            ));
        }
        let n = self.envs.len();
        let mut out = VecStep {
            observations: Vec::new(),
            rewards: Vec::with_capacity(n),
            terminated: Vec::with_capacity(n),
            truncated: Vec::with_capacity(n),
            final_observations: Vec::new(),
        };
        for (i, (e, &a)) in self.envs.iter_mut().zip(actions).enumerate() {
            let s = e.step(a)?;
            out.rewards.push(s.reward);
            out.terminated.push(s.terminated);
            out.truncated.push(s.truncated);
            if s.done() {
                out.final_observations.push((i, s.observation));
                out.observations.extend(e.reset(None));
            } else {
                out.observations.extend(s.observation);
            }
        }
        Ok(out)
    }

    /// The environments.
    pub fn envs(&self) -> &[E] {
        &self.envs
    }
}

/// Discounted returns of one episode's rewards: `G_t = r_t + γ·G_{t+1}`, summed in f64 from
/// the end (as PyTorch's REINFORCE example sums them in Python floats).
pub fn discounted_returns(rewards: &[f32], gamma: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; rewards.len()];
    let mut g = 0.0f64;
    for (o, &r) in out.iter_mut().zip(rewards).rev() {
        g = r as f64 + gamma as f64 * g;
        *o = g as f32;
    }
    out
}

/// Normalises returns in place to `(G − mean) / (std + ε)` with the unbiased standard
/// deviation and ε = f32's machine epsilon (PyTorch's REINFORCE and actor-critic examples);
/// fewer than two returns are left as they are (their deviation is undefined).
pub fn normalize_returns(returns: &mut [f32]) {
    let n = returns.len();
    if n < 2 {
        return;
    }
    let mean = returns.iter().map(|&g| g as f64).sum::<f64>() / n as f64;
    let var = returns
        .iter()
        .map(|&g| (g as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1) as f64;
    let scale = 1.0 / (var.sqrt() + f32::EPSILON as f64);
    for g in returns.iter_mut() {
        *g = ((*g as f64 - mean) * scale) as f32;
    }
}

/// n-step returns of a rollout of `steps` steps in `envs` environments (time-major,
/// `rewards[t·envs + e]`): `G_t = r_t + γ·(1 − done_t)·G_{t+1}`, starting from the critic's
/// `bootstrap` value of each environment's state after the last step (an ended episode does
/// not look past its end).
pub fn nstep_returns(
    rewards: &[f32],
    dones: &[bool],
    bootstrap: &[f32],
    gamma: f32,
) -> Result<Vec<f32>> {
    let envs = bootstrap.len();
    if envs == 0 || rewards.len() != dones.len() || !rewards.len().is_multiple_of(envs) {
        return Err(Error::invalid(
            "nstep_returns",
            format!(
                "{} rewards, {} done flags and {} bootstrap values: need steps × envs of each \
                 flag and one value per environment",
                rewards.len(),
                dones.len(),
                envs
            ),
        ));
    }
    let mut out = vec![0.0f32; rewards.len()];
    let mut g: Vec<f64> = bootstrap.iter().map(|&v| v as f64).collect();
    for t in (0..rewards.len() / envs).rev() {
        for (e, ge) in g.iter_mut().enumerate() {
            let i = t * envs + e;
            let next = if dones[i] { 0.0 } else { *ge };
            *ge = rewards[i] as f64 + gamma as f64 * next;
            out[i] = *ge as f32;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounted_returns_by_hand() {
        let g = discounted_returns(&[1.0, 1.0, 1.0], 0.5);
        assert_eq!(g, [1.75, 1.5, 1.0]);
        assert!(discounted_returns(&[], 0.99).is_empty());
    }

    #[test]
    fn normalized_returns_have_mean_0_and_unbiased_std_1() {
        let mut g = discounted_returns(&[1.0; 50], 0.99);
        normalize_returns(&mut g);
        let n = g.len() as f64;
        let mean = g.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = g.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert!(
            mean.abs() < 1e-6 && (var.sqrt() - 1.0).abs() < 1e-5,
            "{mean} {var}"
        );
        let mut one = [3.0f32];
        normalize_returns(&mut one);
        assert_eq!(one, [3.0]);
    }

    #[test]
    fn nstep_returns_stop_at_episode_ends() {
        // Two environments, three steps; environment 1's episode ends at step 1.
        let rewards = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let dones = [false, false, false, true, false, false];
        let g = nstep_returns(&rewards, &dones, &[10.0, 20.0], 0.5).unwrap();
        // env 0: 1 + .5(1 + .5(1 + .5·10)) = 2.25 + ... ; by hand:
        let e0_t2 = 1.0 + 0.5 * 10.0;
        let e0_t1 = 1.0 + 0.5 * e0_t2;
        let e0_t0 = 1.0 + 0.5 * e0_t1;
        let e1_t2 = 1.0 + 0.5 * 20.0;
        let e1_t1 = 1.0; // done: nothing after it
        let e1_t0 = 1.0 + 0.5 * e1_t1;
        assert_eq!(g, [e0_t0, e1_t0, e0_t1, e1_t1, e0_t2, e1_t2]);
        assert!(nstep_returns(&rewards, &dones[..5], &[0.0, 0.0], 0.9).is_err());
        assert!(nstep_returns(&rewards, &dones, &[], 0.9).is_err());
    }
}
