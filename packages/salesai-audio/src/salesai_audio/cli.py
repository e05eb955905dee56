"""The `salesai audio` command group: `make-data` (spoken digits), `transcribe`, `features` (inspect a clip).

Nothing heavy is imported here; torch and scipy load inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from salesai.errors import SalesAIError

HELP = "Audio: demo speech data, log-mel features, transcription with an audio model."


def make_app() -> typer.Typer:
    """A new `audio` typer group."""
    app = typer.Typer(name="audio", help=HELP, no_args_is_help=True)
    app.command("make-data")(make_data)
    app.command("transcribe")(transcribe)
    app.command("features")(features)
    return app


def make_data(
    kind: str = typer.Argument(..., help="Which data set: digits (spoken digit strings, 1-4 digits)."),
    out: Path = typer.Option(..., "--out", help="Output directory (replaced atomically)."),
    n: int = typer.Option(2000, "--n", help="Number of clips (train + test)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same data."),
    engines: str = typer.Option(
        "espeak-ng", "--engines", help="Comma-separated synthesisers: espeak-ng, flite."
    ),
) -> None:
    """Make a speech data set: WAV clips plus train.jsonl / test.jsonl (prompt/response records)."""
    from rich.progress import Progress

    from salesai_audio.digits import make_digits

    if kind != "digits":
        raise SalesAIError(f"unknown data set {kind!r}; expected: digits")
    names = tuple(e.strip() for e in engines.split(",") if e.strip())
    if not names:
        raise SalesAIError("--engines: expected at least one of espeak-ng, flite")
    with Progress(transient=True) as bar:
        task = bar.add_task("synthesising", total=n)
        counts = make_digits(
            out, n=n, seed=seed, engines=names, progress=lambda done, _total: bar.update(task, completed=done)
        )
    typer.echo(
        f"wrote {counts['train']} train and {counts['test']} test clips "
        f"({counts['test_speakers']} held-out speakers) to {out}"
    )


def transcribe(
    source: Path = typer.Argument(..., help="A checkpoint or run directory, or an ONNX export directory."),
    files: list[Path] = typer.Argument(..., help="Audio files (WAV; FLAC/OGG with the formats extra)."),
    backend: str = typer.Option("torch", "--backend", help="torch, onnxruntime or onnxruntime-int8."),
    as_json: bool = typer.Option(False, "--json", help="One JSON record per file."),
    prompt: str = typer.Option("<audio>", "--prompt", help="The prompt around the <audio> placeholder."),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", help="Longest transcript, in tokens."),
    batch_size: int = typer.Option(16, "--batch-size", help="Clips per generation batch."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the library's)."),
) -> None:
    """Transcribe audio files with an audio model: one line (or JSON record) per file, greedy."""
    from salesai.cli import error
    from salesai_audio.transcribe import transcribe as run

    records = run(
        source,
        files,
        backend=backend,
        prompt=prompt,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        threads=threads,
    )
    for record in records:
        if as_json:
            typer.echo(json.dumps(record))
        elif "error" in record:
            error(record["error"])
        else:
            typer.echo(f"{record['file']}\t{record['text']}")
    if any("error" in r for r in records):
        raise typer.Exit(2)


def features(
    file: Path = typer.Argument(..., help="An audio file (WAV; FLAC/OGG with the formats extra)."),
    max_seconds: float = typer.Option(30.0, "--max-seconds", help="The window the clip is padded to."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON record."),
) -> None:
    """Read a clip as the encoder does and print its duration and log-mel feature statistics."""
    import torch

    from salesai_audio.features import log_mel
    from salesai_audio.io import SAMPLE_RATE, read_audio

    samples = read_audio(file, max_seconds=max_seconds)
    window = torch.zeros(round(max_seconds * SAMPLE_RATE))
    window[: samples.shape[0]] = torch.from_numpy(samples)
    mel = log_mel(window)  # (n_mels, frames)
    record = {
        "file": str(file),
        "seconds": round(samples.shape[0] / SAMPLE_RATE, 3),
        "peak": round(float(abs(samples).max()), 4),
        "features": list(mel.shape),
        "min": round(float(mel.min()), 4),
        "max": round(float(mel.max()), 4),
        "mean": round(float(mel.mean()), 4),
    }
    if as_json:
        typer.echo(json.dumps(record))
    else:
        typer.echo(
            f"{file}: {record['seconds']} s, peak {record['peak']}, log-mel {tuple(mel.shape)} "
            f"in [{record['min']}, {record['max']}], mean {record['mean']}"
        )
