"""`salesai tokenizer`: train a SentencePiece tokenizer, encode and decode with one."""

from __future__ import annotations

import json
import time

import typer

tokenizer_app = typer.Typer(
    name="tokenizer", help="Train a SentencePiece tokenizer; encode and decode text.", no_args_is_help=True
)


@tokenizer_app.command("train")
def train(
    files: list[str] = typer.Argument(..., help="Text/code files, .jsonl files, folders or globs."),
    vocab_size: int = typer.Option(8000, "--vocab-size", help="Pieces wanted (shrunk if the data is small)."),
    out: str = typer.Option(..., "--out", help="Directory to write tokenizer.model into."),
    model_type: str = typer.Option("bpe", "--model-type", help="bpe or unigram."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Train a tokenizer on FILES and save DIR/tokenizer.model."""
    from rich.console import Console

    from salesai.tokenizer import Tokenizer

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    start = time.perf_counter()
    with err.status(f"training a {model_type} tokenizer ({vocab_size} pieces)"):
        tok = Tokenizer.train(list(files), vocab_size=vocab_size, out_dir=out, model_type=model_type,
                              verbose=False)
    seconds = time.perf_counter() - start
    for notice in tok.notices:
        err.print(f"[yellow]notice:[/yellow] {notice}")
    path = f"{out.rstrip('/')}/tokenizer.model"
    if json_output:
        typer.echo(json.dumps({
            "path": path, "model_type": tok.model_type, "vocab_size": len(tok),
            "requested_vocab_size": vocab_size, "special_tokens": tok.special_tokens,
            "notices": tok.notices, "seconds": round(seconds, 3),
        }, indent=2))
        return
    err.print(f"trained {tok.model_type} tokenizer, {len(tok)} pieces, in {seconds:.1f}s")
    typer.echo(path)


@tokenizer_app.command("encode")
def encode(
    directory: str = typer.Argument(..., help="Checkpoint/tokenizer directory or a .model file."),
    text: str = typer.Argument(..., help="Text to encode."),
    bos: bool = typer.Option(False, "--bos", help="Prepend <s>."),
    eos: bool = typer.Option(False, "--eos", help="Append </s>."),
    json_output: bool = typer.Option(False, "--json", help="Ids and pieces as JSON."),
) -> None:
    """Print the token ids of TEXT, space-separated."""
    from salesai.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(directory)
    ids = tok.encode(text, add_bos=bos, add_eos=eos)
    if json_output:
        typer.echo(json.dumps({"ids": ids, "tokens": [tok.id_to_token(i) for i in ids]}, ensure_ascii=False))
    else:
        typer.echo(" ".join(str(i) for i in ids))


@tokenizer_app.command("decode")
def decode(
    directory: str = typer.Argument(..., help="Checkpoint/tokenizer directory or a .model file."),
    ids: list[int] = typer.Argument(..., help="Token ids."),
) -> None:
    """Print the text of token IDS."""
    from salesai.tokenizer import Tokenizer

    typer.echo(Tokenizer.from_pretrained(directory).decode(ids), nl=False)
    typer.echo()


def register(app: typer.Typer) -> None:
    app.add_typer(tokenizer_app, name="tokenizer")
