#!/usr/bin/env python3
"""PyTorch's CartPole examples (REINFORCE and actor-critic) on Gymnasium's CartPole-v1, for several
seeds: the twin of `examples/cartpole.rs`. With `--fixture`, it writes Gymnasium's CartPole
trajectories for the test that wgnn's CartPole equals Gymnasium's instead; with `--update-fixture`,
one policy-gradient update of each algorithm (initial parameters, an episode, its loss, the
gradients and the parameters after one Adam step) for the test that wgnn's update equals PyTorch's.

The two algorithms are PyTorch's examples repo's `reinforcement_learning/reinforce.py` and
`reinforcement_learning/actor_critic.py` as they stand (Gymnasium API, `terminated or truncated`
ends an episode):

- `reinforce`: Linear(4, 128) → Dropout(0.6) → ReLU → Linear(128, 2) → softmax (dropout stays on:
  the example never calls `eval()`), Adam lr 1e-2; loss Σ −log π(a|s)·R̂.
- `a2c`: Linear(4, 128) → ReLU, then an action head Linear(128, 2) → softmax and a value head
  Linear(128, 1), Adam lr 3e-2; loss Σ −log π(a|s)·(R̂ − v.item()) + Σ smooth_l1(v, R̂).

Both: γ 0.99, one Adam step per episode, R̂ the discounted returns normalised by their mean and
(unbiased) standard deviation + float32's eps; per seed `torch.manual_seed(seed)`, a fresh
`gym.make("CartPole-v1")`, `env.reset(seed=seed)` once and `env.reset()` before each episode;
episodes of at most 9,999 steps (the env truncates at 500); running reward starts at 10 and
moves by 0.05·(episode reward); solved when it exceeds the spec's reward threshold (475). The
example's log line every `--log-interval` episodes and its `Solved!` line; a table at the end.

    /work/venv-torch/bin/python benches/cartpole.py --algo reinforce --seeds 0,1,2,3,4
    /work/venv-torch/bin/python benches/cartpole.py --algo a2c --seeds 0 --json runs/cartpole_a2c_torch.json
    /work/venv-torch/bin/python benches/cartpole.py --fixture tests/fixtures/cartpole_gym.json
    /work/venv-torch/bin/python benches/cartpole.py --update-fixture tests/fixtures/cartpole_update.json

Needs PyTorch and Gymnasium (`pip install torch gymnasium`, in a virtual environment outside the
repository); the Rust tests read only the fixture.
"""
import argparse
import json
import os
import statistics
import time
from collections import deque
from itertools import count

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.distributions import Categorical

ENV_ID = "CartPole-v1"
GAMMA = 0.99
LR = {"reinforce": 1e-2, "a2c": 3e-2}
EPS = np.finfo(np.float32).eps.item()
MAX_STEPS = 10000  # the examples' `range(1, 10000)`: at most 9,999 steps an episode


class ReinforcePolicy(nn.Module):
    """reinforce.py's `Policy`: action probabilities of a batch of observations `[n, 4]`."""

    def __init__(self):
        super().__init__()
        self.affine1 = nn.Linear(4, 128)
        self.dropout = nn.Dropout(p=0.6)
        self.affine2 = nn.Linear(128, 2)

    def forward(self, x):
        x = self.affine1(x)
        x = self.dropout(x)
        x = F.relu(x)
        action_scores = self.affine2(x)
        return F.softmax(action_scores, dim=1)


class ActorCritic(nn.Module):
    """actor_critic.py's `Policy`: action probabilities `[2]` and state value `[1]` of one
    observation `[4]`."""

    def __init__(self):
        super().__init__()
        self.affine1 = nn.Linear(4, 128)
        self.action_head = nn.Linear(128, 2)
        self.value_head = nn.Linear(128, 1)

    def forward(self, x):
        x = F.relu(self.affine1(x))
        action_prob = F.softmax(self.action_head(x), dim=-1)
        state_values = self.value_head(x)
        return action_prob, state_values


def normalised_returns(rewards, gamma=GAMMA):
    """The examples' returns: R = r + γR from the last step back (in Python floats), then as a
    float32 tensor normalised by its mean and unbiased standard deviation + float32's eps."""
    R = 0
    returns = deque()
    for r in rewards[::-1]:
        R = r + gamma * R
        returns.appendleft(R)
    returns = torch.tensor(returns)
    return (returns - returns.mean()) / (returns.std() + EPS)


def select_action(algo, model, state, saved):
    """Samples an action from the policy at the float32 observation `state` and appends what the
    update needs (REINFORCE: log-prob `[1]`; A2C: (log-prob `[]`, value `[1]`)) to `saved`."""
    if algo == "reinforce":
        probs = model(torch.from_numpy(state).float().unsqueeze(0))
        m = Categorical(probs)
        action = m.sample()
        saved.append(m.log_prob(action))
    else:
        probs, state_value = model(torch.from_numpy(state).float())
        m = Categorical(probs)
        action = m.sample()
        saved.append((m.log_prob(action), state_value))
    return action.item()


def episode_loss(algo, saved, rewards):
    """The loss of the examples' `finish_episode` over one episode's `saved` (from select_action)
    and rewards; returns (loss `[]`, the normalised returns `[n]`)."""
    returns = normalised_returns(rewards)
    if algo == "reinforce":
        loss = torch.cat([-log_prob * R for log_prob, R in zip(saved, returns)]).sum()
    else:
        policy_losses, value_losses = [], []
        for (log_prob, value), R in zip(saved, returns):
            advantage = R - value.item()
            policy_losses.append(-log_prob * advantage)
            value_losses.append(F.smooth_l1_loss(value, torch.tensor([R])))
        loss = torch.stack(policy_losses).sum() + torch.stack(value_losses).sum()
    return loss, returns


def finish_episode(algo, optimizer, saved, rewards):
    """The examples' `finish_episode`: the episode's loss and one Adam step."""
    loss, _ = episode_loss(algo, saved, rewards)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def train(algo, seed, max_episodes, log_interval):
    """Trains one seed as the example's `main` does, for at most `max_episodes` episodes; returns
    its record (solved, episodes, env steps, wall time, the logged running rewards)."""
    start = time.perf_counter()
    env = gym.make(ENV_ID)
    env.reset(seed=seed)
    torch.manual_seed(seed)
    model = ReinforcePolicy() if algo == "reinforce" else ActorCritic()
    optimizer = optim.Adam(model.parameters(), lr=LR[algo])
    threshold = env.spec.reward_threshold
    running_reward = 10
    env_steps = 0
    log = []
    solved_at = None
    for i_episode in count(1):
        state, _ = env.reset()
        ep_reward = 0
        saved, rewards = [], []
        for t in range(1, MAX_STEPS):
            action = select_action(algo, model, state, saved)
            state, reward, terminated, truncated, _ = env.step(action)
            rewards.append(reward)
            ep_reward += reward
            if terminated or truncated:
                break
        env_steps += t
        running_reward = 0.05 * ep_reward + (1 - 0.05) * running_reward
        finish_episode(algo, optimizer, saved, rewards)
        if i_episode % log_interval == 0:
            print(f"Episode {i_episode}\tLast reward: {ep_reward:.2f}\tAverage reward: {running_reward:.2f}")
            log.append({"episode": i_episode, "last_reward": ep_reward, "running_reward": running_reward})
        if running_reward > threshold:
            print(f"Solved! Running reward is now {running_reward} and the last episode runs to {t} time steps!")
            solved_at = i_episode
            break
        if i_episode >= max_episodes:
            print(f"Not solved in {max_episodes} episodes (running reward {running_reward:.2f})")
            break
    env.close()
    seconds = time.perf_counter() - start
    return {
        "seed": seed,
        "solved": solved_at is not None,
        "episodes_to_solve": solved_at,
        "episodes": i_episode,
        "env_steps": env_steps,
        "seconds": seconds,
        "seconds_per_100_episodes": 100 * seconds / i_episode,
        "final_running_reward": running_reward,
        "log": log,
    }


def summarise(algo, runs, threads):
    """Prints one row per seed and the median episodes-to-solve over the solved seeds; returns
    that median (None when no seed solved)."""
    print(f"\n{algo} on {ENV_ID}: torch {torch.__version__}, gymnasium {gym.__version__}, {threads} thread(s)")
    print(f"{'seed':>6} {'solved':>7} {'episodes':>9} {'env steps':>10} {'seconds':>9} {'s/100 ep':>9}")
    for r in runs:
        episodes = r["episodes_to_solve"] if r["solved"] else f">{r['episodes']}"
        print(f"{r['seed']:>6} {'yes' if r['solved'] else 'no':>7} {episodes:>9} {r['env_steps']:>10} "
              f"{r['seconds']:>9.1f} {r['seconds_per_100_episodes']:>9.2f}")
    solved = [r["episodes_to_solve"] for r in runs if r["solved"]]
    median = statistics.median(solved) if solved else None
    print(f"median episodes to solve over the {len(solved)}/{len(runs)} solved seeds: "
          f"{median if median is not None else '-'}")
    return median


# ---- the fixture: Gymnasium's CartPole-v1 trajectories under fixed action lists ----

def hashed_action(t, seed):
    """The fixture's pseudo-random action at step t (from 0) of the episode reset with `seed`:
    ((t·2654435761 + seed·40503) >> 7) & 1 (no u64 overflow for t, seed < 2^31)."""
    return ((t * 2654435761 + seed * 40503) >> 7) & 1


def linear_controller(gains, bias=0.0):
    """Push right (1) when gains · (x, ẋ, θ, θ̇) + bias > 0 on the float32 observation, else left."""
    def act(t, obs):
        return int(sum(g * float(o) for g, o in zip(gains, obs)) + bias > 0)
    return act


def controller_rule(gains, bias):
    """The fixture's text for linear_controller(gains, bias)."""
    return (f"linear: 1 if {gains[0]}*x + {gains[1]}*x_dot + {gains[2]}*theta + {gains[3]}*theta_dot {bias:+} > 0 "
            "(float32 observation, as float64) else 0")


# Tried in order, each from reset seeds 0..9: the first to last 500 steps makes the time-limit
# case. DRIFTERS balance the pole about θ ≈ −bias, so the cart accelerates off the track:
# the first of each that ends on x makes an x case (one per side).
BALANCERS = [((0.0, 0.0, 1.0, 0.5), 0.0), ((0.01, 0.1, 1.0, 0.5), 0.0), ((0.1, 0.5, 1.0, 0.5), 0.0)]
DRIFTERS = [((0.0, 0.0, 1.0, 0.5), -0.05), ((0.0, 0.0, 1.0, 0.5), 0.05),
            ((0.0, 0.0, 1.0, 0.5), -0.1), ((0.0, 0.0, 1.0, 0.5), 0.1)]


def end_reason(env, state, terminated, truncated):
    """Which of CartPole's rules ended the episode at `state`."""
    u = env.unwrapped
    x, _, theta, _ = state
    why = []
    if x < -u.x_threshold:
        why.append("x < -x_threshold")
    if x > u.x_threshold:
        why.append("x > x_threshold")
    if theta < -u.theta_threshold_radians:
        why.append("theta < -theta_threshold_radians")
    if theta > u.theta_threshold_radians:
        why.append("theta > theta_threshold_radians")
    if truncated:
        why.append(f"time limit ({env.spec.max_episode_steps} steps)")
    return "; ".join(why)


def rollout(seed, policy, rule):
    """One episode of a fresh CartPole-v1 reset with `seed`, actions from policy(t, obs); the
    fixture case: initial state (float64) and observation (float32), then per step the action,
    the internal state after it (float64), reward, terminated and truncated."""
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=seed)
    case = {"seed": seed, "action_rule": rule,
            "initial_state": [float(v) for v in env.unwrapped.state],
            "initial_obs": [float(v) for v in obs],
            "actions": [], "states": [], "rewards": [], "terminated": [], "truncated": []}
    for t in count():
        action = policy(t, obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        state = env.unwrapped.state
        assert np.array_equal(obs, state.astype(np.float32))
        case["actions"].append(action)
        case["states"].append([float(v) for v in state])
        case["rewards"].append(float(reward))
        case["terminated"].append(bool(terminated))
        case["truncated"].append(bool(truncated))
        if terminated or truncated:
            case["steps"] = t + 1
            case["end"] = "terminated" if not truncated else ("truncated" if not terminated else "both")
            case["end_reason"] = end_reason(env, state, terminated, truncated)
            break
    env.close()
    return case


def write_fixture(path):
    """Gymnasium's CartPole-v1 constants and trajectories: reset seeds 0..4 under `hashed_action`,
    then a BALANCERS controller's episode that lasts the 500 steps to truncation and two of
    DRIFTERS' that balance the pole while the cart runs off the track (one each side)."""
    env = gym.make(ENV_ID)
    u = env.unwrapped
    constants = {k: getattr(u, k) for k in ("gravity", "masscart", "masspole", "total_mass", "length",
                                            "polemass_length", "force_mag", "tau", "theta_threshold_radians",
                                            "x_threshold", "kinematics_integrator")}
    constants["sutton_barto_reward"] = u._sutton_barto_reward
    constants["max_episode_steps"] = env.spec.max_episode_steps
    constants["reward_threshold"] = env.spec.reward_threshold
    # What env.reset() (no seed) gives after env.reset(seed=0): the training loop's resets.
    env.reset(seed=0)
    reset_stream = [[float(v) for v in u.state]]
    for _ in range(4):
        env.reset()
        reset_stream.append([float(v) for v in u.state])
    env.close()
    cases = [rollout(s, lambda t, obs, s=s: hashed_action(t, s),
                     f"hashed: ((t * 2654435761 + {s} * 40503) >> 7) & 1, t from 0")
             for s in range(5)]
    found = {"time limit": None, "x < -x_threshold": None, "x > x_threshold": None}
    for key, controllers in (("time limit", BALANCERS), ("x", DRIFTERS)):
        for gains, bias in controllers:
            for s in range(10):
                case = rollout(s, linear_controller(gains, bias), controller_rule(gains, bias))
                for want in found:
                    if want.startswith(key) and found[want] is None and case["end_reason"].startswith(want):
                        found[want] = case
    for want, case in found.items():
        if case is None:
            raise SystemExit(f"--fixture: no controller ends on {want!r}; widen BALANCERS or DRIFTERS")
        cases.append(case)
    with open(path, "w") as f:
        json.dump({"gymnasium": gym.__version__, "numpy": np.__version__, "env": ENV_ID,
                   "constants": constants,
                   "reset_stream": {"seed": 0, "note": "env.reset(seed=0) then env.reset() four times: "
                                    "the internal states (float64)", "states": reset_stream},
                   "cases": cases}, f)
    for c in cases:
        print(f"seed {c['seed']}: {c['steps']} steps, {c['end']} ({c['end_reason']}); {c['action_rule']}")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


# ---- the update fixture: one policy-gradient update of each algorithm ----

UPDATE_MAX_STEPS = 60  # the update fixture's episodes stop here (keeps the fixture small)


def named_tensors(pairs):
    """name → {"shape", "values": the float32 values flattened row-major, as Python floats}."""
    return {name: {"shape": list(t.shape), "values": t.detach().flatten().tolist()} for name, t in pairs}


def update_case(algo):
    """One update of `algo` as `train` and `finish_episode` do it, from `torch.manual_seed(0)` and
    one CartPole-v1 episode reset with seed 0 (at most UPDATE_MAX_STEPS steps): the initial
    parameters, the episode (observations each action was drawn from, actions, rewards), the
    policy's per-step probabilities, log-probs (and values), the returns, the loss, every
    parameter's gradient and the parameters after one Adam step. The REINFORCE net runs in eval()
    mode throughout, so its dropout is off (a test cannot reproduce PyTorch's dropout masks)."""
    torch.manual_seed(0)
    model = ReinforcePolicy() if algo == "reinforce" else ActorCritic()
    optimizer = optim.Adam(model.parameters(), lr=LR[algo])
    adam = optimizer.param_groups[0]
    initial = named_tensors(model.named_parameters())
    if algo == "reinforce":
        model.eval()
    env = gym.make(ENV_ID)
    state, _ = env.reset(seed=0)
    observations, actions, rewards, saved = [], [], [], []
    end = f"capped at {UPDATE_MAX_STEPS} steps (the fixture's cap, not the env's)"
    for t in range(1, UPDATE_MAX_STEPS + 1):
        observations.append([float(v) for v in state])
        actions.append(select_action(algo, model, state, saved))
        state, reward, terminated, truncated, _ = env.step(actions[-1])
        rewards.append(float(reward))
        if terminated or truncated:
            end = "terminated" if terminated else "truncated"
            break
    env.close()
    # The probabilities again from the recorded observations (the same eval-mode forward).
    with torch.no_grad():
        probs = [model(torch.tensor(obs).unsqueeze(0))[0] if algo == "reinforce" else model(torch.tensor(obs))[0]
                 for obs in observations]
    loss, returns = episode_loss(algo, saved, rewards)
    optimizer.zero_grad()
    loss.backward()
    grads = named_tensors((name, p.grad) for name, p in model.named_parameters())
    optimizer.step()
    discounted, R = [], 0.0
    for r in rewards[::-1]:
        R = r + GAMMA * R
        discounted.insert(0, R)
    case = {
        "algo": algo, "torch_seed": 0, "reset_seed": 0, "steps": len(actions), "end": end,
        "gamma": GAMMA, "returns_eps": EPS,
        "lr": adam["lr"], "adam_betas": list(adam["betas"]), "adam_eps": adam["eps"],
        "adam_weight_decay": adam["weight_decay"], "adam_amsgrad": adam["amsgrad"],
        "initial_params": initial,
        "observations": observations, "actions": actions, "rewards": rewards,
        "probs": [p.tolist() for p in probs],
        "log_probs": [float(lp.item()) if algo == "reinforce" else float(lp[0].item()) for lp in saved],
        "discounted_returns": discounted,
        "returns": returns.tolist(),
        "loss": loss.item(),
        "grads": grads,
        "params_after_adam": named_tensors(model.named_parameters()),
    }
    if algo == "reinforce":
        case["dropout"] = "off (eval mode)"
    else:
        case["values"] = [float(v.item()) for _, v in saved]
    return case


def write_update_fixture(path):
    """The update fixture: update_case for reinforce then a2c, with how PyTorch computes it."""
    cases = [update_case(algo) for algo in ("reinforce", "a2c")]
    note = ("Per algo: torch.manual_seed(0), the net built as benches/cartpole.py builds it, Adam(lr) made; "
            "env.reset(seed=0), one episode (at most %d steps) with actions drawn from Categorical(probs) "
            "(REINFORCE in eval() mode: dropout off); observations[t] is the float32 observation action t was "
            "drawn from. log_prob = log(clamp(p / p.sum(), eps32, 1 - eps32))[action], p = softmax(logits). "
            "returns: R = r + gamma*R backwards in float64, then float32, (R - mean) / (std(unbiased) + eps32). "
            "reinforce loss: sum_t -log_prob_t * R_t. a2c loss: sum_t -log_prob_t * (R_t - value_t.item()) "
            "(advantage detached) + sum_t smooth_l1_loss(value_t [1], [R_t] [1], beta=1, mean). grads: after "
            "loss.backward() from zero; params_after_adam: after one torch.optim.Adam step (step 1, "
            "bias-corrected). Parameters: name -> {shape, values row-major}, nn.Linear weight [out, in]."
            % UPDATE_MAX_STEPS)
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "gymnasium": gym.__version__, "env": ENV_ID,
                   "note": note, "cases": cases}, f)
    for c in cases:
        print(f"{c['algo']}: {c['steps']} steps ({c['end']}), loss {c['loss']:.6f}")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="reinforce", choices=["reinforce", "a2c"],
                   help="reinforce (reinforce.py) or a2c (actor_critic.py)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (non-negative integers)")
    p.add_argument("--max-episodes", type=int, default=2000, help="give up on a seed after this many episodes")
    p.add_argument("--log-interval", type=int, default=10, help="print and record the running reward every N episodes")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (these nets are tiny)")
    p.add_argument("--json", help="write the runs and the summary here")
    p.add_argument("--fixture", help="write the Gymnasium CartPole fixture here and stop")
    p.add_argument("--update-fixture", help="write the one-update (loss, gradients, Adam step) fixture here and stop")
    args = p.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds {args.seeds!r}: comma-separated integers, e.g. 0,1,2")
    if any(s < 0 for s in seeds):
        p.error(f"--seeds {args.seeds}: Gymnasium takes non-negative seeds only")
    args.seeds = seeds
    for flag in ("max_episodes", "log_interval", "threads"):
        v = getattr(args, flag)
        if v < 1:
            p.error(f"--{flag.replace('_', '-')} {v}: must be ≥ 1")
    for flag in ("json", "fixture", "update_fixture"):
        path = getattr(args, flag)
        if path is not None:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                p.error(f"--{flag.replace('_', '-')} {path}: no folder {folder}")
    return args


def main():
    args = parse_args()
    if args.fixture or args.update_fixture:
        torch.set_num_threads(args.threads)
        if args.fixture:
            write_fixture(args.fixture)
        if args.update_fixture:
            write_update_fixture(args.update_fixture)
        return
    torch.set_num_threads(args.threads)
    runs = []
    for seed in args.seeds:
        print(f"== {args.algo}, seed {seed}")
        runs.append(train(args.algo, seed, args.max_episodes, args.log_interval))
    median = summarise(args.algo, runs, args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"framework": "pytorch", "algo": args.algo, "env": ENV_ID, "threads": args.threads,
                       "torch": torch.__version__, "gymnasium": gym.__version__, "gamma": GAMMA,
                       "lr": LR[args.algo], "max_episodes": args.max_episodes, "log_interval": args.log_interval,
                       "solved": sum(r["solved"] for r in runs), "median_episodes_to_solve": median,
                       "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
