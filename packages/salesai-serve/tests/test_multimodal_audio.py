"""input_audio content parts (MM-08, MM-09) over a tiny-audio checkpoint (PyTorch backend) and its
ONNX export (onnxruntime backend: encoder_audio.onnx + the plugin's numpy preprocessing).

Needs an audio encoder registered as `audio` (the salesai-audio plugin; the nox session installs
it); skipped otherwise. The serve plugin never imports it: the core builds it from the registry.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salesai.testing import has_component, sample_wav_bytes

CONTEXT = 256


pytestmark = pytest.mark.skipif(not has_component("encoders", "audio"),
                                reason="no `audio` encoder plugin (salesai-audio)")


@pytest.fixture(scope="module")
def audio_model(tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Path]]:
    """The tiny-audio model, its checkpoint and its fp32 ONNX export."""
    import torch

    from salesai import ModelConfig, SalesAIModel
    from salesai.export.onnx import export_onnx
    from salesai.model import save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny-audio", vocab_size=len(tokenizer), init_std=0.2, max_seq_len=CONTEXT)
    model = SalesAIModel(cfg).eval()
    ckpt = Path(save_checkpoint(tmp_path_factory.mktemp("aud") / "aud", model, tokenizer))
    onnx = Path(export_onnx(model, tokenizer, tmp_path_factory.mktemp("aud-onnx") / "aud", threads=1))
    return model, {"pytorch": ckpt, "onnxruntime": onnx}


@pytest.fixture(scope="module", params=("pytorch", "onnxruntime"))
def audio_setup(request: pytest.FixtureRequest,
                audio_model: tuple[Any, dict[str, Path]]) -> Iterator[tuple[Any, Any]]:
    from fastapi.testclient import TestClient

    from salesai_serve.app import create_app
    from salesai_serve.backends import load_backend
    from salesai_serve.settings import ServeSettings

    model, paths = audio_model
    backend = load_backend(request.param, paths[request.param], threads=1)
    assert backend.modalities == ("text", "audio")
    app = create_app(ServeSettings(model_id="aud"), lambda: backend, load_in_background=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.backend_name = request.param
        client.export = paths["onnxruntime"]
        yield client, model


def _chat(client: Any, parts: list[dict[str, Any]]) -> Any:
    body = {"model": "aud", "messages": [{"role": "user", "content": parts}], "max_tokens": 5,
            "temperature": 0, "ignore_eos": True}
    return client.post("/v1/chat/completions", json=body)


def _clip(raw: bytes | str, fmt: str = "wav") -> dict[str, Any]:
    data = raw if isinstance(raw, str) else base64.b64encode(raw).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}


def test_greedy_audio_answer_equals_generate(audio_setup: tuple[Any, Any], tokenizer: Any) -> None:
    import torch

    from salesai_serve.text import chat_prompt_ids

    client, model = audio_setup
    raw = sample_wav_bytes(0.5)
    ids = chat_prompt_ids(tokenizer, [("user", [tokenizer.token_to_id("<audio>"), " Transcribe."])])
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), audio=[raw], max_new_tokens=5, temperature=0.0,
                             stop_token_ids=[])
    expected = out[0, len(ids):].tolist()
    if client.backend_name == "onnxruntime":  # == OrtGenerator (`salesai generate EXPORT --audio`)
        from salesai.ort_runtime import OrtGenerator

        gen = OrtGenerator.from_export(client.export, threads=1)
        ort_ids = gen.generate([ids], media={"audio": [raw]}, max_new_tokens=5, temperature=0.0,
                               stop_token_ids=[])[0]
        assert ort_ids == expected
    r = _chat(client, [_clip(raw), {"type": "text", "text": " Transcribe."}])
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == tokenizer.decode(expected)
    r = _chat(client, [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}])
    assert r.status_code == 400 and r.json()["error"]["code"] == "modality_not_supported"  # MM-09


@pytest.mark.parametrize("part, fragment", [
    (_clip("%%%notbase64"), "not valid base64"),
    (_clip(sample_wav_bytes(0.1), "mp3"), "expected one of wav, flac, ogg"),
    (_clip(sample_wav_bytes(0.0)), "could not read the audio"),
    (_clip(b"\x89PNG\r\n\x1a\n not audio"), "could not read the audio"),
])
def test_MM_08_bad_audio_is_400(audio_setup: tuple[Any, Any], part: dict[str, Any], fragment: str) -> None:
    client, _ = audio_setup
    r = _chat(client, [part])
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]["message"]
