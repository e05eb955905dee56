"""Shared fixtures: one tiny random-weight model with a real SentencePiece tokenizer, saved as a
checkpoint and exported to ONNX (fp32 + int8 + block-wise q8) once per session, and server apps over them.

The model has a short context (96 tokens) so limit cases are cheap; init_std 0.2 spreads the
logits so greedy choices are never near-ties between backends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CORPUS = ["def add(x, y):\n    return x + y\n", "hello world, the quick brown fox jumps over the lazy dog\n",
          "for i in range(10):\n    print(i)\n", "Grüße, café, naïve 🙂 ünïcödé\n"] * 20
CONTEXT = 96
BACKENDS = ("pytorch", "onnxruntime")


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from salesai import Tokenizer

    return Tokenizer.train(iter(CORPUS), vocab_size=320, num_threads=1, verbose=False)


@pytest.fixture(scope="session")
def model(tokenizer: Any) -> Any:
    import torch

    from salesai import ModelConfig, SalesAIModel

    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny", vocab_size=len(tokenizer), init_std=0.2, max_seq_len=CONTEXT)
    return SalesAIModel(cfg).eval()


@pytest.fixture(scope="session")
def checkpoint(model: Any, tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from salesai.model import save_checkpoint

    return Path(save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", model, tokenizer))


@pytest.fixture(scope="session")
def export_dir(model: Any, tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from salesai.export.onnx import export_onnx

    return Path(export_onnx(model, tokenizer, tmp_path_factory.mktemp("onnx") / "tiny", quantize="int8,q8"))


@pytest.fixture(scope="session")
def backends(checkpoint: Path, export_dir: Path) -> dict[str, Any]:
    """One loaded backend per name (apps reuse them one after another)."""
    from salesai_serve.backends import load_backend

    return {"pytorch": load_backend("pytorch", checkpoint, threads=1),
            "onnxruntime": load_backend("onnxruntime", export_dir, threads=1),
            "onnxruntime-q8": load_backend("onnxruntime-q8", export_dir, threads=1)}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, backends: dict[str, Any]) -> Any:
    b = backends[request.param]
    b.reset()
    return b


@pytest.fixture
def make_client(backends: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """make_client(backend_name="pytorch", **settings) -> a started TestClient (closed after the test)."""
    from fastapi.testclient import TestClient

    from salesai_serve.app import create_app
    from salesai_serve.settings import ServeSettings

    clients: list[Any] = []

    def make(backend: str = "pytorch", raise_server_exceptions: bool = False, **options: Any) -> Any:
        b = backends[backend]
        b.reset()
        settings = ServeSettings(**{"model_id": "tiny", **options})
        app = create_app(settings, lambda: b, load_in_background=False)
        client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)
