"""RL agents benchmark: salesai-rl's DQN against Stable-Baselines3, measured in the same run.

Prints one JSON line per measurement (and a `summary` line per section). Sections:

- `sumtree`: prioritized sampling frequencies vs p^alpha / sum over 1e6 draws; time per
  update+sample as the tree grows from 2^10 to 2^20 leaves.
- `speed`: training env steps/s on CartPole-v1, salesai DQN (defaults) vs SB3 DQN (rl-zoo
  hyperparameters), same torch threads.
- `cartpole`: the protocol of issue 11: greedy evaluation of 20 episodes every 5,000 steps,
  "first" = first evaluation >= 475, "held" = >= 475 from then on, final evaluation; for
  salesai DQN all parts on, every part off, and SB3 DQN with rl-zoo hyperparameters.
- `ablation`: {vanilla, +double, +dueling, +per, +nstep, all, all with train_every=1} x seeds
  on CartPole-v1 (and Acrobot-v1 with `--ablation-envs`): median and IQR of the final
  evaluation, of the mean over the eval curve and (CartPole) of "first"; then, per part, whether
  switching it on makes a median worse than vanilla's by more than vanilla's IQR.
- `novelty`: MountainCar-v0, untuned DQN, with and without the episodic bonus: step of the
  first episode that reaches the flag.
- `text`: `InstructionEnv` (read the colour named in a varied instruction; chance 25%), dqn
  with a tiny salesai LM torso (random weights, frozen, and fine-tuned): greedy accuracy.
- `meta`: the sine protocol (Finn et al. 2017): MAML, FOMAML, Reptile and joint pretraining
  trained in the same run, MSE after 1 and 10 SGD steps on 600 held-out tasks.

    python bench/rl.py                           # sumtree, speed, text, meta (minutes)
    python bench/rl.py --sections cartpole,ablation --seeds 0,1,2,3,4 --jobs 2
    python bench/rl.py --sections ablation --reuse earlier.jsonl   # skip runs already in a log
    python bench/rl.py --sections all            # hours on a laptop CPU

Every training run prints a `"run"` row (env, options, seed, eval curve, wall seconds) as it
finishes; `--reuse FILE` reads such rows back, so a section only trains what is missing.
`--jobs N` trains N runs at once, each in its own process with one torch thread.

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
PARTS = {"+double": {"double": True}, "+dueling": {"dueling": True}, "+per": {"prioritized": True},
         "+nstep": {"n_step": 3}}
ABLATION = {
    "vanilla": ALL_OFF,
    **{name: {**ALL_OFF, **part} for name, part in PARTS.items()},
    "all": {"double": True, "dueling": True, "prioritized": True, "n_step": 3},
    "all, train_every=1": {"double": True, "dueling": True, "prioritized": True, "n_step": 3,
                           "train_every": 1},
}


def _strict(value: Any) -> Any:
    """inf (a run that never reached the threshold) -> None, so every line is strict JSON."""
    if isinstance(value, float) and value == float("inf"):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(_strict(row)), flush=True)


def _first_and_held(curve: list[tuple[int, float]]) -> tuple[int | None, int | None]:
    first = next((s for s, r in curve if r >= SOLVED), None)
    held = None
    for i, (s, _) in enumerate(curve):
        if all(r >= SOLVED for _, r in curve[i:]):
            held = s
            break
    return first, held


# -- runs: one training run = one (agent, env, options, seed, steps) key ------------------------
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
    episodes = [(r["step"], r["return"], r["length"]) for r in lines if r["event"] == "episode"]
    return {"curve": curve, "episodes": episodes, "seconds": seconds,
            "steps_per_second": summary["steps_per_second"]}


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


def _key(job: dict[str, Any]) -> str:
    """Identity of a run: agent, env, options, seed, steps, eval_every."""
    fields = ("agent", "env", "options", "seed", "steps", "eval_every")
    return json.dumps({k: job[k] for k in fields}, sort_keys=True)


def _one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one run (in a worker process: one torch thread); the `run` row."""
    torch.set_num_threads(1)
    if job["agent"] == "sb3-dqn-zoo":
        result = sb3_run(job["env"], job["steps"], job["seed"], SB3_CARTPOLE, job["eval_every"])
    else:
        result = salesai_run(job["env"], job["steps"], job["seed"], job["options"], job["eval_every"])
    episodes = result.pop("episodes", [])
    if job["env"] == "MountainCar-v0":  # the step at which the first episode reached the flag
        result["first_flag_step"] = next((step for step, _, length in episodes if length < 200), None)
    return {"section": "run", **job, **result, "seconds": round(result["seconds"], 1),
            "steps_per_second": round(result["steps_per_second"], 1), "load": os.getloadavg()[0]}


class Runs:
    """Runs by key: reused (`--reuse` logs, or earlier in this invocation), else trained, `--jobs` at once."""

    def __init__(self, jobs: int, reuse: list[str]) -> None:
        self.jobs, self.done = jobs, {}
        for path in reuse:
            for line in Path(path).read_text().splitlines():
                row = json.loads(line) if line.startswith("{") else {}
                if row.get("section") == "run":
                    self.done[_key(row)] = row

    def get(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        todo = [j for j in jobs if _key(j) not in self.done]
        todo = sorted({_key(j): j for j in todo}.values(), key=lambda j: j["seed"])  # seed-major: a cut run
        # still has every variant on the first seeds
        if self.jobs > 1 and len(todo) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(self.jobs, mp_context=ctx) as pool:
                for future in as_completed([pool.submit(_one, j) for j in todo]):
                    self._record(future.result())
        else:
            for job in todo:
                self._record(_one(job))
        return [self.done[_key(j)] for j in jobs]

    def _record(self, row: dict[str, Any]) -> None:
        self.done[_key(row)] = row
        emit(row)


def job(env: str, options: dict[str, Any], seed: int, steps: int, eval_every: int = 5000,
        agent: str = "dqn") -> dict[str, Any]:
    """A run; dqn options are resolved against the current defaults (so a reused run is the same run)."""
    if agent == "dqn":
        from salesai_rl.agents import DQNAgent

        defaults = DQNAgent.default_options()
        defaults.pop("total_steps")  # the run sets it to `steps`
        options = {**defaults, **options}
    return {"agent": agent, "env": env, "options": dict(options), "seed": seed, "steps": steps,
            "eval_every": eval_every}


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
    """Training env steps/s on CartPole-v1 (no evaluations), one process at a time."""
    steps = args.speed_steps
    row: dict[str, Any] = {"section": "speed", "env": "CartPole-v1", "steps": steps, "threads": 1}
    ours = {"defaults": {}, "defaults, train_every=2": {"train_every": 2}, "all parts on": ABLATION["all"],
            "all, train_every=1": ABLATION["all, train_every=1"]}
    for name, options in ours.items():
        row[f"salesai {name}"] = round(_one(job("CartPole-v1", options, 0, steps, 0))["steps_per_second"], 1)
    if sb3_available():
        sb3 = _one(job("CartPole-v1", {}, 0, steps, 0, agent="sb3-dqn-zoo"))["steps_per_second"]
        row["sb3 rl-zoo"] = round(sb3, 1)
        for name in ours:
            row[f"ratio {name}"] = round(row[f"salesai {name}"] / sb3, 2)
    else:
        row["sb3"] = "not installed"
    emit({**row, "load": os.getloadavg()[0], "target": "ratio defaults >= 1.5"})


def _iqr(values: list[float]) -> dict[str, float]:
    """median, q1, q3 (inclusive quartiles, interpolated); a run that never solved counts as inf."""
    xs = sorted(values)

    def quantile(q: float) -> float:
        pos = q * (len(xs) - 1)
        lo, frac = int(pos), pos - int(pos)
        if frac == 0 or xs[lo] == xs[lo + 1]:
            return xs[lo]
        return xs[lo] + frac * (xs[lo + 1] - xs[lo])  # inf when the upper neighbour is inf

    return {"median": quantile(0.5), "q1": quantile(0.25), "q3": quantile(0.75)}


def _curve_stats(runs: list[dict[str, Any]], solved: float | None) -> dict[str, Any]:
    inf = float("inf")
    finals = [r["curve"][-1][1] for r in runs]
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs], "final": _iqr(finals),
                           "mean_eval": _iqr([float(np.mean([v for _, v in r["curve"]])) for r in runs]),
                           "seconds": round(sum(r["seconds"] for r in runs), 1)}
    if solved is not None:
        firsts, helds = zip(*(_first_and_held(r["curve"]) for r in runs), strict=True)
        out["first"] = _iqr([f if f is not None else inf for f in firsts])
        out["held"] = _iqr([h if h is not None else inf for h in helds])
        out["solved_at_end"] = sum(f >= solved for f in finals)
    return out


def bench_cartpole(args: argparse.Namespace) -> None:
    variants = {"salesai all parts on": ("dqn", ABLATION["all"]), "salesai every part off": ("dqn", ALL_OFF)}
    if sb3_available():
        variants["sb3-dqn-zoo"] = ("sb3-dqn-zoo", {})
    else:
        emit({"section": "cartpole", "agent": "sb3-dqn-zoo", "sb3": "not installed"})
    jobs = [job("CartPole-v1", opts, seed, args.steps, agent=agent)
            for agent, opts in variants.values() for seed in args.seeds]
    results = args.runs.get(jobs)
    for i, name in enumerate(variants):
        runs = results[i * len(args.seeds):(i + 1) * len(args.seeds)]
        emit({"section": "cartpole", "summary": True, "agent": name, "steps": args.steps,
              **_curve_stats(runs, SOLVED)})


def bench_ablation(args: argparse.Namespace) -> None:
    for env in args.ablation_envs.split(","):
        solved = SOLVED if env == "CartPole-v1" else None
        variants = dict(ABLATION)
        if not args.train_every_1:
            variants.pop("all, train_every=1")
        jobs = [job(env, opts, seed, args.steps) for opts in variants.values() for seed in args.seeds]
        results = args.runs.get(jobs)
        stats = {}
        for i, name in enumerate(variants):
            stats[name] = _curve_stats(results[i * len(args.seeds):(i + 1) * len(args.seeds)], solved)
            emit({"section": "ablation", "env": env, "variant": name, "steps": args.steps, **stats[name]})
        # the rule: nothing on by default that makes a median worse by more than one interval
        verdict = {part: _worse(stats[part], stats["vanilla"]) for part in [*PARTS, "all"]}
        if "all, train_every=1" in stats:  # the update rate: 4 (the default) against 1
            verdict["all vs all, train_every=1"] = _worse(stats["all"], stats["all, train_every=1"])
        verdict["+nstep vs all"] = _worse(stats["+nstep"], stats["all"])  # both ways: the other parts
        verdict["all vs +nstep"] = _worse(stats["all"], stats["+nstep"])  # on top of n-step, and off
        emit({"section": "ablation", "env": env, "summary": True,
              "worse_than_reference_by_more_than_its_iqr": verdict,
              "reference": "vanilla, unless named after 'vs'"})


def _worse(stats: dict[str, Any], reference: dict[str, Any]) -> list[str] | str:
    """The metrics whose median is worse than the reference's by more than the reference's IQR."""
    worse = []
    for metric, higher_is_better in (("final", True), ("mean_eval", True), ("first", False), ("held", False)):
        if metric not in reference:
            continue
        width = reference[metric]["q3"] - reference[metric]["q1"]
        delta = stats[metric]["median"] - reference[metric]["median"]
        if (-delta if higher_is_better else delta) > width:  # inf - inf (neither solved): nan, not worse
            worse.append(metric)
    return worse or "ok"


def bench_novelty(args: argparse.Namespace) -> None:
    inf = float("inf")
    variants = {"no-bonus": {}, "episodic": {"novelty": "episodic"}}
    jobs = [job("MountainCar-v0", opts, seed, args.novelty_steps, 0)
            for opts in variants.values() for seed in args.seeds]
    results = args.runs.get(jobs)
    for i, name in enumerate(variants):
        runs = results[i * len(args.seeds):(i + 1) * len(args.seeds)]
        firsts = [r["first_flag_step"] for r in runs]
        emit({"section": "novelty", "summary": True, "variant": name, "steps": args.novelty_steps,
              "seeds": args.seeds, "first_flag_step": firsts,
              "median_first_flag": statistics.median([f if f is not None else inf for f in firsts]),
              "seconds": round(sum(r["seconds"] for r in runs), 1)})


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
    parser.add_argument("--ablation-envs", default="CartPole-v1,Acrobot-v1", help="comma list")
    parser.add_argument("--train-every-1", action=argparse.BooleanOptionalAction, default=True,
                        help="add 'all, train_every=1' to the ablation (the update-rate default)")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at once (one process each)")
    parser.add_argument("--reuse", action="append", default=[], help="JSON-lines log whose run rows to reuse")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.runs = Runs(args.jobs, args.reuse)
    names = list(SECTIONS) if args.sections == "all" else args.sections.split(",")
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        sys.exit(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)} or all")
    for name in names:
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
