"""Glue between files on disk and the Trainer: what `salesai train` and `salesai eval` run.

`train_from_files`: tokenizer (given, from the checkpoint being resumed, or trained on the data),
model config (preset/config file, vocabulary matched to the tokenizer), token cache in
`out_dir/cache` (data.py's `tokenize_files`), a train/validation split, then `Trainer.fit`.
Under torchrun rank 0 trains the tokenizer and fills the token cache first; the other ranks wait
and then reuse both. `evaluate_checkpoint`: loss, perplexity and expert usage of a checkpoint.

Not here: the training loop (trainer.py), config parsing (train_config.py).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from salesai.errors import SalesAIError
from salesai.train.config import RunConfig

Log = Callable[[str], None]
VAL_FRACTION = 0.02  # validation share of the token stream when no --val data is given


def split_tokens(tokens: np.ndarray, seq_len: int,
                 fraction: float = VAL_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Train = the head of the stream, validation = its tail (at least two windows when possible)."""
    n = len(tokens)
    n_val = max(int(n * fraction), 2 * seq_len + 1)
    if n - n_val < seq_len + 1:
        raise SalesAIError(
            f"training data: {n:,} tokens are too few for seq_len {seq_len} with a validation split "
            f"(need about {3 * seq_len + 2:,}); give more data, --val data, or a smaller --seq-len")
    return tokens[: n - n_val], tokens[n - n_val :]


def _barrier(info: Any) -> None:
    from salesai.train import distributed as D

    D.barrier(info)


def train_from_files(run: RunConfig, data: Sequence[str], val_paths: Sequence[str] | None = None,
                     resume: bool = False, tokenizer_path: str | os.PathLike[str] | None = None,
                     vocab_size: int | None = None, log: Log = print,
                     init: str | os.PathLike[str] | None = None,
                     lora: str | None = None, freeze: Sequence[str] = ()) -> dict[str, Any] | None:
    """Train from text files; returns a summary dict on rank 0 (None on other ranks).

    `init`: start from this checkpoint (its config, weights and tokenizer). `lora`: a LoRA spec
    (`r=16,alpha=32,targets=attn,experts`, salesai.lora): train adapters on the frozen `init` model.
    Record data (.jsonl with prompt/response or media, salesai.data.records) trains on records
    instead of a token stream; `freeze`: "encoder" and/or "decoder" (salesai.train.multimodal)."""
    import torch

    from salesai.data import is_record_file, iter_record_texts, resolve_sources, tokenize_files
    from salesai.model.config import ModelConfig
    from salesai.model.transformer import SalesAIModel
    from salesai.tokenizer import Tokenizer
    from salesai.train import distributed as D
    from salesai.train import state as S
    from salesai.train.multimodal import freeze as freeze_parts
    from salesai.train.multimodal import init_model, record_datasets, with_run_encoders
    from salesai.train.trainer import Trainer, resolve_device

    cfg = run.training
    out = Path(cfg.out_dir)
    info = D.init_distributed(resolve_device(cfg.device).type)
    main = info.is_main
    say: Log = log if main else (lambda _msg: None)
    files = resolve_sources(list(data))
    val_files = resolve_sources(list(val_paths)) if val_paths else None
    records = any(is_record_file(f) for f in files)  # prompt/response or media records
    ckpt = S.latest_checkpoint(out) if resume else None
    if not resume and S.latest_checkpoint(out) is not None:
        raise SalesAIError(f"--out {out}: already holds checkpoints; pass --resume to continue, "
                           "or choose a new --out")
    if resume and ckpt is None:
        say(f"notice: nothing to resume in {out}; starting a new run")
    init_dir = S.resolve_checkpoint(init, notice=main) if init is not None else None
    if lora is not None and init_dir is None and ckpt is None:
        raise SalesAIError("--lora: needs --init CHECKPOINT, the base model the adapters are trained on")

    # tokenizer: resumed checkpoint > --tokenizer > trained here (rank 0, then shared through the disk)
    if ckpt is not None:
        tok = Tokenizer.from_pretrained(ckpt)
        model_cfg = ModelConfig.from_file(ckpt / "config.json")
    elif init_dir is not None:  # the init checkpoint's model and (unless --tokenizer) tokenizer
        model_cfg = with_run_encoders(ModelConfig.from_file(init_dir / "config.json"), run)
        tok = Tokenizer.from_pretrained(tokenizer_path or init_dir)
        if len(tok) > model_cfg.vocab_size:
            raise SalesAIError(f"--tokenizer: {len(tok)} pieces, more than the --init model's vocab_size "
                               f"{model_cfg.vocab_size}")
    else:
        model_cfg = run.model_config()
        if tokenizer_path is not None:
            tok = Tokenizer.from_pretrained(tokenizer_path)
        else:
            tok_dir = out / "tokenizer"
            if main:
                want = vocab_size or model_cfg.vocab_size
                say(f"training a {want}-piece tokenizer on {len(files)} file(s)")
                texts = iter_record_texts(files) if records else [str(f) for f in files]
                Tokenizer.train(texts, vocab_size=want, out_dir=tok_dir, verbose=True)
            _barrier(info)
            tok = Tokenizer.from_pretrained(tok_dir)
        if len(tok) != model_cfg.vocab_size:
            say(f"notice: model vocab_size set to the tokenizer's {len(tok)} (was {model_cfg.vocab_size})")
            model_cfg = model_cfg.replace(vocab_size=len(tok))
    cfg = run.fit_to_model(model_cfg.hidden_dim)  # (the same on resume: the width is the checkpoint's)
    if cfg.seq_len > model_cfg.max_seq_len:
        raise SalesAIError(f"training.seq_len {cfg.seq_len}: expected <= the model's max_seq_len "
                           f"{model_cfg.max_seq_len}")

    torch.manual_seed(cfg.seed)
    model: Any
    if lora is not None or (ckpt is not None and (ckpt / "adapter_config.json").is_file()):
        from salesai.lora.checkpoint import lora_for_training

        model = lora_for_training(lora, init_dir, ckpt, log=say)
    elif init_dir is not None and ckpt is None:
        model = init_model(init_dir, model_cfg)  # (a text checkpoint under new encoders: decoder loaded)
    else:
        model = SalesAIModel(model_cfg)
    freeze_parts(model, freeze, say)

    train_tokens: Any
    val_tokens: Any
    if records:  # prompt/response or media records, encoded in memory (salesai.data.records)
        train_tokens, val_tokens = record_datasets(files, val_files, tok, cfg.seq_len, model)
        say(f"data: {len(train_tokens):,} training records, {len(val_tokens):,} validation records")
    else:  # tokens: cached beside the output; rank 0 writes, the others reuse
        cache = out / "cache"
        if main:
            train_file = tokenize_files(files, tok, cache, name="train")
            val_file = tokenize_files(val_files, tok, cache, name="val") if val_files else None
        _barrier(info)
        if not main:
            train_file = tokenize_files(files, tok, cache, name="train", progress=False)
            val_file = (tokenize_files(val_files, tok, cache, name="val", progress=False)
                        if val_files else None)
        if val_file is not None:
            train_tokens, val_tokens = train_file.tokens(), val_file.tokens()
        else:
            train_tokens, val_tokens = split_tokens(train_file.tokens(), cfg.seq_len)
        say(f"data: {len(train_tokens):,} training tokens, {len(val_tokens):,} validation tokens")

    trainer = Trainer(model, cfg, train_tokens, val_tokens, tokenizer=tok)
    say(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, precision "
        f"{trainer.precision}, {info.world_size} process(es), {trainer.global_batch_tokens:,} tokens/step")
    result = trainer.fit(resume=ckpt is not None)
    if not main:
        return None
    last_eval = result.evals[-1] if result.evals else {}
    return {
        "steps": result.step,
        "tokens": result.step * trainer.global_batch_tokens,
        "tokens_per_s": result.tokens_per_s,
        "precision": result.precision,
        "world_size": info.world_size,
        "final_train_loss": result.losses[-1] if result.losses else None,
        "eval": last_eval,
        "checkpoint": str(result.checkpoint or S.latest_checkpoint(out)),
        "metrics": str(out / "metrics.jsonl"),
    }


def evaluate_checkpoint(checkpoint: str | os.PathLike[str], data: Sequence[str], batch_size: int = 8,
                        seq_len: int | None = None, max_batches: int = 50, threads: int | None = None,
                        precision: str = "fp32") -> dict[str, Any]:
    """Mean next-token loss, perplexity and expert usage of a checkpoint on some text."""
    import torch

    from salesai.data import tokenize_files
    from salesai.model.checkpoint import load_pretrained
    from salesai.tokenizer import Tokenizer
    from salesai.train import state as S
    from salesai.train.trainer import TokenSequences, evaluate, resolve_device, resolve_precision

    if threads:
        torch.set_num_threads(threads)
    ckpt = S.resolve_checkpoint(checkpoint, notice=True)
    model = load_pretrained(ckpt)  # (a LoRA adapter checkpoint: base + adapter)
    tok = Tokenizer.from_pretrained(ckpt)
    seq_len = seq_len or min(256, model.config.max_seq_len)
    if not 2 <= seq_len <= model.config.max_seq_len:
        raise SalesAIError(f"--seq-len {seq_len}: expected 2..{model.config.max_seq_len} "
                           "(the model's max_seq_len)")
    device = resolve_device("auto")
    from salesai.data import is_record_file, resolve_sources

    files = resolve_sources(list(data))
    if any(is_record_file(f) for f in files):  # prompt/response or media records: loss on responses
        from salesai.data.records import RecordDataset

        records = RecordDataset.from_files(files, tok, seq_len, model)
        records.samples = records.samples[: max_batches * batch_size]
        result = records.evaluate(model.to(device), batch_size, device, resolve_precision(precision, device))
        return {**result, "checkpoint": str(ckpt), "seq_len": seq_len, "records": len(records)}
    with tempfile.TemporaryDirectory(prefix="salesai-eval-") as tmp:
        tokens = np.array(tokenize_files(list(data), tok, tmp, name="eval").tokens())
    if len(tokens) < seq_len:
        seq_len = max(2, len(tokens))
    seqs = TokenSequences(tokens, seq_len)
    result = evaluate(model.to(device), seqs, batch_size, max_batches, device,
                      resolve_precision(precision, device))
    result["checkpoint"] = str(ckpt)
    result["seq_len"] = seq_len
    result["val_perplexity"] = math.exp(min(result["val_loss"], 50.0))
    return result
