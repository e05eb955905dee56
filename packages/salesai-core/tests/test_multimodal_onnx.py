"""ONNX export of a multimodal model: encoder graphs in the manifest, verified prefill, ORT = torch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from salesai import ModelConfig, SalesAIModel
from salesai.errors import SalesAIError
from salesai.export.onnx import export_onnx
from salesai.ort_runtime import OrtGenerator, expand_placeholders
from salesai.testing import ByteTokenizer, ToyEncoders, npy_bytes, register_plugin

IMG = 4
TOY = {"image": {"type": "toy-patches", "size": 16, "patch": 8}}


@pytest.fixture(autouse=True)
def toy_encoder() -> Iterator[None]:
    with register_plugin(ToyEncoders):
        yield


@pytest.fixture
def model() -> SalesAIModel:
    torch.manual_seed(0)
    return SalesAIModel(ModelConfig.from_name("tiny", vocab_size=267, encoders=TOY)).eval()


@pytest.fixture
def export_dir(model: SalesAIModel, tmp_path: Path) -> Path:
    return export_onnx(model, ByteTokenizer(), tmp_path / "onnx", quantize="int8")


def images(tmp: Path) -> list[Path]:
    out = []
    for i in range(2):
        path = tmp / f"{i}.npy"
        path.write_bytes(npy_bytes(np.random.default_rng(i).normal(size=(3, 16, 16))))
        out.append(path)
    return out


def test_manifest_lists_encoder_graphs_with_preprocess_spec(export_dir: Path) -> None:
    manifest = json.loads((export_dir / "manifest.json").read_text())
    entry = manifest["encoders"]["image"]
    assert entry["file"] == "encoder_image.onnx" and (export_dir / entry["file"]).is_file()
    assert entry["int8_file"] == "encoder_image.int8.onnx" and (export_dir / entry["int8_file"]).is_file()
    assert entry["placeholder_id"] == IMG and entry["tokens_per_input"] == 4
    assert entry["type"] == "toy-patches"
    spec = {"modality": "image", "format": "npy", "size": [16, 16], "layout": "CHW"}
    assert entry["preprocess_spec"] == spec
    assert entry["inputs"][0]["name"] == "inputs" and entry["outputs"][0]["shape"][2] == 64
    mm = manifest["verification"]["multimodal_prefill"]
    assert mm["expanded_ids_match"] and mm["max_abs_logit_diff"] < 1e-4
    assert manifest["quantization"]["encoders"]["image"]["weights"]["int8_share"] > 0.5


def test_ort_generate_with_images_equals_torch(export_dir: Path, model: SalesAIModel, tmp_path: Path) -> None:
    files = images(tmp_path)
    prompts = [[2, IMG, 40, 41], [2, 50, IMG, 51, 52]]
    expected = model.generate(prompts, images=files, max_new_tokens=8, temperature=0)
    gen = OrtGenerator.from_export(export_dir)
    assert gen.generate(prompts, media={"image": files}, max_new_tokens=8, temperature=0) == expected
    single = gen.generate(prompts[0], media={"image": files[:1]}, max_new_tokens=8, temperature=0)
    assert single == [expected[0]]
    int8 = OrtGenerator.from_export(export_dir, variant="int8")
    assert len(int8.generate(prompts, media={"image": files}, max_new_tokens=4, temperature=0)[0]) == 4
    with pytest.raises(SalesAIError, match=r"1 <image> placeholder\(s\) in the prompt\(s\) but 2 image"):
        gen.generate(prompts[0], media={"image": files}, max_new_tokens=2)


def test_expand_placeholders() -> None:
    emb = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    rows, fills = expand_placeholders([[1, IMG, 5], [IMG, 6]], {IMG: emb})
    assert rows == [[1, IMG, IMG, IMG, 5], [IMG, IMG, IMG, 6]]
    assert [p for p, _ in fills[0]] == [1] and np.array_equal(fills[1][0][1], emb[1])
