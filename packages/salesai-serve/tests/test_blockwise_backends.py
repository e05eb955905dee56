"""Block-wise quantised ONNX decoders (`--quantize q8` / `q4`) served by name, and the PyTorch
backend's decode layout.

The session export (conftest) carries int8 and q8 decoders. `onnxruntime-q8` must answer what
`OrtGenerator(variant="q8")` (i.e. `salesai generate EXPORT --backend onnxruntime-q8`) answers on
the same export, over HTTP and batched in the engine; the names appear wherever backends are
listed; an export without a q4 decoder names the missing variant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from salesai.errors import SalesAIError
from salesai.testing import run_cli
from salesai_serve.backends import BACKEND_NAMES, SamplingParams, load_backend, ort_variant
from salesai_serve.engine import Engine

PROMPTS = ["def add(x, y):", "hello", "for i in range(10):\n    print(i)\n", "the quick", "x"]


@pytest.fixture(scope="module")
def q8_generator(export_dir: Path) -> Any:
    from salesai.ort_runtime import OrtGenerator

    return OrtGenerator.from_export(export_dir, variant="q8", threads=1)


def _reference(gen: Any, ids: list[int], n: int) -> list[int]:
    return [int(t) for t in gen.generate([ids], max_new_tokens=n, temperature=0.0, stop_token_ids=[])[0]]


def test_backend_names_and_variants() -> None:
    assert BACKEND_NAMES == ("pytorch", "onnxruntime", "onnxruntime-int8", "onnxruntime-q8", "onnxruntime-q4")
    assert [ort_variant(n) for n in BACKEND_NAMES[1:]] == ["fp32", "int8", "q8", "q4"]


def test_q8_over_http_equals_ort_generator(make_client: Any, q8_generator: Any, tokenizer: Any) -> None:
    """Greedy completions (and the /v1/models backend) of `onnxruntime-q8` == OrtGenerator's q8 tokens."""
    client = make_client("onnxruntime-q8")
    model = client.get("/v1/models").json()["data"][0]
    assert model["backend"] == "onnxruntime-q8"
    for prompt in PROMPTS[:3]:
        body = {"model": "tiny", "prompt": prompt, "max_tokens": 10, "temperature": 0, "ignore_eos": True}
        r = client.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
        expected = _reference(q8_generator, tokenizer.encode(prompt, add_bos=True), 10)
        assert r.json()["choices"][0]["text"] == tokenizer.decode(expected)
        assert r.json()["usage"]["completion_tokens"] == 10


def test_q8_batched_in_the_engine_equals_ort_generator(backends: Any, q8_generator: Any,
                                                        tokenizer: Any) -> None:
    """Several requests decoded together (joint prefill, left padding) give each one's lone tokens."""
    backend = backends["onnxruntime-q8"]
    backend.reset()
    engine = Engine(backend, max_batch_size=4)
    ids = [tokenizer.encode(p, add_bos=True) for p in PROMPTS]
    events: list[list[Any]] = [[] for _ in ids]
    for i, row in enumerate(ids):
        engine.reserve()
        params = SamplingParams(max_tokens=4 + i, temperature=0.0, ignore_eos=True)
        engine.submit(row, params, events[i].append)
    while engine.step():
        pass
    for i, (row, got) in enumerate(zip(ids, events, strict=True)):
        tokens = [e.token for e in got if e.kind == "delta" and e.token is not None]
        assert tokens == _reference(q8_generator, row, 4 + i)
    assert backend.rows == 0


def test_missing_variant_and_listed_names(export_dir: Path, checkpoint: Path) -> None:
    with pytest.raises(SalesAIError, match=r"has no q4 decoder \(re-export with --quantize q4\)"):
        load_backend("onnxruntime-q4", export_dir, threads=1)
    result = run_cli(["serve", str(checkpoint), "--backend", "onnxruntime-q5"])
    assert result.exit_code == 2
    names = "pytorch, onnxruntime, onnxruntime-int8, onnxruntime-q8, onnxruntime-q4"
    assert f"--backend 'onnxruntime-q5': expected one of {names}" in result.stderr
    assert "-q8 or -q4" in run_cli(["serve", "--help"]).stdout


def test_pytorch_backend_uses_the_decode_layout(backends: Any) -> None:
    """Loaded weights are column-major (strides (1, out)); greedy equality with `generate` on the
    contiguous model is checked by test_engine / test_http_* on this same backend."""
    from torch import nn

    linears = [m for m in backends["pytorch"].model.modules() if isinstance(m, nn.Linear)]
    assert linears and all(m.weight.stride() == (1, m.weight.shape[0]) for m in linears)
