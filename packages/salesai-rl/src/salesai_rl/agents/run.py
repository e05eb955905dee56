"""Training and evaluation runs of registered agents on Gymnasium envs (`salesai rl train/eval`).

A run directory holds:

    run.json            agent, env, seed, options as given, step budget
    metrics.jsonl       one JSON line per finished episode and per evaluation
    checkpoint/         the latest checkpoint: the agent's files (JSON + safetensors) + run_state.json

Checkpoints are written atomically at episode boundaries (every `save_every` steps, at the
next episode end) and once at the end of the run. `resume=True` continues from the latest:
agent, optimizer, replay buffer (unless saved without it), RNGs and the env's RNG, so a run
resumed from a boundary checkpoint equals an uninterrupted one (same seed, same machine). A
final checkpoint taken mid-episode restarts that episode on resume.

Evaluation is greedy (`act(explore=False)`) on a separate env instance whose episodes are
seeded `eval_seed + i`, so the same agent always gets the same score.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from salesai.errors import SalesAIError

EVAL_SEED = 10_000  # evaluation episode i is reset with seed EVAL_SEED + i


@dataclass
class RunSpec:
    agent: str
    env: str
    seed: int = 0
    steps: int = 50_000
    options: dict[str, Any] = field(default_factory=dict)  # as given (the agent fills in defaults)
    eval_every: int = 0  # steps between greedy evaluations (0: none during training)
    eval_episodes: int = 10
    save_every: int = 10_000  # steps between checkpoints (taken at the next episode end)
    save_buffer: bool = True


def agent_class(name: str) -> Any:
    """The agent registered as `name` (unknown names list the known ones)."""
    from salesai.plugins import registry

    return registry("agents").get(name)


def build_env(spec: str, seed: int) -> Any:
    """make_env + check_env: a user's broken env is named before any training starts."""
    from salesai_rl.envs import check_env, make_env

    env = make_env(spec)
    check_env(env, name=spec, seed=seed)
    return env


def evaluate(agent: Any, env: Any, episodes: int, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Greedy episodes seeded `seed + i`: mean/std/min/max return and mean length."""
    returns, lengths = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, length, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, explore=False))
            total, length, done = total + float(reward), length + 1, bool(terminated or truncated)
        returns.append(total)
        lengths.append(length)
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
    return {"episodes": episodes, "mean_return": mean, "std_return": std, "min_return": min(returns),
            "max_return": max(returns), "mean_length": sum(lengths) / len(lengths), "returns": returns}


def _save(agent: Any, out: Path, state: dict[str, Any], save_buffer: bool) -> None:
    from salesai.atomic import atomic_dir

    with atomic_dir(out / "checkpoint") as tmp:
        agent.save(tmp, include_buffer=save_buffer)
        (tmp / "run_state.json").write_text(json.dumps(state))


def _env_rng_state(env: Any) -> Any:
    rng = getattr(env.unwrapped, "np_random", None)
    return rng.bit_generator.state if rng is not None else None


class _Bar:
    """A rich progress bar on stderr: steps, last episode return, epsilon."""

    def __init__(self, show: bool, done: int, total: int) -> None:
        self.progress: Any = None
        if not show:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]rl train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("return [cyan]{task.fields[ret]}"), TextColumn("eps {task.fields[eps]}"),
            TextColumn("{task.fields[sps]} steps/s"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False)
        self.task = self.progress.add_task("train", total=total, completed=done, ret="-", eps="-", sps="-")
        self.progress.start()

    def update(self, step: int, **fields: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, **fields)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def train(spec: RunSpec, out: str | Path, *, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, Any]:
    """Train `spec.agent` on `spec.env` into `out`; returns a summary (final evaluation included)."""
    out = Path(out)
    ckpt = out / "checkpoint"
    if resume:
        if not (ckpt / "run_state.json").is_file():
            raise SalesAIError(f"--resume: {ckpt} holds no checkpoint; start without --resume")
        saved = json.loads((out / "run.json").read_text())
        spec = RunSpec(**{**saved, "steps": spec.steps, "save_buffer": spec.save_buffer})
    elif ckpt.exists():
        raise SalesAIError(
            f"--out {out}: already holds a run; pass --resume to continue it or choose another --out")
    cls = agent_class(spec.agent)
    env = build_env(spec.env, spec.seed)
    eval_env = build_env(spec.env, spec.seed) if spec.eval_every else None
    options = dict(spec.options)
    if "total_steps" in cls.default_options() and "total_steps" not in options:
        options["total_steps"] = spec.steps  # schedules span the whole run
        spec.options = options
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        agent = cls.load(ckpt, env.observation_space, env.action_space)
        state = json.loads((ckpt / "run_state.json").read_text())
        env.reset(seed=spec.seed)
        if state.get("env_rng") is not None:
            env.unwrapped.np_random.bit_generator.state = state["env_rng"]
        obs, _ = env.reset()
        log(f"resuming {out} at step {state['step']}")
    else:
        agent = cls(env.observation_space, env.action_space, seed=spec.seed, **options)
        (out / "run.json").write_text(json.dumps(asdict(spec), indent=2))
        env.action_space.seed(spec.seed)
        obs, _ = env.reset(seed=spec.seed)
        state = {"step": 0, "episodes": 0, "last_save": 0}
    step, episodes, last_save = int(state["step"]), int(state["episodes"]), int(state["last_save"])
    metrics = (out / "metrics.jsonl").open("a")
    bar = _Bar(progress, step, spec.steps)
    ep_return, ep_length, start, start_step = 0.0, 0, time.perf_counter(), step
    last_eval: dict[str, Any] | None = None
    try:
        while step < spec.steps:
            action = agent.act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            info = agent.observe(obs, action, float(reward), next_obs, bool(terminated), bool(truncated))
            obs, step = next_obs, step + 1
            ep_return, ep_length = ep_return + float(reward), ep_length + 1
            if eval_env is not None and step % spec.eval_every == 0:
                last_eval = {"event": "eval", "step": step, **evaluate(agent, eval_env, spec.eval_episodes)}
                metrics.write(json.dumps(last_eval) + "\n")
            if terminated or truncated:
                episodes += 1
                record = {"event": "episode", "step": step, "episode": episodes, "return": ep_return,
                          "length": ep_length, **{k: round(v, 6) for k, v in info.items()}}
                metrics.write(json.dumps(record) + "\n")
                sps = (step - start_step) / max(time.perf_counter() - start, 1e-9)
                eps = info.get("epsilon", 0.0)
                bar.update(step, ret=f"{ep_return:.1f}", eps=f"{eps:.3f}", sps=f"{sps:.0f}")
                ep_return, ep_length = 0.0, 0
                obs, _ = env.reset()
                if step - last_save >= spec.save_every:
                    last_save = step
                    metrics.flush()
                    _save(agent, out, {"step": step, "episodes": episodes, "last_save": last_save,
                                       "env_rng": _env_rng_state(env)}, spec.save_buffer)
        _save(agent, out, {"step": step, "episodes": episodes, "last_save": step,
                           "env_rng": _env_rng_state(env)}, spec.save_buffer)
        bar.update(step)
    finally:
        bar.close()
        metrics.close()
    elapsed = time.perf_counter() - start
    summary = {"out": str(out), "agent": spec.agent, "env": spec.env, "seed": spec.seed, "steps": step,
               "episodes": episodes, "seconds": round(elapsed, 2),
               "steps_per_second": round((step - start_step) / max(elapsed, 1e-9), 1)}
    if last_eval is not None:
        summary["last_eval"] = {k: v for k, v in last_eval.items() if k != "returns"}
    return summary


def load_run(run_dir: str | Path) -> tuple[RunSpec, Any, Any]:
    """(spec, agent, env) of a finished or interrupted run."""
    path = Path(run_dir)
    try:
        spec = RunSpec(**json.loads((path / "run.json").read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise SalesAIError(
            f"{path}: not a salesai rl run directory (run.json: {type(exc).__name__})") from None
    if not (path / "checkpoint" / "agent.json").is_file():
        raise SalesAIError(f"{path}: holds no checkpoint (checkpoint/agent.json missing)")
    env = build_env(spec.env, spec.seed)
    agent = agent_class(spec.agent).load(path / "checkpoint", env.observation_space, env.action_space)
    return spec, agent, env


def evaluate_run(run_dir: str | Path, episodes: int = 20, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Greedy evaluation of the latest checkpoint of a run."""
    if episodes < 1:
        raise SalesAIError(f"--episodes {episodes}: expected at least 1")
    spec, agent, env = load_run(run_dir)
    result = evaluate(agent, env, episodes, seed)
    return {"run": str(run_dir), "agent": spec.agent, "env": spec.env, **result}
