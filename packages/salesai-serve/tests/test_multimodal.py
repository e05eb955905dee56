"""Image content parts (MM cases) over a tiny-vision checkpoint and its ONNX export (fp32, int8).

Every case runs on the three backends. Needs an image encoder registered as `vit` (the
salesai-vision plugin; the nox session installs it); skipped otherwise. The serve plugin itself
never imports it: the core builds the encoder (or its torch-free preprocessor) from the registry.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salesai.testing import has_component

CONTEXT = 128
BACKENDS = ("pytorch", "onnxruntime", "onnxruntime-int8")


pytestmark = pytest.mark.skipif(not has_component("encoders", "vit"),
                                reason="no `vit` image encoder plugin (salesai-vision)")


def _png(color: tuple[int, int, int], size: int = 64) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def _data_uri(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def _bomb_png() -> bytes:
    """74 bytes claiming 30000 x 30000 pixels (MM-04): refused from the header, never decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def vision_model(tokenizer: Any) -> Any:
    import torch

    from salesai import ModelConfig, SalesAIModel

    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny-vision", vocab_size=len(tokenizer), init_std=0.2, max_seq_len=CONTEXT)
    return SalesAIModel(cfg).eval()


@pytest.fixture(scope="module")
def vision_paths(vision_model: Any, tokenizer: Any,
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The checkpoint and its ONNX export (fp32 + int8 graphs, image encoder included)."""
    from salesai.export.onnx import export_onnx
    from salesai.model import save_checkpoint

    ckpt = Path(save_checkpoint(tmp_path_factory.mktemp("vis") / "vis", vision_model, tokenizer))
    onnx = Path(export_onnx(vision_model, tokenizer, tmp_path_factory.mktemp("vis-onnx") / "vis",
                            quantize="int8", threads=1))
    return {"pytorch": ckpt, "onnxruntime": onnx, "onnxruntime-int8": onnx}


@pytest.fixture(scope="module", params=BACKENDS)
def vision_client(request: pytest.FixtureRequest, vision_paths: dict[str, Path]) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from salesai_serve.app import create_app
    from salesai_serve.backends import load_backend
    from salesai_serve.settings import ServeSettings

    backend = load_backend(request.param, vision_paths[request.param], threads=1)
    assert backend.modalities == ("text", "image")
    settings = ServeSettings(model_id="vis", max_media_items=2)
    app = create_app(settings, lambda: backend, load_in_background=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.backend_name = request.param
        yield client


def _chat(client: Any, parts: list[dict[str, Any]], **extra: Any) -> Any:
    body = {"model": "vis", "messages": [{"role": "user", "content": parts}], "max_tokens": 6,
            "temperature": 0, **extra}
    return client.post("/v1/chat/completions", json=body)


def _image(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def _expected(backend: str, model: Any, paths: dict[str, Path], ids: list[int], raw: bytes) -> list[int]:
    """Greedy ids of `generate` (PyTorch) or `OrtGenerator.generate` (ONNX Runtime) for one image."""
    if backend == "pytorch":
        import torch

        with torch.inference_mode():
            out = model.generate(torch.tensor([ids]), images=[raw], max_new_tokens=6, temperature=0.0,
                                 stop_token_ids=[])
        return [int(t) for t in out[0, len(ids):]]
    from salesai.ort_runtime import OrtGenerator

    gen = OrtGenerator.from_export(paths[backend], variant="int8" if backend.endswith("int8") else "fp32",
                                   threads=1)
    out = gen.generate([ids], media={"image": [raw]}, max_new_tokens=6, temperature=0.0, stop_token_ids=[])
    return out[0]


def test_MM_10_PAR_01_greedy_image_answer_equals_generate(
        vision_client: Any, vision_model: Any, tokenizer: Any, vision_paths: dict[str, Path]) -> None:
    # PyTorch: == model.generate(images=...); ONNX Runtime: == OrtGenerator.generate(media=...),
    # i.e. `salesai generate EXPORT --image pic.png` (fp32 and int8 graphs, torch-free path)
    from salesai_serve.text import chat_prompt_ids

    raw = _png((200, 30, 30))
    ids = chat_prompt_ids(tokenizer, [("user", [tokenizer.token_to_id("<image>"), " What colour?"])])
    expected_ids = _expected(vision_client.backend_name, vision_model, vision_paths, ids, raw)
    expected = tokenizer.decode(expected_ids)
    question = {"type": "text", "text": " What colour?"}
    r = _chat(vision_client, [_image(_data_uri(raw), detail="high"), question], ignore_eos=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == expected
    assert body["usage"]["completion_tokens"] == 6
    positions = 16  # tiny-vision: 16 image embeddings replace the one <image> placeholder
    assert body["usage"]["prompt_tokens"] == len(ids) - 1 + positions
    if vision_client.backend_name == "onnxruntime":  # PAR-01 with an image: fp32 export == PyTorch
        assert expected_ids == _expected("pytorch", vision_model, vision_paths, ids, raw)
    other = _chat(vision_client, [_image(_data_uri(_png((20, 20, 220)))), question], ignore_eos=True)
    assert other.status_code == 200  # a different image goes through the encoder: another answer
    assert other.json()["choices"][0]["message"]["content"] != expected
    card = vision_client.get("/v1/models").json()["data"][0]
    assert card["modalities"] == ["text", "image"] and card["backend"] == vision_client.backend_name


def test_MM_image_requests_batch_with_text_requests(vision_client: Any, tokenizer: Any) -> None:
    # an image request and text requests in one running batch: each answer as when served alone
    # (PyTorch, ONNX fp32; the int8 graph's dynamic quantization scales depend on the batch-mates)
    from concurrent.futures import ThreadPoolExecutor

    uri = _data_uri(_png((90, 160, 40)))
    parts = [[_image(uri), {"type": "text", "text": " Colour?"}], [{"type": "text", "text": "hello"}],
             [{"type": "text", "text": "def add"}]]
    alone = [_chat(vision_client, p, ignore_eos=True).json()["choices"][0]["message"]["content"]
             for p in parts]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda p: _chat(vision_client, p, ignore_eos=True), parts))
    assert [r.status_code for r in together] == [200] * 3
    if vision_client.backend_name != "onnxruntime-int8":  # int8 quantizes activations per batch tensor:
        assert [r.json()["choices"][0]["message"]["content"] for r in together] == alone  # see serving.md


@pytest.mark.parametrize("url, fragment", [
    ("data:image/png;base64,!!!notbase64", "not valid base64"),                       # MM-01
    (_data_uri(_png((1, 2, 3))[:60]), "could not read the image"),                  # MM-02 truncated
    (_data_uri(b"RIFF\x24\x00\x00\x00WAVEfmt "), "could not read the image"),       # MM-03 a WAV
    (_data_uri(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"), "MIME type"),  # MM-03
    ("data:image/png;base64,", "non-empty base64"),                                  # MM-03 empty
    (_data_uri(_bomb_png()), "decompression bomb"),                                  # MM-04
    ("http://169.254.169.254/latest/meta-data", "remote URLs are not fetched"),      # MM-06
    ("file:///etc/passwd", "remote URLs are not fetched"),                           # MM-06
])
def test_MM_01_02_03_04_06_bad_images_are_400(vision_client: Any, url: str, fragment: str) -> None:
    r = _chat(vision_client, [_image(url), {"type": "text", "text": "hi"}])
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert fragment in error["message"] and error["type"] == "invalid_request_error"
    assert error["param"].startswith("messages[0].content[0]")


def test_MM_05_too_many_images_and_MM_09_audio_to_an_image_model(vision_client: Any) -> None:
    uri = _data_uri(_png((9, 9, 9)))
    r = _chat(vision_client, [_image(uri)] * 3)
    assert r.status_code == 400 and "more than 2 media items" in r.json()["error"]["message"]
    clip = {"data": base64.b64encode(b"RIFF").decode(), "format": "wav"}
    audio = {"type": "input_audio", "input_audio": clip}
    r = _chat(vision_client, [audio])
    assert r.status_code == 400 and r.json()["error"]["code"] == "modality_not_supported"
    assert "modalities: text, image" in r.json()["error"]["message"]


def test_MM_09_image_to_a_text_model_is_400(make_client: Any) -> None:
    client = make_client()
    body = {"model": "tiny", "max_tokens": 2,
            "messages": [{"role": "user", "content": [_image(_data_uri(_png((1, 1, 1))))]}]}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "modality_not_supported"


def test_image_text_is_not_a_placeholder(vision_client: Any) -> None:
    # "<image>" typed as text stays text (no image to splice): an ordinary answer, not a 500
    r = _chat(vision_client, [{"type": "text", "text": "<image> hi"}])
    assert r.status_code == 200, r.text


def test_MM_onnx_image_path_never_imports_torch(vision_paths: dict[str, Path]) -> None:
    """An image request on the onnxruntime-int8 backend: encoder graph + numpy preprocessing, no torch."""
    import subprocess
    import sys

    code = f"""
import base64, io, sys
from PIL import Image
from fastapi.testclient import TestClient
from salesai_serve.app import create_app
from salesai_serve.backends import load_backend
from salesai_serve.settings import ServeSettings
backend = load_backend("onnxruntime-int8", {str(vision_paths["onnxruntime"])!r}, threads=1)
buf = io.BytesIO()
Image.new("RGB", (40, 40), (10, 200, 10)).save(buf, format="PNG")
uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
app = create_app(ServeSettings(model_id="vis"), lambda: backend, load_in_background=False)
with TestClient(app) as client:
    r = client.post("/v1/chat/completions", json={{"model": "vis", "max_tokens": 4, "temperature": 0,
        "ignore_eos": True, "messages": [{{"role": "user", "content": [
            {{"type": "image_url", "image_url": {{"url": uri}}}},
            {{"type": "text", "text": " Colour?"}}]}}]}})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4, r.text
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
