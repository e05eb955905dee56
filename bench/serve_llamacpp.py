"""llama.cpp's OpenAI-compatible server (llama-cpp-python) as bench/serve.py's reference.

What: turns the checkpoint bench/serve.py serves into GGUF and starts llama-cpp-python's server on
it, for the same closed-loop clients. The route: `salesai export --format hf` (MixtralForCausalLM),
a SentencePiece `tokenizer.model` written with exactly the byte tokenizer's 267 ids (controls,
symbols, then the 256 bytes as byte-fallback pieces, no dummy prefix: llama.cpp tokenizes ASCII
text byte by byte, as ours does), then the `convert_hf_to_gguf.py` that llama-cpp-python's sdist
vendors (found with bench/vs_llamacpp.py's `find_converter`) with `--outtype q8_0` (default).
The server runs as `python -m llama_cpp.server --model X.gguf --n_threads T --n_threads_batch T`
with OMP_WAIT_POLICY=PASSIVE, as ours.

What llama-cpp-python 0.3.36's server does with parallel requests (llama_cpp/server/app.py): one
`Llama` object, i.e. one llama.cpp context holding one sequence, behind a lock: requests are served
strictly one at a time, the others wait in the lock, so 16 clients get no batching. By default
(`interrupt_requests=True`) a streaming request is even cut short as soon as another one waits;
`--interrupt_requests false` is set here so every request runs to its end. Between requests it
keeps the previous prompt's KV and re-evaluates only what differs: with the bench's identical
prompts its prefill is ~1 token after the first request (ours prefills all of them).
Its completions endpoint takes text prompts only, sends no `usage` in streams and has no
`ignore_eos`. Its stream sends only complete UTF-8 text and holds back every token until its
bytes decode; the random model's greedy output is mostly non-ASCII bytes (0xFC again and again)
that never do, so all chunks would come in one burst at the end (TTFT = the whole request). The
body therefore sends the prompt ids' text, `repeat_penalty` 1 and a `logit_bias` of -100 on EOS
(= ignore_eos) and on the 128 bytes 0x80-0xFF (a numpy add over 267 logits per token; the forward
passes are the same, the output ASCII): every token then streams as it is made and TTFT and
inter-token gaps are measured as for ours. (`min_tokens` is not used: in 0.3.36 it makes the
server drop `logit_bias`, and itself, as `LogitsProcessorList.extend` returns None.) `check` sends
the body once without streaming and reads `usage` to confirm the prompt and output lengths equal
ours before anything is timed.

What it is not: a llama.cpp build; llama-cpp-python must be installed in another python (its
server extra: uvicorn, fastapi, pydantic-settings, sse-starlette, starlette-context).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SERVER_DEPS = "uvicorn fastapi pydantic-settings sse-starlette 'starlette-context>=0.3.6,<0.4'"


def _vs_llamacpp() -> Any:
    """bench/vs_llamacpp.py as a module (this folder is not on sys.path: bench/onnx.py shadows onnx)."""
    spec = importlib.util.spec_from_file_location("vs_llamacpp", Path(__file__).parent / "vs_llamacpp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def missing(python: str) -> str | None:
    """Why `python` cannot run llama-cpp-python's server (how to fix it), or None when it can."""
    server = f" Its server needs these too: {python} -m pip install {SERVER_DEPS}"
    if not Path(python).exists():
        return f"{python}: not found. " + _vs_llamacpp().BUILD_HELP.format(py=python) + server
    code = "import llama_cpp; import llama_cpp.server.app"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    if "No module named 'llama_cpp'" in proc.stderr:
        return _vs_llamacpp().BUILD_HELP.format(py=python) + server
    return (f"{python} has llama_cpp but not its server extra ({proc.stderr.strip().splitlines()[-1]}); "
            f"install it without touching llama-cpp-python: {python} -m pip install {SERVER_DEPS}")


# ----------------------------------------------------------------------------- the GGUF file
def byte_sentencepiece(path: Path, vocab_size: int) -> None:
    """A SentencePiece model with the byte tokenizer's ids (salesai.testing.ByteTokenizer)."""
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2

    spm: Any = spm_pb2  # generated protobuf module: no type stubs

    from salesai.testing.tokenizer import BYTE_OFFSET, CONTROL_TOKENS, SYMBOLS

    kinds = spm.ModelProto.SentencePiece
    proto = spm.ModelProto()
    for i, piece in enumerate(CONTROL_TOKENS):
        proto.pieces.add(piece=piece, score=0.0, type=kinds.UNKNOWN if i == 1 else kinds.CONTROL)
    for piece in SYMBOLS:
        proto.pieces.add(piece=piece, score=0.0, type=kinds.USER_DEFINED)
    for b in range(256):
        proto.pieces.add(piece=f"<0x{b:02X}>", score=0.0, type=kinds.BYTE)
    if len(proto.pieces) != vocab_size or len(CONTROL_TOKENS) + len(SYMBOLS) != BYTE_OFFSET:
        raise SystemExit(f"the model's vocabulary ({vocab_size}) is not the byte tokenizer's "
                         f"({len(proto.pieces)}); --llamacpp-python needs the bench's own model "
                         "(no --checkpoint)")
    proto.trainer_spec.model_type = spm.TrainerSpec.BPE
    proto.trainer_spec.vocab_size = vocab_size
    proto.trainer_spec.byte_fallback = True
    proto.trainer_spec.pad_id, proto.trainer_spec.unk_id = 0, 1
    proto.trainer_spec.bos_id, proto.trainer_spec.eos_id = 2, 3
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = False
    proto.normalizer_spec.escape_whitespaces = False
    path.write_bytes(proto.SerializeToString())


def to_gguf(ckpt: Path, work: Path, outtype: str, sdist: Path | None) -> Path:
    """The `hf` exporter on `ckpt`, then llama.cpp's converter to `work/model-<outtype>.gguf`."""
    import json

    from salesai import SalesAIModel
    from salesai.export.hf import export_hf

    hf = work / "hf"  # what `salesai export --format hf` writes (its CLI cannot load the byte tokenizer)
    export_hf(SalesAIModel.from_pretrained(ckpt), None, hf)
    byte_sentencepiece(hf / "tokenizer.model", json.loads((hf / "config.json").read_text())["vocab_size"])
    (hf / "tokenizer_config.json").write_text(json.dumps({"add_prefix_space": False}))
    cache = Path(os.environ.get("SALESAI_BENCH_CACHE", ".bench-vs-llamacpp")).resolve()
    if sdist is None or sdist.is_file():  # download / unpack the sdist there
        cache.mkdir(parents=True, exist_ok=True)
    converter = _vs_llamacpp().find_converter(cache, sdist)  # downloads the sdist into the cache once
    out = work / f"model-{outtype}.gguf"
    cmd = [sys.executable, str(converter), str(hf), "--outtype", outtype, "--outfile", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"convert_hf_to_gguf.py failed:\n{proc.stderr[-2000:]}")
    return out


# ---------------------------------------------------------------------------- the server
def start(python: str, gguf: Path, threads: int, n_ctx: int, port: int) -> tuple[Any, str]:
    """llama-cpp-python's server on `gguf`; returns (process, base url) at once
    (bench/serve.py waits until /v1/models answers)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [python, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "bench",
           "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads),
           "--n_threads_batch", str(threads), "--n_ctx", str(n_ctx), "--interrupt_requests", "false",
           "--verbose", "false"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{port}"


def request_body(prompt: list[int], output_tokens: int) -> dict[str, Any]:
    """The bench body for llama.cpp: the prompt ids' text (BOS is added by the server)."""
    from salesai.testing import ByteTokenizer
    from salesai.testing.tokenizer import BYTE_OFFSET

    if prompt[0] != ByteTokenizer.bos_id:
        raise SystemExit("the bench prompt must start with BOS")
    text = ByteTokenizer().decode(prompt[1:])
    same = text.encode("utf-8") == bytes(i - BYTE_OFFSET for i in prompt[1:])
    if not same or not text.isascii() or " " in text:
        raise SystemExit("the bench prompt is not plain ASCII bytes (shorten --prompt-tokens)")
    banned = [ByteTokenizer.eos_id, *(BYTE_OFFSET + b for b in range(0x80, 0x100))]  # see the docstring
    return {"model": "bench", "prompt": text, "max_tokens": output_tokens, "temperature": 0,
            "repeat_penalty": 1.0, "logit_bias": {str(t): -100.0 for t in banned}, "stream": True}


def check(url: str, body: dict[str, Any], prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
    """One non-streamed request: llama.cpp's `usage` must show our prompt and output lengths."""
    import httpx

    plain = {**body, "stream": False}
    usage = httpx.post(f"{url}/v1/completions", json=plain, timeout=600).json()["usage"]
    if (usage["prompt_tokens"], usage["completion_tokens"]) != (prompt_tokens, output_tokens):
        raise SystemExit(f"llama.cpp usage {usage} differs from the bench's {prompt_tokens} prompt / "
                         f"{output_tokens} output tokens")
    return dict(usage)


def version(python: str) -> str:
    """llama-cpp-python's version in `python`."""
    code = "import llama_cpp; print(llama_cpp.__version__)"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()
