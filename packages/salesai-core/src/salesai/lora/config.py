"""LoraConfig: rank, alpha, dropout and which linear layers get an adapter. No torch import.

Targets are names of module groups, or patterns matched against module paths:

    attn      every attention projection (`layers.i.self_attn.{q,k,v,o}_proj`)
    q_proj, k_proj, v_proj, o_proj    one projection kind of every layer
    experts   every expert's w1, w2, w3 (a dense model's MLP too)
    w1, w2, w3                        one weight of every expert (e.g. `targets=attn,w2`)
    router    every MoE router (`layers.i.mlp.gate`)
    lm_head   the output head
    anything else: a glob over the module path (`layers.0.*`, `*.experts.3.w1`), or a regular
    expression when it starts with `re:` (`re:layers\\.[0-3]\\.self_attn\\.q_proj`).

Group names select layers of the decoder only (a multimodal model's encoders and projectors are
left as they are); a pattern can reach anything. The CLI form is
`r=16,alpha=32,dropout=0.05,base=bf16,targets=attn,experts`: after `targets=`, the comma separated
words that are not `key=value` are more targets. `train=score` (globs over module paths, e.g.
`train=encoders.*,projectors.*`) trains those modules in full beside the adapters and stores them
in the adapter checkpoint, as PEFT's `modules_to_save` (a classifier's new head, a multimodal
model's encoders). `base=bf16` holds the frozen base in bfloat16
while training (less memory; see docs/lora.md); loading for inference, merging and exporting
always use the base checkpoint as stored. References: Hu et al. 2021 (LoRA),
PEFT's `LoraConfig` (`r`, `lora_alpha`, `lora_dropout`, `target_modules`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from salesai.errors import SalesAIError

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
EXPERT_WEIGHTS = ("w1", "w2", "w3")
GROUPS = ("attn", "experts", "router", "lm_head", *ATTN, *EXPERT_WEIGHTS)
DEFAULT_TARGETS = ("attn",)
BASE_DTYPES = ("fp32", "bf16")


@dataclass(frozen=True)
class LoraConfig:
    """Low-rank adapters W x + (alpha / r) * B(A(dropout(x))) on the targeted linear layers."""

    r: int = 16  # rank of each adapter (A: r x in, B: out x r)
    alpha: float = 32.0  # scaling numerator: the update is multiplied by alpha / r
    dropout: float = 0.0  # dropout on the adapter's input while training
    targets: tuple[str, ...] = DEFAULT_TARGETS  # group names or patterns (module docstring)
    base: str = "fp32"  # precision of the frozen base while training: "fp32" or "bf16" (adapters stay fp32)
    train: tuple[str, ...] = ()  # module paths/globs trained in full and saved with the adapter (`score`)

    def __post_init__(self) -> None:
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise SalesAIError(f"lora.r: expected an integer >= 1, got {self.r!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha > 0:
            raise SalesAIError(f"lora.alpha: expected a number > 0, got {self.alpha!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise SalesAIError(f"lora.dropout: expected a number in [0, 1), got {self.dropout!r}")
        if self.base not in BASE_DTYPES:
            raise SalesAIError(f"lora.base: expected one of {', '.join(BASE_DTYPES)}, got {self.base!r}")
        if not all(isinstance(t, str) and t for t in self.train):
            raise SalesAIError(f"lora.train: expected module paths or globs, got {self.train!r}")
        if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
            raise SalesAIError(f"lora.targets: expected one or more names or patterns, got {self.targets!r}")
        for t in self.targets:
            if t.startswith("re:"):
                try:
                    re.compile(t[3:])
                except re.error as exc:
                    raise SalesAIError(f"lora.targets: {t!r} is not a valid regular expression ({exc})") \
                        from None

    @property
    def scaling(self) -> float:
        return float(self.alpha) / self.r

    def to_dict(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": float(self.alpha), "dropout": float(self.dropout),
                "targets": list(self.targets), "base": self.base, "train": list(self.train)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "lora") -> LoraConfig:
        if not isinstance(data, dict):
            raise SalesAIError(f"{where}: expected a mapping with r, alpha, dropout, targets; got {data!r}")
        known = {"r", "alpha", "dropout", "targets", "base", "train"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SalesAIError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                               f"known: {', '.join(sorted(known))}")
        targets = data.get("targets", DEFAULT_TARGETS)
        targets = [targets] if isinstance(targets, str) else targets
        train = data.get("train", ())
        train = [train] if isinstance(train, str) else train
        if not isinstance(targets, (list, tuple)) or not isinstance(train, (list, tuple)):
            raise SalesAIError(f"{where}: targets and train are lists of names or patterns")
        return cls(r=data.get("r", 16), alpha=data.get("alpha", 32.0), dropout=data.get("dropout", 0.0),
                   targets=tuple(targets), base=data.get("base", "fp32"), train=tuple(train))

    @classmethod
    def parse(cls, spec: str) -> LoraConfig:
        """`r=16,alpha=32,dropout=0.05,targets=attn,experts,train=score` (any order; keys optional)."""
        values: dict[str, Any] = {}
        lists: dict[str, list[str]] = {"targets": [], "train": []}
        current: str | None = None  # the list key whose values continue after a comma
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            if "=" not in item:
                if current is None:
                    raise SalesAIError(f"--lora {spec!r}: {item!r} is not key=value "
                                       "(keys: r, alpha, dropout, base, targets, train)")
                lists[current].append(item)
                continue
            key, value = (s.strip() for s in item.split("=", 1))
            current = key if key in lists else None
            if current is not None:
                lists[current].append(value)
            elif key == "r":
                values["r"] = _number(spec, key, value, int)
            elif key in ("alpha", "dropout"):
                values[key] = _number(spec, key, value, float)
            elif key == "base":
                values[key] = value
            else:
                raise SalesAIError(f"--lora {spec!r}: unknown key {key!r}; "
                                   "expected r, alpha, dropout, base, targets, train")
        for key, items in lists.items():
            if items:
                values[key] = tuple(t for t in items if t)
        return cls(**values)

    # -- which modules ---------------------------------------------------------------------
    def matches(self, path: str) -> bool:
        """Whether the module at `path` (e.g. `layers.0.mlp.experts.1.w2`) is a target."""
        return any(_match(t, path) for t in self.targets)

    def select_trained(self, paths: Iterable[str]) -> list[str]:
        """The module paths trained in full (`train` globs); an error when one matches nothing."""
        paths = [p for p in paths if p]
        chosen = [p for p in paths if any(fnmatch.fnmatchcase(p, t) for t in self.train)]
        for t in self.train:
            if not any(fnmatch.fnmatchcase(p, t) for p in paths):
                raise SalesAIError(f"lora.train: {t!r} matches no module of this model (module paths "
                                   f"look like {paths[-1]!r})")
        return chosen

    def select(self, paths: Iterable[str]) -> list[str]:
        """The targeted paths among `paths` (linear layers); an error when a target matches none."""
        paths = list(paths)
        chosen = [p for p in paths if self.matches(p)]
        for t in self.targets:
            if not any(_match(t, p) for p in paths):
                raise SalesAIError(
                    f"lora.targets: {t!r} matches no linear layer of this model; groups: "
                    f"{', '.join(GROUPS[:4])}, names: {', '.join(GROUPS[4:])}, or a glob/`re:` pattern "
                    f"over paths like {paths[0]!r}")
        return chosen


def _number(spec: str, key: str, value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise SalesAIError(f"--lora {spec!r}: {key}={value!r} is not {what}") from None


DECODER = re.compile(r"^(model\.)?layers\.\d+\.")  # group names select decoder layers, never encoders


def _match(target: str, path: str) -> bool:
    parts = path.split(".")
    last = parts[-1]
    if target in GROUPS and target != "lm_head" and not DECODER.match(path):
        return False
    if target == "attn":
        return "self_attn" in parts and last in ATTN
    if target == "experts":  # a MoE layer's experts (and shared expert), or a dense model's MLP
        return "mlp" in parts and last in EXPERT_WEIGHTS
    if target == "router":
        return len(parts) >= 2 and parts[-2] == "mlp" and last == "gate"
    if target in ATTN or target in EXPERT_WEIGHTS:
        return last == target and ("self_attn" in parts or "mlp" in parts)
    if target == "lm_head":
        return path == "lm_head"
    if target.startswith("re:"):
        return re.fullmatch(target[3:], path) is not None
    return fnmatch.fnmatchcase(path, target)


__all__ = ["DEFAULT_TARGETS", "GROUPS", "LoraConfig"]
