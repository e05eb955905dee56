"""Training glue for record data and multimodal models: what `salesai train` adds to a text run.

- `with_run_encoders(config, run)`: `--init` from a text checkpoint with a multimodal preset or
  config: the checkpoint's decoder config plus the run's `encoders`.
- `init_model(init_dir, config)`: the `--init` model: the checkpoint as it is, or, when `config`
  adds encoders, a new model whose decoder weights come from the checkpoint (encoders and
  projectors stay freshly initialised).
- `freeze(model, parts)`: `--freeze-encoder` / `--freeze-decoder` (LLaVA stage 1 trains the
  projector only: both).
- `record_datasets(...)`: train/validation `RecordDataset`s (salesai.data.records).

What it is not: a trainer (the Trainer takes these datasets and models as they are).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from salesai.errors import SalesAIError

FREEZE_PARTS = ("encoder", "decoder")


def with_run_encoders(config: Any, run: Any) -> Any:
    """`config` (an --init checkpoint's) with the encoders the run's preset/config asks for, if any."""
    wanted = run.model_config() if (run.preset or run.model) else None
    encoders = getattr(wanted, "encoders", None)
    if encoders and not config.encoders:
        return config.replace(encoders=encoders)
    return config


def init_model(init_dir: Path, config: Any) -> Any:
    """The model an --init run starts from (see the module docstring)."""
    from salesai.model.checkpoint import load_pretrained
    from salesai.model.transformer import SalesAIModel
    from salesai.model.weights import WEIGHTS_FILE, read_config, read_weights

    if read_config(init_dir).encoders == config.encoders:
        return load_pretrained(init_dir)
    model = SalesAIModel(config)
    file = init_dir / WEIGHTS_FILE
    tensors = read_weights(file)
    if config.tie_embeddings:
        tensors.setdefault("lm_head.weight", tensors["embed_tokens.weight"])
    fresh = ("encoders.", "projectors.")
    expected = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(fresh)}
    tensors = {k: v for k, v in tensors.items() if not k.startswith(fresh)}  # its own encoders: replaced
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k])]
    if missing or unexpected or wrong:
        bad = (missing or unexpected or wrong)[0]
        raise SalesAIError(f"--init {init_dir}: its decoder does not fit the model config ({bad})")
    model.load_state_dict(tensors, strict=False)
    model.train()
    return model


def freeze(model: Any, parts: Sequence[str], log: Callable[[str], None] = print) -> None:
    """Stop gradients to the encoders and/or the decoder; the projectors always train."""
    for part in parts:
        if part not in FREEZE_PARTS:
            raise SalesAIError(f"freeze {part!r}: expected one of {', '.join(FREEZE_PARTS)}")
    if not parts:
        return
    if "encoder" in parts and not getattr(model, "encoders", None):
        raise SalesAIError("--freeze-encoder: the model has no encoders (use a multimodal preset or config)")
    frozen = 0
    for name, p in model.named_parameters():
        is_encoder, is_projector = name.startswith("encoders."), name.startswith("projectors.")
        if ("encoder" in parts and is_encoder) or ("decoder" in parts and not (is_encoder or is_projector)):
            p.requires_grad_(False)
            frozen += p.numel()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise SalesAIError("--freeze-decoder: nothing left to train (the model has no projectors)")
    log(f"frozen: {', '.join(parts)} ({frozen / 1e6:.2f}M parameters); training {trainable / 1e6:.2f}M")


def record_datasets(files: Sequence[Path], val_files: Sequence[Path] | None, tokenizer: Any, seq_len: int,
                    model: Any) -> tuple[Any, Any]:
    """(train, validation) RecordDatasets; without --val the last 2% of the records validate."""
    from salesai.data.records import RecordDataset, split_records

    train = RecordDataset.from_files(list(files), tokenizer, seq_len, model)
    if val_files:
        return train, RecordDataset.from_files(list(val_files), tokenizer, seq_len, model)
    head, tail = split_records(train.samples)
    val = RecordDataset(tail, seq_len, train.pad_id, train.preprocess)
    train.samples = head
    return train, val


__all__ = ["FREEZE_PARTS", "freeze", "init_model", "record_datasets", "with_run_encoders"]
