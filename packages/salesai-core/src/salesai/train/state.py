"""Training checkpoints: atomic `step-XXXXXX/` directories, a `latest` pointer, pickle-free trainer state.

Layout of a run directory:

    out_dir/
      latest                  # one line, "step-000500"; replaced atomically (temp file + os.replace)
      step-000500/            # a complete checkpoint, renamed into place only when fully written
        config.json  model.safetensors  tokenizer.model
        trainer_state/
          state.json          # step, data position, TrainConfig, optimizer metadata, Python/NumPy RNG
          optimizer.safetensors  # every optimizer state tensor, flattened: "state.<param>.<name>"
          rng-rank<R>.safetensors  # torch CPU (and CUDA) generator states of each rank
      metrics.jsonl

A checkpoint is written into `.tmp-step-XXXXXX-<pid>/`, fsynced, then renamed; a process killed at
any moment leaves the previous checkpoint and the `latest` pointer intact (stale temp directories
are removed by the next save). Loading never unpickles: tensors come from safetensors, the rest
from JSON. This is not a general serialisation library (optimizer state only holds tensors and
plain numbers for torch's optimizers, which is what it supports).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salesai.atomic import replace_dir
from salesai.errors import SalesAIError
from salesai.model.checkpoint import LATEST, list_checkpoints
from salesai.model.checkpoint import latest_checkpoint as latest_checkpoint  # re-exported
from salesai.model.checkpoint import resolve_checkpoint as resolve_checkpoint  # re-exported

STATE_DIR = "trainer_state"


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


# --------------------------------------------------------------------------- optimizer state
def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split `optimizer.state_dict()` into safetensors-ready tensors and JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    state_meta: dict[str, dict[str, Any]] = {}
    for pid, pstate in state_dict["state"].items():
        entry: dict[str, Any] = {}
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                key = f"state.{pid}.{name}"
                tensors[key] = value.detach().to("cpu").contiguous().clone()
                entry[name] = {"tensor": key}
            else:
                entry[name] = {"value": value}
        state_meta[str(pid)] = entry
    groups: list[dict[str, Any]] = []
    for gi, group in enumerate(state_dict["param_groups"]):
        g: dict[str, Any] = {}
        for name, value in group.items():
            if isinstance(value, torch.Tensor):
                key = f"group.{gi}.{name}"
                tensors[key] = value.detach().to("cpu").contiguous().clone()
                g[name] = {"tensor": key}
            elif isinstance(value, tuple):
                g[name] = {"tuple": list(value)}
            else:
                g[name] = {"value": value}
        groups.append(g)
    return tensors, {"state": state_meta, "param_groups": groups}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `flatten_optimizer_state` (tensors stay on CPU; load_state_dict moves them)."""

    def value(spec: dict[str, Any]) -> Any:
        if "tensor" in spec:
            if spec["tensor"] not in tensors:
                raise SalesAIError(f"optimizer state: tensor {spec['tensor']!r} is missing from "
                                   "optimizer.safetensors")
            return tensors[spec["tensor"]]
        if "tuple" in spec:
            return tuple(spec["tuple"])
        return spec["value"]

    state = {int(pid): {n: value(s) for n, s in entry.items()} for pid, entry in meta["state"].items()}
    groups = [{n: value(s) for n, s in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> dict[str, Any]:
    """Write the optimizer's state tensors to `path` (safetensors); returns the JSON metadata that
    `load_optimizer` needs (store it in the checkpoint's state.json)."""
    tensors, meta = flatten_optimizer_state(optimizer.state_dict())
    save_tensors(path, tensors)
    return meta


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path, meta: dict[str, Any]) -> None:
    """Restore what `save_optimizer` wrote (`meta` is the dictionary it returned)."""
    optimizer.load_state_dict(unflatten_optimizer_state(load_tensors(path), meta))


# --------------------------------------------------------------------------------- RNG state
def capture_rng() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Torch generator states as tensors; Python and NumPy states as JSON-able data."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = s
    version, internal, gauss = random.getstate()
    st: Any = np.random.get_state()  # ("MT19937", keys (624,) uint32, pos, has_gauss, cached_gaussian)
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": [st[0], st[1].tolist(), int(st[2]), int(st[3]), float(st[4])],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("torch_cuda_"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    if meta:
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# ------------------------------------------------------------------------------ file helpers
def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            _fsync_file(Path(dirpath) / f)
        _fsync_dir(Path(dirpath))


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small file so that readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------ checkpoint directory
def begin_checkpoint(out_dir: Path, step: int) -> Path:
    """Create a fresh temporary directory for the checkpoint of `step` (removing stale ones)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out_dir / f".tmp-{step_dir_name(step)}-{os.getpid()}"
    tmp.mkdir()
    (tmp / STATE_DIR).mkdir()
    return tmp


def crash_test_hook(step: int, tmp: Path) -> None:
    """Crash-safety test hook, between the weights and the trainer state of a checkpoint.

    SALESAI_TEST_SAVE_SLEEP=<seconds> pauses there (only at step SALESAI_TEST_SAVE_SLEEP_AT when
    that is set), after writing the path of the half-written directory to SALESAI_TEST_SAVE_MARKER.
    """
    delay = os.environ.get("SALESAI_TEST_SAVE_SLEEP")
    at = os.environ.get("SALESAI_TEST_SAVE_SLEEP_AT")
    if not delay or (at and int(at) != step):
        return
    marker = os.environ.get("SALESAI_TEST_SAVE_MARKER")
    if marker:
        Path(marker).write_text(str(tmp) + "\n")
    time.sleep(float(delay))


def commit_checkpoint(tmp: Path, out_dir: Path, step: int, keep_last: int) -> Path:
    """fsync the temporary directory, rename it to step-XXXXXX, repoint `latest`, prune old ones."""
    fsync_tree(tmp)
    final = out_dir / step_dir_name(step)
    replace_dir(tmp, final)  # (replaces a re-save of the same step as a whole)
    _fsync_dir(out_dir)
    write_text_atomic(out_dir / LATEST, final.name + "\n")
    prune(out_dir, keep_last, protect=final.name)
    return final


def prune(out_dir: Path, keep_last: int, protect: str | None = None) -> None:
    ckpts = list_checkpoints(out_dir)
    for old in ckpts[: max(0, len(ckpts) - keep_last)]:
        if old.name != protect:
            shutil.rmtree(old, ignore_errors=True)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise SalesAIError(f"{path}: missing (incomplete checkpoint?)")
    try:
        return load_file(str(path))
    except Exception as exc:
        raise SalesAIError(f"{path}: not a readable safetensors file ({exc})".splitlines()[0]) from None


def read_state_json(ckpt: Path) -> dict[str, Any]:
    path = ckpt / STATE_DIR / "state.json"
    if not path.is_file():
        raise SalesAIError(f"{ckpt}: no {STATE_DIR}/state.json; not a training checkpoint (cannot resume)")
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SalesAIError(f"{path}: invalid JSON ({exc})") from None
    return data
