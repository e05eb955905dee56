"""POST /v1/classify over a tiny classifier checkpoint (PyTorch) and its ONNX export (ORT).

The classifier shares the session's SentencePiece tokenizer; its answers are compared with the
core's own `TextClassifier.predict` on the same texts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CONTEXT = 96  # as conftest.CONTEXT
LABELS = ["neg", "neu", "pos"]
TEXTS = ["def add(x, y): return x + y", "hello world", "Grüße 🙂"]


@pytest.fixture(scope="module")
def clf_model(tokenizer: Any) -> Any:
    import torch

    from salesai import ModelConfig
    from salesai.model.classifier import SalesAIForSequenceClassification

    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny", vocab_size=len(tokenizer), init_std=0.2, max_seq_len=CONTEXT,
                                labels=LABELS)
    return SalesAIForSequenceClassification(cfg).eval()


@pytest.fixture(scope="module")
def clf_dirs(clf_model: Any, tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from salesai.export.onnx_classifier import export_classifier_onnx
    from salesai.model import save_checkpoint

    root = tmp_path_factory.mktemp("clf")
    ckpt = Path(save_checkpoint(root / "clf", clf_model, tokenizer))
    onnx = Path(export_classifier_onnx(clf_model, tokenizer, root / "clf-onnx"))
    return {"pytorch": ckpt, "onnxruntime": onnx}


@pytest.fixture
def clf_client(clf_dirs: dict[str, Path]) -> Iterator[Callable[..., Any]]:
    """clf_client(backend="pytorch", **settings) -> a started TestClient over the classifier."""
    from fastapi.testclient import TestClient

    from salesai_serve.app import create_app
    from salesai_serve.backends import load_backend
    from salesai_serve.settings import ServeSettings

    clients: list[Any] = []

    def make(backend: str = "pytorch", **options: Any) -> Any:
        loaded = load_backend(backend, clf_dirs[backend], threads=1)
        app = create_app(ServeSettings(**{"model_id": "clf", **options}), lambda: loaded,
                         load_in_background=False)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime"])
def test_classify_returns_the_cores_predictions(clf_client: Any, clf_dirs: dict[str, Path],
                                                tokenizer: Any, backend: str) -> None:
    from salesai.model import load_classifier

    expected = load_classifier(clf_dirs["pytorch"]).predict(TEXTS)
    client = clf_client(backend)
    r = client.post("/v1/classify", json={"model": "clf", "input": TEXTS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "clf"
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    for got, want in zip(body["data"], expected, strict=True):
        assert got["label"] == want["label"]
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)
        assert set(got["probabilities"]) == set(LABELS)
        assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert got["score"] == max(got["probabilities"].values())
    tokens = sum(len(tokenizer.encode(t)) + 2 for t in TEXTS)
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    one = client.post("/v1/classify", json={"model": "clf", "input": TEXTS[1]}).json()
    assert [d["label"] for d in one["data"]] == [expected[1]["label"]]
    card = client.get("/v1/models").json()["data"][0]
    assert card["id"] == "clf" and card["task"] == "classify" and card["labels"] == LABELS
    assert card["backend"] == backend


@pytest.mark.parametrize("body, param, fragment", [
    ({"model": "clf", "input": ""}, "input", "non-empty"),
    ({"model": "clf", "input": []}, "input", "non-empty list"),
    ({"model": "clf"}, "input", "expected a string"),
    ({"model": "clf", "input": ["ok", 3]}, "input", "input[1]: expected a string, got int"),
    ({"model": "clf", "input": ["a"] * 5}, "input", "at most 4"),
    ({"model": "clf", "input": "a\x00b"}, "input", "NUL"),
    ({"input": "hi"}, "model", "served model"),
])
def test_classify_validation_is_400_in_openai_format(clf_client: Any, body: dict[str, Any], param: str,
                                                     fragment: str) -> None:
    client = clf_client(max_inputs=4)
    error = _error(client.post("/v1/classify", json=body), 400)
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert fragment in error["message"]


def test_classify_unknown_model_bad_json_and_auth(clf_client: Any) -> None:
    client = clf_client(api_keys=["sk-test"])
    assert _error(client.post("/v1/classify", json={"model": "clf", "input": "x"}), 401)
    auth = {"Authorization": "Bearer sk-test"}
    assert _error(client.post("/v1/classify", json={"model": "gpt-4", "input": "x"}, headers=auth),
                  404)["code"] == "model_not_found"
    bad = client.post("/v1/classify", content=b"{", headers={**auth, "Content-Type": "application/json"})
    assert "not valid JSON" in _error(bad, 400)["message"]
    assert client.post("/v1/classify", json={"model": "clf", "input": "x"}, headers=auth).status_code == 200


def test_generation_routes_refuse_a_classifier(clf_client: Any) -> None:
    client = clf_client()
    r = client.post("/v1/completions", json={"model": "clf", "prompt": "hi", "max_tokens": 2})
    assert "this model is a classifier" in _error(r, 400)["message"]
    messages = [{"role": "user", "content": "hi"}]
    r = client.post("/v1/chat/completions", json={"model": "clf", "messages": messages})
    assert _error(r, 400)["code"] == "model_is_classifier"
    assert client.get("/ready").status_code == 200


def test_classify_on_a_language_model_is_400(make_client: Any) -> None:
    client = make_client()
    r = client.post("/v1/classify", json={"model": "tiny", "input": "hi"})
    assert _error(r, 400)["code"] == "model_not_classifier"
    assert client.get("/v1/models").json()["data"][0]["task"] == "generate"


def test_load_backend_detects_a_classifier(clf_dirs: dict[str, Path], checkpoint: Path) -> None:
    from salesai.errors import SalesAIError
    from salesai_serve.backends import ClassifierBackend, is_classifier, load_backend

    assert is_classifier(clf_dirs["pytorch"]) and is_classifier(clf_dirs["onnxruntime"])
    assert not is_classifier(checkpoint)
    assert isinstance(load_backend("onnxruntime", clf_dirs["onnxruntime"], threads=1), ClassifierBackend)
    with pytest.raises(SalesAIError, match="serve it with --backend onnxruntime"):
        load_backend("pytorch", clf_dirs["onnxruntime"])
