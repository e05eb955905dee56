"""RL agents benchmark: salesai-rl's DQN against Stable-Baselines3, measured in the same run.

Prints one JSON line per measurement (and a `summary` line per section). Sections:

- `sumtree`: prioritized sampling frequencies vs p^alpha / sum over 1e6 draws; time per
  update+sample as the tree grows from 2^10 to 2^20 leaves.
- `speed`: training env steps/s on CartPole-v1, salesai DQN (defaults) vs SB3 DQN (rl-zoo
  hyperparameters), same torch threads.
- `cartpole`: the protocol of issue 11: greedy evaluation of 20 episodes every 5,000 steps,
  "first" = first evaluation >= 475, "held" = >= 475 from then on, final evaluation; for
  salesai DQN all parts on, every part off, and SB3 DQN with rl-zoo hyperparameters.
- `ablation`: {vanilla, +double, +dueling, +per, +nstep, all} x seeds on CartPole-v1 and
  Acrobot-v1: median and IQR of the final evaluation and of the area under the eval curve.
- `novelty`: MountainCar-v0, untuned DQN, with and without the episodic bonus: step of the
  first episode that reaches the flag.
- `text`: `InstructionEnv` (read the colour named in a varied instruction; chance 25%), dqn
  with a tiny salesai LM torso (random weights, frozen, and fine-tuned): greedy accuracy.
- `meta`: the sine protocol (Finn et al. 2017): MAML, FOMAML, Reptile and joint pretraining
  trained in the same run, MSE after 1 and 10 SGD steps on 600 held-out tasks.

    python bench/rl_agents.py                           # sumtree, speed, text, meta (minutes)
    python bench/rl_agents.py --sections cartpole --seeds 0,1,2,3,4
    python bench/rl_agents.py --sections all            # hours on a laptop CPU

SB3 is optional (`pip install ./packages/salesai-rl[bench]`); without it the SB3 rows say so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

SOLVED = 475.0
EVAL_SEED = 10_000
SB3_CARTPOLE = dict(  # rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1
    learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000, gamma=0.99,
    target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
    exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]))
ALL_OFF = {"double": False, "dueling": False, "prioritized": False, "n_step": 1}
ABLATION = {
    "vanilla": ALL_OFF,
    "+double": {**ALL_OFF, "double": True},
    "+dueling": {**ALL_OFF, "dueling": True},
    "+per": {**ALL_OFF, "prioritized": True},
    "+nstep": {**ALL_OFF, "n_step": 3},
    "all": {},
}


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def _quartiles(values: list[float]) -> dict[str, float]:
    if len(values) == 1:
        return {"median": values[0], "q1": values[0], "q3": values[0]}
    q = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2]}


def _first_and_held(curve: list[tuple[int, float]]) -> tuple[int | None, int | None]:
    first = next((s for s, r in curve if r >= SOLVED), None)
    held = None
    for i, (s, _) in enumerate(curve):
        if all(r >= SOLVED for _, r in curve[i:]):
            held = s
            break
    return first, held


# -- salesai -----------------------------------------------------------------------------------
def salesai_run(env: str, steps: int, seed: int, options: dict[str, Any], eval_every: int = 5000,
                eval_episodes: int = 20) -> dict[str, Any]:
    from salesai_rl.agents.run import RunSpec, train

    with tempfile.TemporaryDirectory() as tmp:
        spec = RunSpec(agent="dqn", env=env, seed=seed, steps=steps, options=dict(options),
                       eval_every=eval_every, eval_episodes=eval_episodes, save_every=10**12,
                       save_buffer=False)
        start = time.perf_counter()
        summary = train(spec, Path(tmp) / "run", progress=False, log=lambda m: None)
        seconds = time.perf_counter() - start
        lines = [json.loads(x) for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["mean_return"]) for r in lines if r["event"] == "eval"]
    episodes = [r for r in lines if r["event"] == "episode"]
    return {"curve": curve, "episodes": episodes, "seconds": seconds,
            "steps_per_second": summary["steps_per_second"]}


# -- Stable-Baselines3 ---------------------------------------------------------------------------
def sb3_available() -> bool:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


def sb3_run(env_id: str, steps: int, seed: int, hyper: dict[str, Any], eval_every: int = 5000,
            eval_episodes: int = 20) -> dict[str, Any]:
    import gymnasium
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    eval_env = gymnasium.make(env_id)
    curve: list[tuple[int, float]] = []

    class Evaluate(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                returns = []
                for i in range(eval_episodes):
                    obs, _ = eval_env.reset(seed=EVAL_SEED + i)
                    done, total = False, 0.0
                    while not done:
                        action, _ = self.model.predict(obs, deterministic=True)
                        obs, r, term, trunc, _ = eval_env.step(int(action))
                        total, done = total + float(r), term or trunc
                    returns.append(total)
                curve.append((self.num_timesteps, sum(returns) / len(returns)))
            return True

    model = DQN("MlpPolicy", gymnasium.make(env_id), seed=seed, verbose=0, device="cpu", **hyper)
    start = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Evaluate() if eval_every else None)
    seconds = time.perf_counter() - start
    return {"curve": curve, "seconds": seconds, "steps_per_second": steps / seconds}


# -- sections ------------------------------------------------------------------------------------------
def bench_sumtree(args: argparse.Namespace) -> None:
    from salesai_rl.buffers import PrioritizedReplayBuffer, SumTree, Transition

    rng = np.random.default_rng(0)
    n, alpha, draws, batch = 32, 0.6, 1_000_000, 64
    buf = PrioritizedReplayBuffer(n, (1,), alpha=alpha)
    for _ in range(n):
        buf.add(Transition(np.zeros(1, np.float32), 0, 0.0, np.zeros(1, np.float32), 0.99))
    raw = rng.uniform(0.01, 2.0, size=n)
    buf.update_priorities(np.arange(n), raw - buf.eps)
    counts = np.zeros(n)
    for _ in range(draws // batch):
        counts += np.bincount(buf.sample(batch, rng).indices, minlength=n)
    expected = raw**alpha / (raw**alpha).sum()
    freq = counts / counts.sum()
    emit({"section": "sumtree", "check": "frequencies", "leaves": n, "draws": int(counts.sum()),
          "max_relative_error": float(np.max(np.abs(freq - expected) / expected)), "target": 0.02})
    times = {}
    for power in (10, 14, 17, 20):
        size = 1 << power
        tree = SumTree(size)
        tree.update(np.arange(size), rng.random(size))
        idx, pri, vals = rng.integers(0, size, 64), rng.random(64), rng.random(64) * tree.total
        reps = 200
        start = time.perf_counter()
        for _ in range(reps):
            tree.update(idx, pri)
            tree.find(vals)
        times[power] = (time.perf_counter() - start) / reps / 64 * 1e6
        emit({"section": "sumtree", "check": "time", "leaves": size,
              "us_per_update_and_sample": round(times[power], 3)})
    emit({"section": "sumtree", "summary": True, "growth_2^10_to_2^20": round(times[20] / times[10], 2),
          "target": "< 3"})


def bench_speed(args: argparse.Namespace) -> None:
    steps = args.speed_steps
    ours = salesai_run("CartPole-v1", steps, 0, {}, eval_every=0)
    row = {"section": "speed", "env": "CartPole-v1", "steps": steps, "threads": torch.get_num_threads(),
           "salesai_steps_per_second": ours["steps_per_second"]}
    every4 = salesai_run("CartPole-v1", steps, 0, {"train_every": 4}, eval_every=0)
    row["salesai_train_every_4_steps_per_second"] = every4["steps_per_second"]
    if sb3_available():
        theirs = sb3_run("CartPole-v1", steps, 0, SB3_CARTPOLE, eval_every=0)
        row["sb3_steps_per_second"] = round(theirs["steps_per_second"], 1)
        row["ratio"] = round(ours["steps_per_second"] / theirs["steps_per_second"], 2)
        row["ratio_train_every_4"] = round(every4["steps_per_second"] / theirs["steps_per_second"], 2)
    else:
        row["sb3"] = "not installed"
    emit(row)


def _protocol_rows(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    firsts, helds, finals = [], [], []
    for run in runs:
        first, held = _first_and_held(run["curve"])
        firsts.append(first)
        helds.append(held)
        finals.append(run["curve"][-1][1] if run["curve"] else float("nan"))
    inf = float("inf")
    return {"section": "cartpole", "summary": True, "agent": name,
            "median_first": statistics.median([f if f is not None else inf for f in firsts]),
            "median_held": statistics.median([h if h is not None else inf for h in helds]),
            "solved_at_end": sum(f >= SOLVED for f in finals), "seeds": len(runs),
            "seconds": round(sum(r["seconds"] for r in runs), 1)}


def bench_cartpole(args: argparse.Namespace) -> None:
    variants: dict[str, Any] = {"salesai-all-on": {}, "salesai-all-off": ALL_OFF}
    for name, options in variants.items():
        runs = []
        for seed in args.seeds:
            run = salesai_run("CartPole-v1", args.steps, seed, options)
            first, held = _first_and_held(run["curve"])
            emit({"section": "cartpole", "agent": name, "seed": seed, "first": first, "held": held,
                  "final": run["curve"][-1][1], "curve": run["curve"],
                  "seconds": round(run["seconds"], 1)})
            runs.append(run)
        emit(_protocol_rows(name, runs))
    if not sb3_available():
        emit({"section": "cartpole", "agent": "sb3-dqn-zoo", "sb3": "not installed"})
        return
    runs = []
    for seed in args.seeds:
        run = sb3_run("CartPole-v1", args.steps, seed, SB3_CARTPOLE)
        first, held = _first_and_held(run["curve"])
        emit({"section": "cartpole", "agent": "sb3-dqn-zoo", "seed": seed, "first": first, "held": held,
              "final": run["curve"][-1][1], "curve": run["curve"], "seconds": round(run["seconds"], 1)})
        runs.append(run)
    emit(_protocol_rows("sb3-dqn-zoo", runs))


def bench_ablation(args: argparse.Namespace) -> None:
    for env, steps in (("CartPole-v1", args.steps), ("Acrobot-v1", args.steps)):
        for name, options in ABLATION.items():
            finals, areas = [], []
            for seed in args.seeds:
                run = salesai_run(env, steps, seed, options)
                finals.append(run["curve"][-1][1])
                areas.append(float(np.mean([r for _, r in run["curve"]])))
            emit({"section": "ablation", "env": env, "variant": name, "seeds": len(args.seeds),
                  "steps": steps, "final": _quartiles(finals), "mean_eval": _quartiles(areas)})


def bench_novelty(args: argparse.Namespace) -> None:
    for name, options in (("no-bonus", {}), ("episodic", {"novelty": "episodic"})):
        firsts = []
        for seed in args.seeds:
            run = salesai_run("MountainCar-v0", args.novelty_steps, seed, options, eval_every=0)
            first = next((r["step"] for r in run["episodes"] if r["length"] < 200), None)
            firsts.append(first)
            emit({"section": "novelty", "variant": name, "seed": seed, "first_flag_step": first,
                  "seconds": round(run["seconds"], 1)})
        emit({"section": "novelty", "summary": True, "variant": name, "steps": args.novelty_steps,
              "median_first_flag": statistics.median([f if f is not None else float("inf") for f in firsts])})


def bench_meta(args: argparse.Namespace) -> None:
    from salesai_rl.meta import sine_benchmark

    start = time.perf_counter()
    rows = sine_benchmark(iterations=args.meta_iterations, seed=0)
    for row in rows:
        emit({"section": "meta", **row})
    joint = next(r for r in rows if r["method"] == "joint")
    emit({"section": "meta", "summary": True, "seconds": round(time.perf_counter() - start, 1),
          **{f"{r['method']}_1_step_vs_joint": round(r["mse_1_step"] / joint["mse_1_step"], 3)
             for r in rows if r["method"] in ("maml", "fomaml")},
          "reptile_10_steps_vs_joint": round(
              next(r for r in rows if r["method"] == "reptile")["mse_10_steps"] / joint["mse_10_steps"], 3),
          "target": "<= 0.35"})


def bench_text(args: argparse.Namespace) -> None:
    from salesai import ModelConfig, SalesAIModel, Tokenizer
    from salesai.model import save_checkpoint
    from salesai_rl.agents import DQNAgent
    from salesai_rl.envs.text import COLOURS, FILLERS, TEMPLATES, InstructionEnv

    texts = [f + t.format(c=c) for t in TEMPLATES for c in COLOURS for f in FILLERS] * 3
    tokenizer = Tokenizer.train(iter(texts), vocab_size=300, verbose=False)
    torch.manual_seed(0)
    model = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(tokenizer)))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(Path(tmp) / "lm", model, tokenizer)
        for finetune in (False, True):
            env = InstructionEnv()
            agent = DQNAgent(env.observation_space, env.action_space, seed=0, lm=str(ckpt),
                             lm_finetune=finetune, hidden=32, learning_starts=50, batch_size=32,
                             target_update=50, total_steps=600, exploration_fraction=0.5, lr=3e-3,
                             n_step=1, gamma=0.0)
            start = time.perf_counter()
            obs, _ = env.reset(seed=0)
            for _ in range(600):
                action = agent.act(obs)
                nxt, reward, terminated, truncated, _ = env.step(action)
                agent.observe(obs, action, reward, nxt, terminated, truncated)
                obs, _ = env.reset()
            correct = 0
            for i in range(200):
                obs, info = env.reset(seed=EVAL_SEED + i)
                correct += int(agent.act(obs, explore=False) == info["target"])
            emit({"section": "text", "lm": "tiny, random weights", "finetune": finetune, "steps": 600,
                  "greedy_accuracy": correct / 200, "chance": 0.25,
                  "seconds": round(time.perf_counter() - start, 1)})


SECTIONS = {"sumtree": bench_sumtree, "speed": bench_speed, "cartpole": bench_cartpole,
            "ablation": bench_ablation, "novelty": bench_novelty, "meta": bench_meta, "text": bench_text}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default="sumtree,speed,text,meta", help="comma list, or all")
    parser.add_argument("--seeds", default="0,1,2,3,4", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--steps", type=int, default=50_000, help="training steps (cartpole, ablation)")
    parser.add_argument("--speed-steps", type=int, default=5_000)
    parser.add_argument("--novelty-steps", type=int, default=200_000)
    parser.add_argument("--meta-iterations", type=int, default=8_000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = list(SECTIONS) if args.sections == "all" else args.sections.split(",")
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        sys.exit(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)} or all")
    for name in names:
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
