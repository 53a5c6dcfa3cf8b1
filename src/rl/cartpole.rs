//! Gymnasium's `CartPole-v1` (Barto, Sutton & Anderson's cart-pole): a pole hinged on a cart
//! that moves along a track; push the cart left or right to keep the pole up.

use super::{Env, Space, Step};
use crate::error::{Error, Result};
use crate::rng::SplitMix64;

/// Gravity (m/s²).
const GRAVITY: f64 = 9.8;
/// Cart mass (kg).
const MASSCART: f64 = 1.0;
/// Pole mass (kg).
const MASSPOLE: f64 = 0.1;
/// Total mass, summed as Gymnasium does.
const TOTAL_MASS: f64 = MASSPOLE + MASSCART;
/// Half the pole's length (m).
const LENGTH: f64 = 0.5;
/// Pole mass × half-length.
const POLEMASS_LENGTH: f64 = MASSPOLE * LENGTH;
/// The push's magnitude (N).
const FORCE_MAG: f64 = 10.0;
/// Seconds per step.
const TAU: f64 = 0.02;
/// The pole falls past ±12°, computed as Gymnasium does (`12 * 2 * π / 360`).
const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
/// The cart leaves the track past ±2.4 m.
const X_THRESHOLD: f64 = 2.4;
/// Steps after which an episode is truncated (`CartPole-v1`'s time limit).
pub const MAX_EPISODE_STEPS: usize = 500;
/// The running reward at which `CartPole-v1` counts as solved.
pub const REWARD_THRESHOLD: f32 = 475.0;

/// `CartPole-v1` as Gymnasium 1.x steps it: state `(x, ẋ, θ, θ̇)` in f64, Euler integration
/// of the cart-pole equations with the same operations in the same order (Gymnasium's
/// recorded trajectories replay within 5e-16, 500 steps included), observations the state in f32,
/// reward 1 per step (the terminating one included), terminated when |x| > 2.4 or |θ| > 12°,
/// truncated after 500 steps. Actions: 0 pushes left, 1 right. A reset draws each state
/// variable uniformly in ±0.05 from the environment's own generator (SplitMix64, seeded:
/// not numpy's stream, so a seed gives other initial states than Gymnasium's).
#[derive(Clone, Debug)]
pub struct CartPole {
    state: [f64; 4],
    rng: SplitMix64,
    steps: usize,
    over: bool,
}

impl CartPole {
    /// A cart-pole whose resets draw from `seed`; call [`Env::reset`] before stepping.
    pub fn new(seed: u64) -> CartPole {
        CartPole {
            state: [0.0; 4],
            rng: SplitMix64::new(seed),
            steps: 0,
            // Stepping before the first reset is refused.
            over: true,
        }
    }

    /// The state `(x, ẋ, θ, θ̇)` in f64.
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// Starts an episode from `state` (e.g. one Gymnasium recorded) and returns its
    /// observation.
    pub fn reset_to(&mut self, state: [f64; 4]) -> Vec<f32> {
        self.state = state;
        self.steps = 0;
        self.over = false;
        self.observation()
    }

    /// Steps taken in this episode.
    pub fn steps(&self) -> usize {
        self.steps
    }

    fn observation(&self) -> Vec<f32> {
        self.state.iter().map(|&v| v as f32).collect()
    }
}

impl Env for CartPole {
    fn observation_space(&self) -> Space {
        let high = [
            (2.0 * X_THRESHOLD) as f32,
            f32::INFINITY,
            (2.0 * THETA_THRESHOLD) as f32,
            f32::INFINITY,
        ];
        Space::Box {
            low: high.iter().map(|h| -h).collect(),
            high: high.to_vec(),
        }
    }

    fn action_space(&self) -> Space {
        Space::Discrete(2)
    }

    fn reset(&mut self, seed: Option<u64>) -> Vec<f32> {
        if let Some(s) = seed {
            self.rng = SplitMix64::new(s);
        }
        let state = std::array::from_fn(|_| -0.05 + 0.1 * self.rng.next_f64());
        self.reset_to(state)
    }

    fn step(&mut self, action: usize) -> Result<Step> {
        if action > 1 {
            return Err(Error::invalid(
                "CartPole::step",
                format!("action {action}: 0 (push left) or 1 (push right)"),
            ));
        }
        if self.over {
            return Err(Error::invalid(
                "CartPole::step",
                "the episode is over (or never started): call reset first",
            ));
        }
        let [x, x_dot, theta, theta_dot] = self.state;
        let force = if action == 1 { FORCE_MAG } else { -FORCE_MAG };
        let (sintheta, costheta) = (theta.sin(), theta.cos());
        // Gymnasium's expressions, parenthesised as numpy evaluates them.
        let temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS;
        let thetaacc = (GRAVITY * sintheta - costheta * temp)
            / (LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / TOTAL_MASS));
        let xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS;
        self.state = [
            x + TAU * x_dot,
            x_dot + TAU * xacc,
            theta + TAU * theta_dot,
            theta_dot + TAU * thetaacc,
        ];
        self.steps += 1;
        let [x, _, theta, _] = self.state;
        let terminated = !(-X_THRESHOLD..=X_THRESHOLD).contains(&x)
            || !(-THETA_THRESHOLD..=THETA_THRESHOLD).contains(&theta);
        let truncated = self.steps >= MAX_EPISODE_STEPS;
        self.over = terminated || truncated;
        Ok(Step {
            observation: self.observation(),
            reward: 1.0,
            terminated,
            truncated,
        })
    }
}
