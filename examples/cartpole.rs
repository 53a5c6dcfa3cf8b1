//! CartPole-v1 learnt by a policy network, as PyTorch's reinforcement-learning examples do it:
//!
//! - `--algo reinforce` (PyTorch's `reinforce.py`): `Linear(4, 128)`, dropout 0.6, ReLU,
//!   `Linear(128, 2)`; an action sampled from the softmax on the device each step; after the
//!   episode, one Adam step (lr 1e-2) on `Σ −log π(a|s)·Ĝ` with the discounted returns (γ 0.99)
//!   normalised by their mean and standard deviation.
//! - `--algo a2c` (PyTorch's `actor_critic.py`): a shared `Linear(4, 128)` + ReLU with an
//!   action head `Linear(128, 2)` and a value head `Linear(128, 1)` (the policy network and the
//!   value network of the seed material); Adam lr 3e-2 on `Σ −log π(a|s)·(Ĝ − v(s)) +
//!   Σ smooth_l1(v(s), Ĝ)`.
//!
//! Both print the examples' lines every `--log-interval` episodes and `Solved! …` when the
//! running reward (`0.05·episode + 0.95·running`, from 10) passes 475, for each of `--seeds`.
//! The twin is `benches/cartpole.py` (PyTorch + Gymnasium, same nets and rules).
//!
//! ```text
//! cargo run --release --example cartpole -- --algo reinforce --seeds 0,1,2,3,4
//! cargo run --release --example cartpole -- --algo a2c --seeds 0 --plots runs/cartpole \
//!     --tensorboard runs/cartpole/tb --checkpoint-dir runs/cartpole/ckpt
//! cargo run --release --example cartpole -- --algo a2c --play runs/cartpole/ckpt/a2c-seed-0.safetensors \
//!     --plots runs/cartpole
//! ```
//!
//! `--plots DIR` draws the running rewards of every seed (`cartpole_<algo>_curve.png`) and one
//! episode of the first seed's trained agent, acting greedily, as a strip of frames
//! (`cartpole_<algo>_episode.png`). `--checkpoint-dir DIR` keeps each seed's trained policy
//! and optimizer (`<algo>-seed-N.safetensors`); `--play FILE` loads one and only draws its
//! episode.

use clap::Parser;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wgnn::distributions::Categorical;
use wgnn::nn::{Dropout, Linear, Module, ModuleExt, Relu, Sequential, smooth_l1_loss};
use wgnn::optim::Optimizer;
use wgnn::plot::{LineChart, Series};
use wgnn::rl::{CartPole, Env, REWARD_THRESHOLD, discounted_returns, normalize_returns};
use wgnn::tensorboard::SummaryWriter;
use wgnn::train::checkpoint;
use wgnn::{Device, Error, Result, Tensor, manual_seed};

/// CartPole-v1 by REINFORCE or actor-critic.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// reinforce or a2c.
    #[arg(long, default_value = "reinforce")]
    algo: String,
    /// Seeds to train, comma-separated (each: weights, dropout, actions and the env's resets).
    #[arg(long, default_value = "0")]
    seeds: String,
    /// Give up a seed after this many episodes.
    #[arg(long, default_value_t = 2000)]
    max_episodes: usize,
    /// Print a line every this many episodes.
    #[arg(long, default_value_t = 10)]
    log_interval: usize,
    /// Device: cpu (the default: tiny nets, one step at a time), gpu, gpu:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Write every seed's figures and running rewards as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the learning curves and an episode of the trained agent into this directory.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Write TensorBoard event files (episode and running rewards per seed) here.
    #[arg(long)]
    tensorboard: Option<PathBuf>,
    /// Keep each seed's trained policy and optimizer here.
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Load this checkpoint's policy and only draw its episode (needs --plots).
    #[arg(long)]
    play: Option<PathBuf>,
}

/// Which algorithm.
#[derive(Clone, Copy, PartialEq)]
pub enum Algo {
    /// REINFORCE (PyTorch's `reinforce.py`).
    Reinforce,
    /// Actor-critic (PyTorch's `actor_critic.py`).
    A2c,
}

impl Algo {
    fn name(self) -> &'static str {
        match self {
            Algo::Reinforce => "reinforce",
            Algo::A2c => "a2c",
        }
    }

    /// The examples' learning rates.
    fn lr(self) -> f32 {
        match self {
            Algo::Reinforce => 1e-2,
            Algo::A2c => 3e-2,
        }
    }
}

/// PyTorch's actor-critic: a shared layer, an action head and a value head. Its forward
/// returns `[B, 3]`: the two action scores, then the value.
#[derive(Module)]
pub struct ActorCritic {
    affine1: Linear,
    action_head: Linear,
    value_head: Linear,
}

impl Module for ActorCritic {
    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let h = self.affine1.forward(x)?.relu()?;
        let scores = self.action_head.forward(&h)?;
        let value = self.value_head.forward(&h)?;
        Tensor::cat(&[&scores, &value], -1)
    }
}

/// The policy of `algo`, its layers drawn from the global generator as PyTorch's are.
pub fn policy(algo: Algo, dev: &Device) -> Result<Box<dyn Module>> {
    Ok(match algo {
        Algo::Reinforce => Box::new(
            Sequential::new()
                .add("affine1", Linear::new(4, 128, dev)?)?
                .add("dropout", Dropout::new(0.6)?)?
                .add("relu", Relu::new())?
                .add("affine2", Linear::new(128, 2, dev)?)?,
        ),
        Algo::A2c => Box::new(ActorCritic {
            affine1: Linear::new(4, 128, dev)?,
            action_head: Linear::new(128, 2, dev)?,
            value_head: Linear::new(128, 1, dev)?,
        }),
    })
}

/// The action scores `[1, 2]` and, for actor-critic, the value `[1]` of one observation.
pub fn evaluate(
    algo: Algo,
    net: &mut dyn Module,
    obs: Vec<f32>,
    dev: &Device,
) -> Result<(Tensor, Option<Tensor>)> {
    let out = net.forward(&Tensor::from_vec(obs, [1, 4], dev)?)?;
    Ok(match algo {
        Algo::Reinforce => (out, None),
        Algo::A2c => (
            out.narrow(1, 0, 2)?,
            Some(out.narrow(1, 2, 1)?.reshape([1])?),
        ),
    })
}

/// The examples' `finish_episode` loss of one episode: the discounted returns (γ 0.99),
/// normalised, weigh the log-probabilities `[1]` of the actions taken (REINFORCE:
/// `Σ −log π·Ĝ`); actor-critic weighs them by the advantage `Ĝ − v` (v detached) and adds
/// `Σ smooth_l1(v, Ĝ)` for its values `[1]`.
pub fn episode_loss(
    algo: Algo,
    log_probs: &[Tensor],
    values: &[Tensor],
    rewards: &[f32],
    dev: &Device,
) -> Result<Tensor> {
    let steps = rewards.len();
    let mut returns = discounted_returns(rewards, 0.99);
    normalize_returns(&mut returns);
    let g = Tensor::from_vec(returns, [steps], dev)?;
    let lp = Tensor::cat(&log_probs.iter().collect::<Vec<_>>(), 0)?;
    match algo {
        Algo::Reinforce => lp.mul(&g)?.sum()?.neg(),
        Algo::A2c => {
            let v = Tensor::cat(&values.iter().collect::<Vec<_>>(), 0)?;
            let advantage = g.sub(&v.detach())?;
            let policy_loss = lp.mul(&advantage)?.sum()?.neg()?;
            // Σ of the per-step smooth L1 losses: their mean times the steps.
            let value_loss = smooth_l1_loss(&v, &g, 1.0)?.mul_scalar(steps as f32)?;
            policy_loss.add(&value_loss)
        }
    }
}

/// One seed's record.
struct Run {
    seed: u64,
    solved_at: Option<usize>,
    episodes: usize,
    env_steps: usize,
    seconds: f64,
    /// (episode, running reward) after every episode.
    curve: Vec<(usize, f64)>,
}

/// Trains one seed until solved or `--max-episodes`; returns its record and the policy.
fn train(
    algo: Algo,
    seed: u64,
    args: &Args,
    dev: &Device,
    board: &mut Option<SummaryWriter>,
) -> Result<(Run, Box<dyn Module>, Optimizer)> {
    manual_seed(seed);
    let mut net = policy(algo, dev)?;
    let mut opt = Optimizer::adam(algo.lr(), 0.9, 0.999).with_torch_eps(1e-8);
    let mut env = CartPole::new(seed);
    let mut running = 10.0f64;
    let mut run = Run {
        seed,
        solved_at: None,
        episodes: 0,
        env_steps: 0,
        seconds: 0.0,
        curve: Vec::new(),
    };
    let start = Instant::now();
    for episode in 1..=args.max_episodes {
        let mut obs = env.reset(if episode == 1 { Some(seed) } else { None });
        let (mut log_probs, mut values, mut rewards) = (Vec::new(), Vec::new(), Vec::new());
        // The examples' `range(1, 10000)`; CartPole-v1 truncates at 500.
        for _ in 1..10_000 {
            let (scores, value) = evaluate(algo, net.as_mut(), obs, dev)?;
            let pi = Categorical::new(&scores)?;
            let action = pi.sample()?;
            log_probs.push(pi.log_prob(&action)?);
            values.extend(value);
            let step = env.step(action.to_vec::<u32>()?[0] as usize)?;
            rewards.push(step.reward);
            obs = step.observation.clone();
            if step.done() {
                break;
            }
        }
        let (steps, ep_reward) = (rewards.len(), rewards.iter().sum::<f32>() as f64);
        run.env_steps += steps;
        running = 0.05 * ep_reward + 0.95 * running;
        let loss = episode_loss(algo, &log_probs, &values, &rewards, dev)?;
        net.zero_grad();
        loss.backward()?;
        opt.step(net.named_parameters())?;
        run.episodes = episode;
        run.curve.push((episode, running));
        if let Some(b) = board {
            b.add_scalar(
                &format!("seed{seed}/episode_reward"),
                ep_reward as f32,
                episode as i64,
            )?;
            b.add_scalar(
                &format!("seed{seed}/running_reward"),
                running as f32,
                episode as i64,
            )?;
        }
        if episode.is_multiple_of(args.log_interval) {
            println!(
                "Episode {episode}\tLast reward: {ep_reward:.2}\tAverage reward: {running:.2}"
            );
        }
        if running > REWARD_THRESHOLD as f64 {
            println!(
                "Solved! Running reward is now {running} and the last episode runs to {steps} time steps!"
            );
            run.solved_at = Some(episode);
            break;
        }
    }
    run.seconds = start.elapsed().as_secs_f64();
    if run.solved_at.is_none() {
        println!(
            "Not solved in {} episodes (running reward {running:.2})",
            args.max_episodes
        );
    }
    Ok((run, net, opt))
}

/// One greedy episode of `net` (most likely action, dropout off) from `seed`'s first reset,
/// drawn as a strip of frames every 25 steps (and the last) into `path`.
fn draw_episode(
    algo: Algo,
    net: &mut dyn Module,
    seed: u64,
    path: &Path,
    dev: &Device,
) -> Result<usize> {
    net.eval();
    let mut env = CartPole::new(seed);
    let mut obs = env.reset(Some(seed));
    let mut frames = vec![(0, env.state())];
    let steps = loop {
        let (scores, _) = {
            let _guard = wgnn::autograd::no_grad();
            evaluate(algo, net, obs, dev)?
        };
        let action = scores.argmax(-1, false)?.to_vec::<u32>()?[0] as usize;
        let step = env.step(action)?;
        obs = step.observation.clone();
        let t = env.steps();
        if t.is_multiple_of(25) || step.done() {
            frames.push((t, env.state()));
        }
        if step.done() {
            break t;
        }
    };
    net.train();
    let (w, h, cols) = (240, 150, 6);
    let rows = frames.len().div_ceil(cols);
    let mut strip = wgnn::image::Image::filled(cols * w, rows * h, 3, 255)?;
    for (i, (t, state)) in frames.iter().enumerate() {
        let f = wgnn::rl::render_cartpole(*state, &format!("step {t}"), w, h)?;
        let (x0, y0) = ((i % cols) * w, (i / cols) * h);
        for y in 0..h {
            let src = &f.pixels[y * w * 3..(y + 1) * w * 3];
            let at = ((y0 + y) * cols * w + x0) * 3;
            strip.pixels[at..at + w * 3].copy_from_slice(src);
        }
    }
    strip.save_png(path)?;
    Ok(steps)
}

/// The running-reward curves of every seed, with the solved line.
fn draw_curves(algo: Algo, runs: &[Run], path: &Path) -> Result<()> {
    let mut series: Vec<Series> = runs
        .iter()
        .map(|r| {
            Series::new(
                format!("seed {}", r.seed),
                r.curve.iter().map(|&(e, v)| (e as f64, v)).collect(),
            )
        })
        .collect();
    let last = runs.iter().map(|r| r.episodes).max().unwrap_or(1) as f64;
    series.push(Series::new(
        "solved (475)",
        vec![
            (1.0, REWARD_THRESHOLD as f64),
            (last, REWARD_THRESHOLD as f64),
        ],
    ));
    let chart = LineChart {
        title: format!("CartPole-v1, {}: running reward", algo.name()),
        x_label: "episode".into(),
        y_label: "running reward".into(),
        series,
        y_range: Some((0.0, 500.0)),
    };
    chart.render(800, 450)?.save_png(path)
}

#[allow(dead_code)] // tests/cartpole.rs includes this file for `policy` and `episode_loss`
fn main() -> Result<()> {
    let args = Args::parse();
    let algo = match args.algo.as_str() {
        "reinforce" => Algo::Reinforce,
        "a2c" => Algo::A2c,
        other => {
            return Err(Error::invalid(
                "--algo",
                format!("{other:?}: reinforce or a2c"),
            ));
        }
    };
    if args.max_episodes == 0 || args.log_interval == 0 {
        return Err(Error::invalid(
            "--max-episodes/--log-interval",
            "must be ≥ 1",
        ));
    }
    let seeds = wgnn::cli::parse_seeds("--seeds", &args.seeds)?;
    for (flag, dir) in [
        ("--plots", args.plots.as_ref()),
        ("--tensorboard", args.tensorboard.as_ref()),
        ("--checkpoint-dir", args.checkpoint_dir.as_ref()),
    ] {
        if let Some(d) = dir {
            wgnn::cli::check_output_dir(flag, d)?;
        }
    }
    if let Some(f) = &args.json {
        wgnn::cli::check_output_file("--json", f)?;
    }
    let dev = Device::from_spec(&args.device)?;
    let episode_png = |dir: &Path| dir.join(format!("cartpole_{}_episode.png", algo.name()));
    if let Some(path) = &args.play {
        let Some(dir) = &args.plots else {
            return Err(Error::invalid(
                "--play",
                "draws an episode: give --plots DIR",
            ));
        };
        let mut net = policy(algo, &dev)?;
        let mut opt = Optimizer::adam(algo.lr(), 0.9, 0.999).with_torch_eps(1e-8);
        checkpoint::load(path, net.as_mut(), &mut opt)?;
        let steps = draw_episode(algo, net.as_mut(), seeds[0], &episode_png(dir), &dev)?;
        println!(
            "episode of {}: {steps} steps, {}",
            path.display(),
            episode_png(dir).display()
        );
        return Ok(());
    }
    println!(
        "CartPole-v1 by {} on {dev}, seeds {:?}, at most {} episodes each",
        algo.name(),
        seeds,
        args.max_episodes
    );
    let mut board = match &args.tensorboard {
        Some(d) => Some(SummaryWriter::new(d)?),
        None => None,
    };
    let mut runs = Vec::new();
    for (i, &seed) in seeds.iter().enumerate() {
        println!("-- seed {seed}");
        let (run, mut net, opt) = train(algo, seed, &args, &dev, &mut board)?;
        if let Some(dir) = &args.checkpoint_dir {
            let path = dir.join(format!("{}-seed-{seed}.safetensors", algo.name()));
            checkpoint::save(&path, net.as_mut(), &opt, run.episodes)?;
        }
        if let (0, Some(dir)) = (i, &args.plots) {
            let steps = draw_episode(algo, net.as_mut(), seed, &episode_png(dir), &dev)?;
            println!(
                "seed {seed}'s agent, greedy: {steps} steps ({})",
                episode_png(dir).display()
            );
        }
        runs.push(run);
    }
    println!(
        "\n{:>6} {:>7} {:>9} {:>10} {:>9} {:>9} {:>12}",
        "seed", "solved", "episodes", "env steps", "seconds", "s/100 ep", "ms/100 steps"
    );
    for r in &runs {
        println!(
            "{:>6} {:>7} {:>9} {:>10} {:>9.1} {:>9.2} {:>12.2}",
            r.seed,
            if r.solved_at.is_some() { "yes" } else { "no" },
            r.solved_at.map_or("-".to_string(), |e| e.to_string()),
            r.env_steps,
            r.seconds,
            100.0 * r.seconds / r.episodes as f64,
            1e5 * r.seconds / r.env_steps as f64
        );
    }
    let mut solved: Vec<usize> = runs.iter().filter_map(|r| r.solved_at).collect();
    solved.sort_unstable();
    let median = match solved.len() {
        0 => None,
        n if n % 2 == 1 => Some(solved[n / 2] as f64),
        n => Some((solved[n / 2 - 1] + solved[n / 2]) as f64 / 2.0),
    };
    println!(
        "solved {} of {} seeds; median episodes to solve: {}",
        solved.len(),
        runs.len(),
        median.map_or("-".to_string(), |m| m.to_string())
    );
    if let Some(dir) = &args.plots {
        let path = dir.join(format!("cartpole_{}_curve.png", algo.name()));
        draw_curves(algo, &runs, &path)?;
        println!("learning curves: {}", path.display());
    }
    if let Some(path) = &args.json {
        let per_seed: Vec<Value> = runs
            .iter()
            .map(|r| {
                json!({"seed": r.seed, "solved": r.solved_at.is_some(),
                       "episodes_to_solve": r.solved_at, "episodes": r.episodes,
                       "env_steps": r.env_steps, "seconds": r.seconds,
                       "seconds_per_100_episodes": 100.0 * r.seconds / r.episodes as f64,
                       "ms_per_100_steps": 1e5 * r.seconds / r.env_steps as f64,
                       "log": r.curve.iter().filter(|(e, _)| e.is_multiple_of(args.log_interval))
                           .map(|&(e, v)| json!({"episode": e, "running_reward": v}))
                           .collect::<Vec<_>>()})
            })
            .collect();
        let doc = json!({"algo": algo.name(), "device": dev.to_string(),
                         "threads": rayon::current_num_threads(),
                         "solved": solved.len(), "median_episodes_to_solve": median,
                         "runs": per_seed});
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::invalid("--json", e.to_string()))?;
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}
