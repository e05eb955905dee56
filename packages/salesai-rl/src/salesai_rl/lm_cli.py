"""`salesai rl grpo / dpo / rewards / make-task`: language-model RL on salesai checkpoints.

Results go to stdout (a summary, or one JSON object with `--json`); progress and notices to
stderr. torch is imported inside the commands so `salesai --help` stays fast. The maths and
trainers live in `salesai_rl.lm`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from salesai.errors import SalesAIError


def register(app: typer.Typer) -> None:
    """Add the LM RL commands to the `salesai rl` group."""
    app.command("grpo")(grpo)
    app.command("dpo")(dpo)
    app.command("rewards")(rewards)
    app.command("make-task")(make_task)


def _notice(msg: str) -> None:
    print(msg, file=sys.stderr)


def _threads(threads: Optional[int]) -> None:
    import torch

    if threads is not None:
        if threads < 1:
            raise SalesAIError(f"--threads {threads}: expected a positive integer")
        torch.set_num_threads(threads)


def _print_summary(summary: dict[str, Any], json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
        return
    last = summary.get("last") or {}
    lines = [f"{summary['kind']}: {summary['steps']} steps (from step {summary['start_step']})"]
    keys = ("reward", "reward_std", "kl", "entropy", "completion_length", "loss", "rewards/margins",
            "rewards/accuracies")
    shown = ", ".join(f"{k} {last[k]:.4g}" for k in keys if isinstance(last.get(k), (int, float)))
    if shown:
        lines.append(f"last step: {shown}")
    for key in ("eval_start", "eval_end"):
        if summary.get(key):
            lines.append(f"{key.replace('_', ' ')}: reward {summary[key]['reward']}")
    lines += [f"checkpoint: {summary['checkpoint']}", f"metrics: {summary['metrics']}"]
    typer.echo("\n".join(lines))


def grpo(
    checkpoint: Path = typer.Argument(..., help="Policy checkpoint (or a run dir: its latest checkpoint)."),
    prompts: Path = typer.Option(
        ..., "--prompts", help='JSON Lines of {"prompt": ..., other fields}, or held-out-signatures[:N].'),
    reward: list[str] = typer.Option(..., "--reward", help="Reward NAME or NAME:WEIGHT (repeatable)."),
    reward_option: Optional[list[str]] = typer.Option(
        None, "--reward-option", help="NAME.KEY=VALUE option of a reward (repeatable)."),
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoints and metrics.jsonl."),
    steps: int = typer.Option(400, "--steps", help="Optimizer steps."),
    eval_prompts: Optional[Path] = typer.Option(
        None, "--eval-prompts", help="Held-out prompts: greedy reward at start, end (and --eval-every)."),
    prompts_per_step: int = typer.Option(8, "--prompts-per-step", help="Prompts per step."),
    group_size: int = typer.Option(8, "--group-size", help="Completions per prompt."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="Completion length cap."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature."),
    lr: float = typer.Option(1e-5, "--lr", help="AdamW learning rate."),
    beta: float = typer.Option(0.0, "--beta", help="KL coefficient (k3, to the starting checkpoint)."),
    epsilon: float = typer.Option(0.2, "--epsilon", help="Lower clip of the ratio."),
    epsilon_high: Optional[float] = typer.Option(
        None, "--epsilon-high", help="Upper clip (default: epsilon)."),
    scale_rewards: str = typer.Option("group", "--scale-rewards", help="group, batch or none."),
    loss_type: str = typer.Option("token", "--loss-type", help="token, sequence or dr_grpo."),
    estimator: str = typer.Option("grpo", "--estimator", help="grpo or reinforce (batch-mean baseline)."),
    num_iterations: int = typer.Option(1, "--num-iterations", help="Updates per sampled batch."),
    micro_batch_size: int = typer.Option(0, "--micro-batch-size", help="Rows per backward (0 = all)."),
    save_every: int = typer.Option(100, "--save-every", help="Checkpoint every N steps."),
    eval_every: int = typer.Option(0, "--eval-every", help="Evaluate every N steps (0 = start/end)."),
    seed: int = typer.Option(0, "--seed", help="Seed of prompt order and sampling."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT from its latest checkpoint."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Group Relative Policy Optimization of a checkpoint against rewards on a prompt set."""
    from salesai_rl.lm.data import load_prompts
    from salesai_rl.lm.grpo import GRPOConfig, GRPOTrainer
    from salesai_rl.lm.policy import load_policy
    from salesai_rl.lm.rewards import build_rewards, parse_rewards

    specs = build_rewards(parse_rewards(reward, reward_option or []))
    records = load_prompts(prompts)
    eval_records = load_prompts(eval_prompts) if eval_prompts is not None else None
    config = GRPOConfig(
        steps=steps, prompts_per_step=prompts_per_step, group_size=group_size, max_new_tokens=max_new_tokens,
        temperature=temperature, lr=lr, beta=beta, epsilon=epsilon, epsilon_high=epsilon_high,
        scale_rewards=scale_rewards, loss_type=loss_type, estimator=estimator, num_iterations=num_iterations,
        micro_batch_size=micro_batch_size, save_every=save_every, eval_every=eval_every, seed=seed,
    ).validate()
    _threads(threads)
    model, tokenizer, ckpt = load_policy(checkpoint)
    ref = load_policy(ckpt)[0] if beta > 0 else None  # the frozen reference, only when the KL term is on
    info = {"policy": str(ckpt), "prompts": str(prompts), "rewards": [s.as_dict() for s in specs]}
    trainer = GRPOTrainer(model, tokenizer, records, specs, config, out, ref_model=ref,
                          eval_records=eval_records, source=str(prompts), run_info=info, log=_notice,
                          progress=sys.stderr.isatty())
    _print_summary(trainer.train(resume=resume), json_output)


def dpo(
    checkpoint: Path = typer.Argument(..., help="Policy checkpoint (also the reference)."),
    data: Path = typer.Option(..., "--data", help='JSON Lines of {"prompt", "chosen", "rejected"}.'),
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoints and metrics.jsonl."),
    beta: float = typer.Option(0.1, "--beta", help="DPO beta."),
    steps: int = typer.Option(200, "--steps", help="Optimizer steps."),
    batch_size: int = typer.Option(8, "--batch-size", help="Preference pairs per step."),
    lr: float = typer.Option(1e-6, "--lr", help="AdamW learning rate."),
    max_length: int = typer.Option(512, "--max-length", help="Prompt + completion tokens kept."),
    sft_weight: float = typer.Option(0.0, "--sft-weight", help="+ weight x chosen NLL (RPO; TRL 'sft')."),
    live_ref: bool = typer.Option(False, "--live-ref", help="Reference log-probs live, not precomputed."),
    save_every: int = typer.Option(100, "--save-every", help="Checkpoint every N steps."),
    seed: int = typer.Option(0, "--seed", help="Seed of the pair order."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads."),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT from its latest checkpoint."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Direct Preference Optimization (sigmoid loss) of a checkpoint on preference pairs."""
    from salesai_rl.lm.data import load_preferences
    from salesai_rl.lm.dpo import DPOConfig, DPOTrainer
    from salesai_rl.lm.policy import load_policy

    records = load_preferences(data)
    config = DPOConfig(steps=steps, batch_size=batch_size, beta=beta, lr=lr, max_length=max_length,
                       sft_weight=sft_weight, precompute_ref=not live_ref, save_every=save_every,
                       seed=seed).validate()
    _threads(threads)
    model, tokenizer, ckpt = load_policy(checkpoint)
    ref = load_policy(ckpt)[0]
    info = {"policy": str(ckpt), "data": str(data)}
    trainer = DPOTrainer(model, tokenizer, records, config, out, ref_model=ref, run_info=info, log=_notice,
                         progress=sys.stderr.isatty())
    _print_summary(trainer.train(resume=resume), json_output)


def rewards(json_output: bool = typer.Option(False, "--json", help="Print the list as JSON.")) -> None:
    """List the registered rewards (built-in and from plugins), with their options."""
    from salesai import plugins

    rows: list[dict[str, Any]] = [
        {"name": e.name, "provider": e.provider, "description": str(e.metadata.get("description", "")),
         "options": dict(e.metadata.get("options", {}))}
        for e in plugins.registry("rewards").entries()
    ]
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("reward", "provider", "description", "options")
    for row in rows:
        table.add_row(row["name"], row["provider"], row["description"],
                      ", ".join(f"{k}={v}" for k, v in row["options"].items()))
    Console().print(table)


def make_task(
    name: str = typer.Argument(..., help="Task name: arithmetic."),
    out: Path = typer.Option(..., "--out", help="Directory for sft/prompts/eval/prefs .jsonl files."),
    n_train: int = typer.Option(1500, "--train", help="Training problems."),
    n_eval: int = typer.Option(200, "--eval", help="Held-out problems."),
    max_operand: int = typer.Option(30, "--max-operand", help="Operands from 0 to this."),
    ops: str = typer.Option("+-", "--ops", help="Operators among + - *."),
    seed: int = typer.Option(0, "--seed", help="Shuffle seed."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Write a small verifiable task: SFT data, RL prompts, held-out prompts, preference pairs."""
    from salesai_rl.lm.task import make_arithmetic_task

    if name != "arithmetic":
        raise SalesAIError(f"task {name!r}: expected arithmetic")
    result = make_arithmetic_task(out, n_train, n_eval, max_operand, ops, seed)
    if json_output:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"{result['train']} train / {result['eval']} held-out problems in {out}")
    for key, path in result["files"].items():
        typer.echo(f"  {key}: {path}")
