"""Training configuration: the `TrainConfig` dataclass and config files with `model:`/`training:` sections.

A config file (YAML, JSON or TOML) looks like the model card's:

    preset: tiny            # optional: start the model from a named preset
    model:                  # optional: ModelConfig fields (overrides of the preset)
      num_experts: 4
    training:               # optional: TrainConfig fields
      lr: 3.0e-4
      max_steps: 2000

Every key is validated: an unknown key or a value of the wrong type or range raises one
`SalesAIError` naming the key and what was expected. Model keys are validated by
`ModelConfig` itself. This module does not import torch.

References: nanoGPT's `train.py` globals, litgpt's `TrainArgs`; this is not a general config system.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from salesai.errors import SalesAIError

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Everything the Trainer needs besides the model and the data. Batch sizes are per process."""

    lr: float = 3e-4  # peak learning rate, reached at the end of warmup
    min_lr: float = 3e-5  # cosine floor: the learning rate at max_steps
    warmup_steps: int = 100  # linear warmup from 0 to lr over this many optimizer steps
    max_steps: int = 1000  # total optimizer steps (the cosine schedule's length)
    batch_size: int = 8  # sequences per micro-batch per process
    seq_len: int = 256  # tokens per sequence (packed, EOS-separated)
    grad_accum: int = 1  # micro-batches accumulated per optimizer step
    weight_decay: float = 0.1  # AdamW decoupled decay on matrices; never on norms, biases, embeddings
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW (beta1, beta2)
    eps: float = 1e-8  # AdamW epsilon
    grad_clip: float = 1.0  # max global gradient L2 norm; 0 disables clipping
    precision: str = "auto"  # "auto" (bf16 autocast where faster, see docs/training.md), "fp32", "bf16"
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda"
    eval_every: int = 200  # evaluate every N optimizer steps (and at the end); 0 = only at the end
    eval_steps: int = 20  # validation batches (of the global batch size) per evaluation
    save_every: int = 500  # checkpoint every N optimizer steps (and at the end); 0 = only at the end
    keep_last: int = 3  # keep the newest K step-XXXXXX checkpoints, delete older ones
    log_every: int = 10  # append a train record to metrics.jsonl every N steps
    seed: int = 1337  # seeds parameter init, data order and every RNG
    num_threads: int = 0  # torch CPU threads; 0 = leave torch's default
    out_dir: str = "runs/salesai"  # checkpoints, metrics.jsonl and the token cache go here

    def __post_init__(self) -> None:
        validate_training(dataclasses.asdict(self), where="TrainConfig")

    @property
    def tokens_per_step(self) -> int:
        """Tokens per optimizer step in one process (multiply by the world size for the global figure)."""
        return self.batch_size * self.seq_len * self.grad_accum

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "training") -> TrainConfig:
        clean = validate_training(d, where=where)
        return cls(**clean)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        d = self.to_dict()
        d.update({k: v for k, v in changes.items() if v is not None})
        return TrainConfig.from_dict(d, where="TrainConfig")


# key -> (kind, minimum, maximum); kind: "int", "float", "str", "betas"
_RULES: dict[str, tuple[str, float | None, float | None]] = {
    "lr": ("float", 0.0, 10.0),
    "min_lr": ("float", 0.0, 10.0),
    "warmup_steps": ("int", 0, None),
    "max_steps": ("int", 1, None),
    "batch_size": ("int", 1, None),
    "seq_len": ("int", 2, None),
    "grad_accum": ("int", 1, None),
    "weight_decay": ("float", 0.0, 10.0),
    "betas": ("betas", 0.0, 1.0),
    "eps": ("float", 0.0, 1.0),
    "grad_clip": ("float", 0.0, None),
    "precision": ("str", None, None),
    "device": ("str", None, None),
    "eval_every": ("int", 0, None),
    "eval_steps": ("int", 1, None),
    "save_every": ("int", 0, None),
    "keep_last": ("int", 1, None),
    "log_every": ("int", 1, None),
    "seed": ("int", 0, 2**63 - 1),
    "num_threads": ("int", 0, 1024),
    "out_dir": ("str", None, None),
}
_CHOICES = {"precision": PRECISIONS, "device": DEVICES}


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" in [{lo:g}, {hi:g}]"
    if lo is not None:
        return f" >= {lo:g}"
    return ""


def _check_number(key: str, value: Any, kind: str, lo: float | None, hi: float | None, where: str) -> Any:
    name = f"{where}.{key}"
    expected = ("an integer" if kind == "int" else "a number") + _range_text(lo, hi)
    if isinstance(value, bool):
        raise SalesAIError(f"{name}: expected {expected}, got {value!r}")
    if isinstance(value, str) and kind == "float":  # YAML 1.1 reads "3e-4" as a string
        try:
            value = float(value)
        except ValueError:
            raise SalesAIError(f"{name}: expected {expected}, got {value!r}") from None
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise SalesAIError(f"{name}: expected {expected}, got {value!r}")
    else:
        if not isinstance(value, (int, float)) or value != value:  # rejects NaN
            raise SalesAIError(f"{name}: expected {expected}, got {value!r}")
        value = float(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SalesAIError(f"{name}: expected {expected}, got {value!r}")
    return value


def validate_training(d: Any, where: str = "training") -> dict[str, Any]:
    """Check a `training:` mapping key by key; returns the cleaned dict (numbers coerced)."""
    if not isinstance(d, dict):
        raise SalesAIError(f"{where}: expected a mapping of TrainConfig fields, got {type(d).__name__}")
    known = {f.name for f in fields(TrainConfig)}
    out: dict[str, Any] = {}
    for key, value in d.items():
        if key not in known:
            raise SalesAIError(f"{where}: unknown key {key!r}; known keys: {', '.join(sorted(known))}")
        kind, lo, hi = _RULES[key]
        name = f"{where}.{key}"
        if kind == "str":
            if not isinstance(value, (str, os.PathLike)):
                raise SalesAIError(f"{name}: expected a string, got {value!r}")
            value = str(value)
            choices = _CHOICES.get(key)
            if choices and value not in choices:
                raise SalesAIError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
            if not value:
                raise SalesAIError(f"{name}: expected a non-empty string")
        elif kind == "betas":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise SalesAIError(f"{name}: expected two numbers in [0, 1), e.g. [0.9, 0.95], got {value!r}")
            b = [_check_number(key, v, "float", 0.0, 1.0, where) for v in value]
            if not all(0.0 <= x < 1.0 for x in b):
                raise SalesAIError(f"{name}: expected two numbers in [0, 1), got {value!r}")
            value = (b[0], b[1])
        else:
            value = _check_number(key, value, kind, lo, hi, where)
        out[key] = value
    lr, min_lr = out.get("lr"), out.get("min_lr")
    if lr is not None and min_lr is not None and min_lr > lr:
        raise SalesAIError(f"{where}.min_lr: expected a number <= lr ({lr:g}), got {min_lr:g}")
    return out


@dataclass
class RunConfig:
    """What a config file holds: an optional preset, model overrides and training settings."""

    preset: str | None = None  # model preset name (ModelConfig.from_name); None = model section is complete
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields
    training: TrainConfig = field(default_factory=TrainConfig)  # validated TrainConfig
    explicit: frozenset[str] = frozenset()  # training keys the config file set (the rest are defaults)

    def fit_to_model(self, hidden_dim: int) -> TrainConfig:
        """The training settings with the peak learning rate of the model's width where the config
        file left it at its default (small models train well at higher rates, see `default_lr`)."""
        changes: dict[str, Any] = {}
        if "lr" not in self.explicit:
            changes["lr"] = default_lr(hidden_dim)
            if "min_lr" not in self.explicit:
                changes["min_lr"] = changes["lr"] / 10
        return self.training.replace(**changes) if changes else self.training

    def model_config(self, **overrides: Any) -> Any:
        """Build the ModelConfig (validated by ModelConfig itself)."""
        from salesai.model.config import ModelConfig

        d = {**self.model, **overrides}
        if self.preset is not None:
            return ModelConfig.from_name(self.preset, **d)
        if not d:
            return ModelConfig.from_name("tiny")
        return ModelConfig.from_dict(d)


def read_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML/JSON/TOML file into a dict; a clear error naming the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise SalesAIError(f"config file {str(p)!r} not found")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise SalesAIError(f"config file {str(p)!r}: expected a .yaml, .yml, .json or .toml file")
    except SalesAIError:
        raise
    except Exception as exc:
        mark = getattr(exc, "problem_mark", None)  # YAML: say what and where
        if mark is not None and getattr(exc, "problem", None):
            first = f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"  # type: ignore[attr-defined]
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SalesAIError(f"config file {str(p)!r} could not be parsed: {first}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SalesAIError(f"config file {str(p)!r}: expected a mapping with model:/training: sections")
    return data


def run_config_from_dict(data: dict[str, Any], where: str = "config") -> RunConfig:
    """Validate the top level (preset/model/training) and the training section."""
    allowed = ("preset", "model", "training")
    for key in data:
        if key not in allowed:
            raise SalesAIError(f"{where}: unknown section {key!r}; expected {', '.join(allowed)}")
    preset = data.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise SalesAIError(f"{where}.preset: expected a preset name (a string), got {preset!r}")
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise SalesAIError(f"{where}.model: expected a mapping of ModelConfig fields, got {model!r}")
    section = data.get("training") or {}
    training = TrainConfig.from_dict(section, where=f"{where}.training")
    return RunConfig(preset=preset, model=dict(model), training=training, explicit=frozenset(section))


def default_lr(hidden_dim: int) -> float:
    """Peak AdamW learning rate by model width: 2e-3 up to 256 wide (the `tiny` preset and the
    quickstart model), 1e-3 up to 512 (`base`), 3e-4 above (as for GPT-2-small-sized models)."""
    return 2e-3 if hidden_dim <= 256 else 1e-3 if hidden_dim <= 512 else 3e-4


def fit_schedule(cfg: TrainConfig) -> tuple[TrainConfig, str | None]:
    """Warmup cut to at most a tenth of `max_steps`, so a short run reaches its peak learning rate
    and runs its cosine decay; returns the config and a notice when the warmup was cut."""
    cap = cfg.max_steps // 10
    if cfg.warmup_steps <= cap:
        return cfg, None
    notice = (f"notice: warmup_steps {cfg.warmup_steps} cut to {cap} (a tenth of max_steps "
              f"{cfg.max_steps}) so the learning rate reaches its peak and decays within the run")
    return dataclasses.replace(cfg, warmup_steps=cap), notice


def load_run_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read and validate a config file (model keys are checked when the ModelConfig is built)."""
    return run_config_from_dict(read_mapping(path), where=Path(path).name)
