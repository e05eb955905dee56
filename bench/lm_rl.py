"""LM RL benchmark: GRPO vs REINFORCE (batch-mean baseline) vs DPO on exact-match arithmetic.

For each seed: a tiny MoE model with the byte tokenizer is fine-tuned (SFT) on the train split
of `a+b=` problems until its held-out greedy accuracy reaches `--start-acc` (the issue asks
for a start between 20% and 40%); from that same SFT checkpoint, GRPO and REINFORCE each run
`--steps` steps with the exact-match reward on the train prompts, and DPO runs `--dpo-steps`
on (correct, near-miss) pairs, with the chosen-NLL term at `--dpo-sft-weight` (plain DPO at 0
lowered greedy accuracy here); `more-sft` continues plain SFT for as many steps, the baseline
that tells what DPO adds beyond its NLL term. Held-out greedy accuracy is measured on problems never seen in
training. One JSON line per evaluation, then one summary line per method (median gain over
seeds, seeds that ended below their start). Nothing is downloaded.

    python bench/lm_rl.py                                   # 3 seeds, 400 steps (minutes on 1 core)
    python bench/lm_rl.py --seeds 0 --steps 100 --eval-every 50
    python bench/lm_rl.py --syntax-checkpoint salesai-quickstart/model --steps 100

With `--syntax-checkpoint`, instead: GRPO with the python-syntax reward (function_only) on the
64 held-out signatures of the quickstart (`--prompts held-out-signatures`); greedy parse rate
and validation perplexity (the quickstart's held-out files, `salesai eval`) before and after.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from typing import Any

import torch

from salesai import ModelConfig, SalesAIModel
from salesai.testing import ByteTokenizer
from salesai_rl.lm.dpo import DPOConfig, DPOTrainer
from salesai_rl.lm.evaluate import evaluate_rewards
from salesai_rl.lm.grpo import GRPOConfig, GRPOTrainer
from salesai_rl.lm.rewards import build_rewards, parse_rewards
from salesai_rl.lm.task import arithmetic_problems, sft_warmup


def emit(**record: Any) -> None:
    print(json.dumps({"bench": "lm_rl", **record}), flush=True)


def held_out_acc(model: Any, tok: Any, records: list[dict[str, Any]], rewards: Any) -> float:
    return float(evaluate_rewards(model, tok, records, rewards, max_new_tokens=4)["reward"] or 0.0)


def sft_start(seed: int, tok: Any, train: list[dict[str, Any]], held_out: list[dict[str, Any]],
              rewards: Any, target: float, max_steps: int) -> tuple[Any, int, float]:
    """SFT in chunks of 25 steps until held-out accuracy >= target (or max_steps)."""
    torch.manual_seed(seed)
    cfg = ModelConfig.from_name("tiny", vocab_size=len(tok), hidden_dim=64, intermediate_dim=96,
                                max_seq_len=32)
    model = SalesAIModel(cfg)
    steps, acc = 0, held_out_acc(model, tok, held_out, rewards)
    while acc < target and steps < max_steps:
        sft_warmup(model, tok, train, steps=25, batch_size=32, lr=2e-3, seed=seed * 1000 + steps)
        steps += 25
        acc = held_out_acc(model, tok, held_out, rewards)
    return model, steps, acc


def run_rl(method: str, model: Any, tok: Any, train: list[dict[str, Any]], held_out: list[dict[str, Any]],
           rewards: Any, args: argparse.Namespace, seed: int, start: float) -> float:
    cfg = GRPOConfig(steps=args.steps, prompts_per_step=args.prompts_per_step, group_size=args.group_size,
                     max_new_tokens=4, lr=args.lr, estimator=method, seed=seed, save_every=0)
    trainer = GRPOTrainer(model, tok, train, rewards, cfg, None, log=None)
    emit(seed=seed, method=method, step=0, heldout_acc=start)
    t0, acc, window = time.perf_counter(), start, []
    while trainer.step_count < args.steps:
        window.append(trainer.step()["reward"] or 0.0)
        if trainer.step_count % args.eval_every == 0 or trainer.step_count == args.steps:
            acc = held_out_acc(model, tok, held_out, rewards)
            emit(seed=seed, method=method, step=trainer.step_count, heldout_acc=acc,
                 train_reward=sum(window) / len(window),
                 s_per_step=(time.perf_counter() - t0) / trainer.step_count)
            window = []
    return acc


def run_dpo(model: Any, ref: Any, tok: Any, train: list[dict[str, Any]], held_out: list[dict[str, Any]],
            rewards: Any, args: argparse.Namespace, seed: int, start: float) -> tuple[float, float]:
    pairs = [{"prompt": p["prompt"], "chosen": p["answer"], "rejected": str(int(p["answer"]) + d)}
             for p, d in zip(train, [1, -1, 2, -2] * len(train), strict=False)]
    held_pairs = [{"prompt": p["prompt"], "chosen": p["answer"], "rejected": str(int(p["answer"]) + 1)}
                  for p in held_out]
    cfg = DPOConfig(steps=args.dpo_steps, batch_size=16, lr=args.dpo_lr, beta=0.1, seed=seed, save_every=0,
                    sft_weight=args.dpo_sft_weight)
    trainer = DPOTrainer(model, tok, pairs, cfg, None, ref_model=ref, log=None)
    while trainer.step_count < args.dpo_steps:
        trainer.step()
    implicit = trainer.evaluate(held_pairs, ref_model=ref)["accuracy"]
    acc = held_out_acc(model, tok, held_out, rewards)
    emit(seed=seed, method="dpo", step=args.dpo_steps, heldout_acc=acc, heldout_implicit_acc=implicit,
         start_acc=start)
    return acc, implicit


def run_more_sft(model: Any, tok: Any, train: list[dict[str, Any]], held_out: list[dict[str, Any]],
                 rewards: Any, args: argparse.Namespace, seed: int, start: float) -> float:
    """Baseline for DPO with its chosen-NLL term: the same number of plain SFT steps, same lr."""
    sft_warmup(model, tok, train, steps=args.dpo_steps, batch_size=16, lr=args.dpo_lr, seed=seed + 99)
    acc = held_out_acc(model, tok, held_out, rewards)
    emit(seed=seed, method="more-sft", step=args.dpo_steps, heldout_acc=acc, start_acc=start)
    return acc


def syntax_bench(args: argparse.Namespace) -> None:
    """python-syntax GRPO on a quickstart checkpoint: parse rate up, perplexity (nearly) unchanged."""
    import tempfile
    from pathlib import Path

    from salesai.data import stdlib_corpus
    from salesai.quickstart import QuickstartOptions
    from salesai.train.run import evaluate_checkpoint
    from salesai_rl.lm.data import load_prompts
    from salesai_rl.lm.policy import load_policy

    model, tok, ckpt = load_policy(args.syntax_checkpoint)
    prompts = load_prompts("held-out-signatures:64")
    rewards = build_rewards(parse_rewards(["python-syntax"], ["python-syntax.function_only=true"]))
    val = [str(f) for f in stdlib_corpus(max_bytes=QuickstartOptions().max_corpus_bytes).validation]

    def measure(path: Any, step: int) -> dict[str, Any]:
        parse = evaluate_rewards(model, tok, prompts, rewards, max_new_tokens=args.syntax_tokens)["reward"]
        ppl = math.exp(evaluate_checkpoint(path, val, max_batches=20, threads=args.threads)["val_loss"])
        emit(method="grpo-syntax", step=step, parse_rate=parse, val_ppl=ppl)
        return {"parse_rate": parse, "val_ppl": ppl}

    start = measure(ckpt, 0)
    cfg = GRPOConfig(steps=args.steps, prompts_per_step=4, group_size=4, max_new_tokens=args.syntax_tokens,
                     lr=args.syntax_lr, save_every=0, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = GRPOTrainer(model, tok, prompts, rewards, cfg, Path(tmp) / "run", log=None)
        t0 = time.perf_counter()
        summary = trainer.train()
        s_per_step = (time.perf_counter() - t0) / args.steps
        end = measure(summary["checkpoint"], args.steps)
    emit(summary="grpo-syntax", start=start, end=end, s_per_step=s_per_step,
         ppl_rise_pct=100 * (end["val_ppl"] / start["val_ppl"] - 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--prompts-per-step", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--start-acc", type=float, default=0.2)
    ap.add_argument("--max-sft-steps", type=int, default=1000)
    ap.add_argument("--dpo-steps", type=int, default=200)
    ap.add_argument("--dpo-lr", type=float, default=3e-4)
    ap.add_argument("--dpo-sft-weight", type=float, default=1.0)
    ap.add_argument("--methods", default="grpo,reinforce,dpo,more-sft")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--syntax-checkpoint", default=None, help="quickstart model dir: run the syntax bench")
    ap.add_argument("--syntax-tokens", type=int, default=96)
    ap.add_argument("--syntax-lr", type=float, default=1e-5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.syntax_checkpoint:
        syntax_bench(args)
        return
    tok = ByteTokenizer()
    problems = arithmetic_problems(max_operand=20, ops="+", seed=0)  # 441 problems
    train, held_out = problems[:300], problems[300:]
    rewards = build_rewards(parse_rewards(["exact-match"]))
    methods = args.methods.split(",")
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
    implicit: list[float] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        sft, sft_steps, start = sft_start(seed, tok, train, held_out, rewards, args.start_acc,
                                          args.max_sft_steps)
        emit(seed=seed, method="sft", sft_steps=sft_steps, heldout_acc=start)
        for method in methods:
            model = copy.deepcopy(sft)
            if method == "dpo":
                end, imp = run_dpo(model, sft, tok, train, held_out, rewards, args, seed, start)
                implicit.append(imp)
            elif method == "more-sft":
                end = run_more_sft(model, tok, train, held_out, rewards, args, seed, start)
            else:
                end = run_rl(method, model, tok, train, held_out, rewards, args, seed, start)
            results[method].append((start, end))
    for method, pairs in results.items():
        gains = [100 * (end - start) for start, end in pairs]
        summary: dict[str, Any] = {"summary": method, "median_gain_points": statistics.median(gains),
                                   "gains_points": gains, "seeds_below_start": sum(g < 0 for g in gains)}
        if method == "dpo":
            summary["median_heldout_implicit_acc"] = statistics.median(implicit)
        emit(**summary)


if __name__ == "__main__":
    main()
