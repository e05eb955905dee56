"""Transcription: audio files -> text with a salesai checkpoint (torch) or its ONNX export (ONNX Runtime).

What: `transcribe(source, files, backend=...)` reads every file first (a file that cannot be
read gives a record with its one-line error, the others go on), then runs greedy generation
on the prompt `<audio>` in batches, one record per file: `{"file", "text"}` or
`{"file", "error"}`. Backends: `torch` (a checkpoint or run directory), `onnxruntime` and
`onnxruntime-int8` (a directory written by `salesai export --format onnx`; torch is never
imported on these paths: preprocessing goes through `preprocess_numpy`, the encoder and the
decoder through ONNX Runtime).

What it is not: a streaming recogniser or a long-form one (clips longer than the model's
window are cut or refused as the encoder is configured).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from salesai.errors import SalesAIError

BACKENDS = ("torch", "onnxruntime", "onnxruntime-int8")
PROMPT = "<audio>"


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def transcribe(
    source: str | Path,
    files: Sequence[str | Path],
    *,
    backend: str = "torch",
    prompt: str = PROMPT,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """One record per file, in order: {"file", "text"} or {"file", "error"} (see the module docstring)."""
    if backend not in BACKENDS:
        raise SalesAIError(f"unknown backend {backend!r}; expected one of: {', '.join(BACKENDS)}")
    if "<audio>" not in prompt:
        prompt = "<audio>" + prompt
    if prompt.count("<audio>") != 1:
        raise SalesAIError(f"--prompt {prompt!r}: expected exactly one <audio> placeholder")
    run = _torch_runner if backend == "torch" else _ort_runner
    read, generate, decode = run(Path(source), backend, prompt, max_new_tokens, threads)
    records: list[dict[str, Any]] = []
    ready: list[tuple[int, Any]] = []
    for i, f in enumerate(files):
        records.append({"file": str(f)})
        try:
            ready.append((i, read(f)))
        except SalesAIError as exc:
            records[i]["error"] = str(exc)
    for batch in _batches(ready, max(1, batch_size)):
        outputs = generate([item for _, item in batch])
        for (i, _), ids in zip(batch, outputs, strict=True):
            records[i]["text"] = decode(ids)
    return records


Runner = tuple[Callable[[Any], Any], Callable[[list[Any]], list[list[int]]], Callable[[list[int]], str]]


def _strip(ids: list[int], stops: set[int]) -> list[int]:
    out = []
    for tok in ids:
        if tok in stops:
            break
        out.append(tok)
    return out


def _torch_runner(
    source: Path, backend: str, prompt: str, max_new_tokens: int, threads: int | None
) -> Runner:
    import torch

    from salesai.model.checkpoint import load_pretrained, resolve_checkpoint
    from salesai.ort_runtime import load_tokenizer

    if threads:
        torch.set_num_threads(threads)
    checkpoint = resolve_checkpoint(source)
    model = load_pretrained(checkpoint)
    tokenizer = load_tokenizer(checkpoint / "tokenizer.model")  # SentencePiece (or the tests' bytes)
    if "audio" not in getattr(model, "encoders", {}):
        raise SalesAIError(f"{source}: this model has no audio encoder (encoders.audio in its config)")
    model.eval()
    encoder = model.encoders["audio"]
    ids = tokenizer.encode(prompt, add_bos=True)
    stops = {model.config.eos_token_id, model.config.pad_token_id}

    def generate(items: list[Any]) -> list[list[int]]:
        with torch.inference_mode():
            return model.generate(
                [list(ids) for _ in items], max_new_tokens=max_new_tokens, temperature=0, audio=list(items)
            )

    return encoder.preprocess, generate, lambda out: tokenizer.decode(_strip(out, stops)).strip()


def _ort_runner(source: Path, backend: str, prompt: str, max_new_tokens: int, threads: int | None) -> Runner:
    from salesai.ort_runtime import OrtGenerator

    variant = "int8" if backend.endswith("int8") else "fp32"
    gen = OrtGenerator.from_export(source, variant=variant, threads=threads or 0)
    tokenizer = gen.tokenizer
    if tokenizer is None:
        raise SalesAIError(f"{source}: the export holds no tokenizer.model")
    encoder = gen.encoder("audio")
    ids = tokenizer.encode(prompt, add_bos=gen.add_bos)
    stops = {gen.eos_id, gen.pad_id}

    def read(f: Any) -> Any:
        encoder.preprocess(f)  # validates the file (one-line SalesAIError); the generator reads it again
        return f

    def generate(items: list[Any]) -> list[list[int]]:
        return gen.generate(
            [list(ids) for _ in items], max_new_tokens=max_new_tokens, temperature=0, media={"audio": items}
        )

    return read, generate, lambda out: tokenizer.decode(_strip(out, stops)).strip()
