"""Rewards for LM RL: look them up in the core's `rewards` registry, combine them with weights.

A reward comes from any plugin through the `register_rewards` hook (built-ins: exact-match,
regex, python-syntax, length-penalty); `factory(**options)` gives the batched callable
`reward(prompts, completions, **fields) -> list[float | None]`. Several rewards combine as a
weighted sum of the scores that are not None; a completion every reward returns None for is
unscorable (NaN: left out of the GRPO baseline, advantage 0), as in TRL.

On the command line: `--reward NAME[:WEIGHT]` (repeatable) and `--reward-option NAME.KEY=VALUE`
(VALUE parsed as JSON when it parses, else kept as a string).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from salesai.errors import SalesAIError

INTERNAL_FIELDS = ("prompt", "_line")  # record keys that are not reward fields


@dataclass
class RewardSpec:
    """One reward of a run: registry name, weight, options, and the built callable."""

    name: str
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    fn: Callable[..., list[float | None]] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "options": self.options}


def parse_rewards(rewards: Sequence[str], options: Sequence[str] = ()) -> list[RewardSpec]:
    """`["exact-match", "length-penalty:0.1"]` + `["length-penalty.target=40"]` -> specs (not built)."""
    if not rewards:
        raise SalesAIError("--reward: give at least one reward (see `salesai rl rewards`)")
    specs: dict[str, RewardSpec] = {}
    for text in rewards:
        name, _, weight = text.partition(":")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise SalesAIError(f"--reward {text!r}: expected NAME or NAME:WEIGHT with a number") from None
        if not name:
            raise SalesAIError(f"--reward {text!r}: expected NAME or NAME:WEIGHT")
        if name in specs:
            raise SalesAIError(f"--reward {name!r} is given twice")
        specs[name] = RewardSpec(name, w)
    for text in options:
        key, eq, value = text.partition("=")
        name, dot, opt = key.rpartition(".")
        if not eq or not dot or not name or not opt:
            raise SalesAIError(f"--reward-option {text!r}: expected NAME.KEY=VALUE")
        if name not in specs:
            raise SalesAIError(f"--reward-option {text!r}: no --reward {name!r} in this run")
        try:
            specs[name].options[opt] = json.loads(value)
        except json.JSONDecodeError:
            specs[name].options[opt] = value
    return list(specs.values())


def build_rewards(specs: Sequence[RewardSpec]) -> list[RewardSpec]:
    """Build each spec's callable from the registry (unknown name: error listing the known ones)."""
    from salesai.plugins import registry

    reg = registry("rewards")
    for spec in specs:
        factory = reg.get(spec.name)
        try:
            spec.fn = factory(**spec.options)
        except TypeError as exc:  # a keyword-only factory refusing an option
            raise SalesAIError(f"reward {spec.name!r}: bad options {spec.options} ({exc})") from None
    return list(specs)


def reward_fields(records: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Column lists of the records' extra keys (a record without a key gives None there)."""
    keys = sorted({k for r in records for k in r if k not in INTERNAL_FIELDS})
    return {k: [r.get(k) for r in records] for k in keys}


def _where(record: dict[str, Any], source: str) -> str:
    line = record.get("_line")
    at = f"{source}:{line}" if line is not None else source
    prompt = str(record.get("prompt", ""))
    return f"{at} (prompt {prompt[:40]!r})"


def score(
    specs: Sequence[RewardSpec],
    records: Sequence[dict[str, Any]],
    completions: Sequence[str],
    source: str = "prompts",
) -> tuple[list[float], dict[str, float]]:
    """Weighted-sum rewards per completion (NaN where unscorable) and each reward's mean.

    `records[i]` is the prompt record of `completions[i]`. A reward that raises, or returns
    something else than one float-or-None per completion, stops with an error naming the
    reward and the first record it fails on.
    """
    prompts = [str(r["prompt"]) for r in records]
    fields = reward_fields(records)
    n = len(completions)
    totals = [0.0] * n
    seen = [False] * n
    means: dict[str, float] = {}
    for spec in specs:
        assert spec.fn is not None, "build_rewards first"
        try:
            values = spec.fn(prompts, list(completions), **fields)
        except Exception as exc:
            bad = _first_failing(spec, prompts, completions, fields, records, source)
            raise SalesAIError(f"reward {spec.name!r} raised {type(exc).__name__}: {exc} on {bad}") from None
        if not isinstance(values, list) or len(values) != n:
            got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
            raise SalesAIError(f"reward {spec.name!r} returned {got} for {n} completions")
        scored: list[float] = []
        for i, v in enumerate(values):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SalesAIError(f"reward {spec.name!r} returned {v!r} on {_where(records[i], source)}; "
                                   "expected a finite float or None")
            totals[i] += spec.weight * float(v)
            seen[i] = True
            scored.append(float(v))
        means[spec.name] = sum(scored) / len(scored) if scored else math.nan
    return [t if s else math.nan for t, s in zip(totals, seen, strict=True)], means


def _first_failing(
    spec: RewardSpec,
    prompts: list[str],
    completions: Sequence[str],
    fields: dict[str, list[Any]],
    records: Sequence[dict[str, Any]],
    source: str,
) -> str:
    """Call the reward one record at a time to name the record that makes it raise."""
    assert spec.fn is not None
    for i in range(len(prompts)):
        try:
            one = {k: v[i:i + 1] for k, v in fields.items()}
            spec.fn(prompts[i:i + 1], list(completions[i:i + 1]), **one)
        except Exception:
            return _where(records[i], source)
    return f"a batch of {len(prompts)} records from {source}"


__all__ = ["RewardSpec", "build_rewards", "parse_rewards", "reward_fields", "score"]
