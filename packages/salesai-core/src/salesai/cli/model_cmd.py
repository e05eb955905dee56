"""`salesai generate` and `salesai info`: run a checkpoint, describe a model.

`generate` prints the completion alone on stdout (streamed with `--stream`) and statistics
(tokens, seconds, tokens/s) on stderr. `--image FILE` / `--audio FILE` (repeatable) fill the
prompt's `<image>` / `<audio>` placeholders in order (one is put in front of the prompt when it
has none); every backend's runner then takes `media={modality: [files]}` as well.
The backend is picked from `BACKENDS` by `--backend`: `torch` is built in; another backend
adds a loader `(source, options) -> runner` under its name, the runner mapping prompt ids to an
iterator of generated ids (the ONNX Runtime backend does); loading happens before the clock
starts. torch is imported inside the torch backend only, so other backends run without it.
`info` reads a checkpoint directory, a config file or a preset name without loading weights.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from salesai.errors import SalesAIError


@dataclass
class GenerateOptions:
    """Sampling settings shared by every backend."""

    max_new_tokens: int = 128
    temperature: float = 0.8
    top_k: int | None = 50
    top_p: float | None = 0.95
    repetition_penalty: float = 1.0
    seed: int | None = None
    threads: int | None = None
    stop_token_ids: list[int] | None = None  # None = the model's eos

    def sampling(self) -> dict[str, Any]:
        """The keyword arguments every engine's `stream` takes (all but `threads`)."""
        return {k: v for k, v in vars(self).items() if k != "threads"}


Runner = Callable[..., Iterator[int]]  # (prompt ids[, media=...]) -> generated ids, as produced


def _torch_backend(source: Path, opts: GenerateOptions) -> Runner:
    """Load the checkpoint once; the runner streams tokens through the PyTorch engine."""
    import torch

    from salesai.model.checkpoint import load_pretrained
    from salesai.model.generation import decode_layout

    if opts.threads:
        torch.set_num_threads(opts.threads)
    model = load_pretrained(source)
    decode_layout(model)  # column-major Linear weights: faster memory-bound decoding on CPU

    return lambda prompt_ids, **media: model.stream(prompt_ids, **media, **opts.sampling())


def _onnxruntime_backend(source: Path, opts: GenerateOptions, variant: str = "fp32") -> Runner:
    """Load an ONNX export once; numpy + onnxruntime + sentencepiece only, no torch import."""
    from salesai.ort_runtime import OrtGenerator

    gen = OrtGenerator.from_export(source, variant=variant, threads=opts.threads or 0)
    return lambda prompt_ids, **media: gen.stream(prompt_ids, **media, **opts.sampling())


def _onnxruntime_int8_backend(source: Path, opts: GenerateOptions) -> Runner:
    return _onnxruntime_backend(source, opts, variant="int8")


def _onnxruntime_q8_backend(source: Path, opts: GenerateOptions) -> Runner:
    return _onnxruntime_backend(source, opts, variant="q8")


def _onnxruntime_q4_backend(source: Path, opts: GenerateOptions) -> Runner:
    return _onnxruntime_backend(source, opts, variant="q4")


# name -> loader(source, options) -> runner. Other backends add themselves here
# (e.g. "onnxruntime", whose loader must not import torch).
BACKENDS: dict[str, Callable[[Path, GenerateOptions], Runner]] = {
    "torch": _torch_backend,
    "onnxruntime": _onnxruntime_backend,  # CHECKPOINT is an ONNX export dir (salesai export --format onnx)
    "onnxruntime-int8": _onnxruntime_int8_backend,  # the same export, its decoder.int8.onnx
    "onnxruntime-q8": _onnxruntime_q8_backend,  # decoder.q8.onnx (--quantize q8: 8-bit blocks of 32)
    "onnxruntime-q4": _onnxruntime_q4_backend,  # decoder.q4.onnx (--quantize q4)
}


def _backend(name: str) -> Callable[[Path, GenerateOptions], Runner]:
    if name not in BACKENDS:
        raise SalesAIError(f"--backend {name!r}: unknown; expected one of: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


class _Detokenizer:
    """Turns a growing list of ids into text increments, holding back incomplete UTF-8 bytes."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = ""

    def add(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""
        new = text[len(self.emitted):] if text.startswith(self.emitted) else ""
        self.emitted = text
        return new

    def text(self) -> str:
        return self.tokenizer.decode(self.ids)


def generate(
    checkpoint: Path = typer.Argument(..., help="Checkpoint directory (with tokenizer.model)."),
    prompt: str = typer.Argument(..., help="Prompt text; '-' reads standard input."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", "-n", help="Tokens to generate at most."),
    temperature: float = typer.Option(0.8, "--temperature", "-t", help="Sampling temperature; 0 = greedy."),
    top_k: int = typer.Option(50, "--top-k", help="Sample among the k most likely tokens (0 = off)."),
    top_p: float = typer.Option(0.95, "--top-p", help="Nucleus sampling mass (1.0 = off)."),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help="CTRL penalty (1.0 = off)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed: same seed, same output."),
    stream: bool = typer.Option(False, "--stream", help="Print tokens as they are produced."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: torch's)."),
    backend: str = typer.Option(
        "torch", "--backend",
        help="torch, onnxruntime, onnxruntime-int8, -q8 or -q4 (CHECKPOINT is then an ONNX export dir)."),
    tokenizer_path: Optional[Path] = typer.Option(
        None, "--tokenizer", help="Tokenizer dir or .model file (default: the checkpoint's)."),
    no_bos: bool = typer.Option(False, "--no-bos", help="Do not start the prompt with <s>."),
    image: Optional[list[Path]] = typer.Option(
        None, "--image", help="Image file for an <image> placeholder (repeatable, in order)."),
    audio: Optional[list[Path]] = typer.Option(
        None, "--audio", help="Audio file for an <audio> placeholder (repeatable, in order)."),
) -> None:
    """Complete a prompt with a checkpoint: the completion on stdout, statistics on stderr."""
    from salesai.tokenizer import Tokenizer

    loader = _backend(backend)
    if not checkpoint.exists():
        raise SalesAIError(f"{checkpoint}: checkpoint directory not found")
    if backend == "torch":  # (the ONNX Runtime backends read an export directory, without torch)
        from salesai.model.checkpoint import resolve_checkpoint

        checkpoint = resolve_checkpoint(checkpoint, notice=True)
    text = sys.stdin.read() if prompt == "-" else prompt
    media = {m: list(files) for m, files in (("image", image), ("audio", audio)) if files}
    for modality, files in media.items():
        for f in files:
            if not f.is_file():
                raise SalesAIError(f"--{modality} {f}: file not found")
        if f"<{modality}>" not in text:  # as in training records: placeholders in front of the text
            text = f"<{modality}>" * len(files) + text
    tok = Tokenizer.from_pretrained(tokenizer_path or checkpoint)
    ids = tok.encode(text, add_bos=not no_bos)
    if not ids:
        raise SalesAIError("prompt: empty (give some text, or drop --no-bos)")
    opts = GenerateOptions(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k or None,
        top_p=top_p if top_p < 1.0 else None,
        repetition_penalty=repetition_penalty,
        seed=seed,
        threads=threads,
    )
    run = loader(checkpoint, opts)
    detok = _Detokenizer(tok)
    start = time.perf_counter()
    first: float | None = None
    n = 0
    for token in run(ids, media=media) if media else run(ids):
        if first is None:
            first = time.perf_counter() - start
        n += 1
        if token == tok.eos_id:
            continue
        piece = detok.add(token)
        if stream and piece:
            sys.stdout.write(piece)
            sys.stdout.flush()
    elapsed = time.perf_counter() - start
    out = detok.text()
    if stream:
        sys.stdout.write(out[len(detok.emitted):] + "\n")
    else:
        sys.stdout.write(out + "\n")
    sys.stdout.flush()
    decode_s = elapsed - (first or 0.0)
    rate = (n - 1) / decode_s if n > 1 and decode_s > 0 else 0.0
    print(
        f"[{backend}] prompt {len(ids)} tokens, generated {n} tokens in {elapsed:.2f} s; "
        f"first token {1000 * (first or 0.0):.0f} ms, then {rate:.1f} tokens/s",
        file=sys.stderr,
    )


# -- info ---------------------------------------------------------------------------------
def describe(source: str) -> dict[str, Any]:
    """Facts about a checkpoint directory, a model config file or a preset name (no weights loaded)."""
    import torch

    from salesai.model.checkpoint import TOKENIZER_FILE, WEIGHTS_FILE, read_config, resolve_checkpoint
    from salesai.model.config import PRESETS, ModelConfig
    from salesai.model.transformer import SalesAIModel
    from salesai.model.weights import check_weights_file

    path = Path(source)
    weights = tokenizer = None
    if path.is_dir():
        path = resolve_checkpoint(path, notice=True)
        cfg = read_config(path)
        kind = "checkpoint"
        if (path / WEIGHTS_FILE).is_file():
            weights = path / WEIGHTS_FILE
            check_weights_file(weights)  # a truncated file fails here, not later when loading
        if (path / TOKENIZER_FILE).is_file():
            tokenizer = path / TOKENIZER_FILE
    elif path.is_file():
        cfg, kind = ModelConfig.from_file(path), "config file"
    elif source in PRESETS:
        cfg, kind = ModelConfig.from_name(source), "preset"
    else:
        raise SalesAIError(
            f"{source}: not a checkpoint directory, a config file or a preset ({', '.join(PRESETS)})"
        )
    with torch.device("meta"):
        model = SalesAIModel(cfg)
    total, active = model.num_parameters(), model.num_parameters(active=True)
    info: dict[str, Any] = {
        "source": str(source),
        "kind": kind,
        "name": cfg.name,
        "parameters": total,
        "active_parameters": active,
        "embedding_parameters": cfg.vocab_size * cfg.hidden_dim * (1 if cfg.tie_embeddings else 2),
        "vocab_size": cfg.vocab_size,
        "hidden_dim": cfg.hidden_dim,
        "num_layers": cfg.num_layers,
        "num_heads": cfg.num_heads,
        "num_kv_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "num_experts": cfg.num_experts,
        "top_k": cfg.top_k,
        "expert_type": cfg.expert_type,
        "intermediate_dim": cfg.intermediate_dim,
        "num_shared_experts": cfg.num_shared_experts,
        "max_seq_len": cfg.max_seq_len,
        "tie_embeddings": cfg.tie_embeddings,
        "weights_file": str(weights) if weights else None,
        "weights_bytes": weights.stat().st_size if weights else None,
        "tokenizer_file": str(tokenizer) if tokenizer else None,
        "config": asdict(cfg),
    }
    return info


def _human(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def info(
    source: str = typer.Argument(..., help="Checkpoint directory, model config file, or preset name."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Describe a model: parameters (total and active per token), experts, vocabulary, layers."""
    data = describe(source)
    if json_output:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{data['source']} ({data['kind']})", show_header=False)
    table.add_column("field")
    table.add_column("value")
    experts = f"{data['num_experts']} x {data['expert_type']}, top-{data['top_k']}"
    if data["num_experts"] == 1:
        experts = f"dense ({data['expert_type']})"
    if data["num_shared_experts"]:
        experts += f" + {data['num_shared_experts']} shared"
    rows = [
        ("parameters", f"{_human(data['parameters'])} ({data['parameters']:,})"),
        ("active per token", f"{_human(data['active_parameters'])} ({data['active_parameters']:,})"),
        ("experts", experts),
        ("expert width", str(data["intermediate_dim"])),
        ("vocabulary", f"{data['vocab_size']:,}"),
        ("layers", str(data["num_layers"])),
        ("width", str(data["hidden_dim"])),
        ("heads (kv)", f"{data['num_heads']} ({data['num_kv_heads']}) x {data['head_dim']}"),
        ("max sequence", str(data["max_seq_len"])),
        ("tied embeddings", "yes" if data["tie_embeddings"] else "no"),
    ]
    if data["weights_bytes"] is not None:
        rows.append(("weights file", f"{data['weights_bytes'] / 1e6:.1f} MB"))
    if data["kind"] == "checkpoint":
        rows.append(("tokenizer", "yes" if data["tokenizer_file"] else "missing"))
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.command("info")(info)
