"""A small verifiable task to see LM RL work in minutes: integer arithmetic with exact answers.

`make_arithmetic_task(out_dir)` writes (all JSON Lines):
- `sft.jsonl`      {"text": "12+7=19"}: supervised data for `salesai train --data` (train split);
- `prompts.jsonl`  {"prompt": "12+7=", "answer": "19"}: RL prompts (train split) for `salesai rl grpo`;
- `eval.jsonl`     held-out prompts with answers (no (a, op, b) of the train split);
- `prefs.jsonl`    {"prompt", "chosen": right answer, "rejected": a near miss} for `salesai rl dpo`.
`sft_warmup(model, tokenizer, records)` is a tiny in-process SFT (loss on answer + eos only),
for tests and benchmarks that need a starting policy without the full `salesai train`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from salesai.errors import SalesAIError
from salesai_rl.lm.data import write_jsonl

OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def arithmetic_problems(max_operand: int = 30, ops: str = "+-", seed: int = 0) -> list[dict[str, str]]:
    """Every `a op b` with 0 <= a, b <= max_operand, shuffled: [{"prompt": "a+b=", "answer": "c"}]."""
    unknown = set(ops) - set(OPS)
    if unknown or not ops:
        raise SalesAIError(f"ops {ops!r}: expected some of {''.join(OPS)}")
    items = [{"prompt": f"{a}{op}{b}=", "answer": str(OPS[op](a, b))}
             for op in ops for a in range(max_operand + 1) for b in range(max_operand + 1)]
    random.Random(seed).shuffle(items)
    return items


def make_arithmetic_task(
    out_dir: str | Path, n_train: int = 1500, n_eval: int = 200, max_operand: int = 30,
    ops: str = "+-", seed: int = 0,
) -> dict[str, Any]:
    """Write the task files into `out_dir`; returns their paths and sizes."""
    problems = arithmetic_problems(max_operand, ops, seed)
    if n_train + n_eval > len(problems):
        raise SalesAIError(f"{n_train} train + {n_eval} eval problems requested, but "
                           f"max_operand={max_operand} and ops={ops!r} give only {len(problems)}")
    train, held_out = problems[:n_train], problems[n_train:n_train + n_eval]
    rng = random.Random(seed + 1)
    prefs = []
    for p in train:
        wrong = int(p["answer"]) + rng.choice([-3, -2, -1, 1, 2, 3])
        prefs.append({"prompt": p["prompt"], "chosen": p["answer"], "rejected": str(wrong)})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "sft": write_jsonl(out / "sft.jsonl", [{"text": p["prompt"] + p["answer"]} for p in train]),
        "prompts": write_jsonl(out / "prompts.jsonl", train),
        "eval": write_jsonl(out / "eval.jsonl", held_out),
        "prefs": write_jsonl(out / "prefs.jsonl", prefs),
    }
    return {"out_dir": str(out), "files": {k: str(v) for k, v in files.items()},
            "train": len(train), "eval": len(held_out), "max_operand": max_operand, "ops": ops}


def sft_warmup(
    model: Any, tokenizer: Any, records: list[dict[str, Any]], steps: int = 200, batch_size: int = 32,
    lr: float = 3e-3, seed: int = 0,
) -> list[float]:
    """Supervised steps on prompt -> answer + eos (loss on the answer only); returns the losses."""
    import torch

    from salesai_rl.lm.policy import encode_prompt, pad_pairs, sequence_logprobs

    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    history = []
    for _ in range(steps):
        batch_records = [records[rng.randrange(len(records))] for _ in range(batch_size)]
        prompts = [encode_prompt(tokenizer, str(r["prompt"])) for r in batch_records]
        answers = [[*tokenizer.encode(str(r["answer"])), tokenizer.eos_id] for r in batch_records]
        batch = pad_pairs(prompts, answers, tokenizer.pad_id)
        nll = -sequence_logprobs(model, batch).sum() / batch.completion_mask.sum()
        opt.zero_grad(set_to_none=True)
        nll.backward()
        opt.step()
        history.append(nll.item())
    model.eval()
    return history


__all__ = ["arithmetic_problems", "make_arithmetic_task", "sft_warmup"]
