"""The README's commands end to end on tiny data: make-data, train, generate (torch and ONNX Runtime), export.

Also: ONNX Runtime generation with --image never imports torch, and equals PyTorch's greedy output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from salesai.testing import run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("vision")
    assert run_cli(["vision", "make-data", "shapes", "--out", str(d / "shapes"), "--n", "24"]).exit_code == 0
    res = run_cli(["train", "--preset", "tiny-vision", "--data", str(d / "shapes/train.jsonl"),
                   "--val", str(d / "shapes/test.jsonl"), "--out", str(d / "run"), "--max-steps", "3",
                   "--batch-size", "4", "--seq-len", "64", "--precision", "fp32", "--threads", "1", "--json"])
    assert res.exit_code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["steps"] == 3 and summary["eval"]["val_loss"] > 0
    res = run_cli(["export", str(d / "run"), "--format", "onnx", "--quantize", "int8",
                   "--out", str(d / "onnx")])
    assert res.exit_code == 0, res.stderr
    return d


def generate(d: Path, source: str, *extra: str) -> str:
    res = run_cli(["generate", str(d / source), "<image> Describe the picture.", "--image",
                   str(d / "shapes/images/00003.png"), "-t", "0", "-n", "6", *extra])
    assert res.exit_code == 0, res.stderr
    return res.stdout


def test_generate_torch_and_onnxruntime_agree(trained: Path) -> None:
    torch_out = generate(trained, "run")
    assert generate(trained, "onnx", "--backend", "onnxruntime") == torch_out
    assert generate(trained, "onnx", "--backend", "onnxruntime-int8")  # runs
    manifest = json.loads((trained / "onnx/manifest.json").read_text())
    assert manifest["encoders"]["image"]["preprocess_spec"]["size"] == [64, 64]
    assert manifest["encoders"]["image"]["tokens_per_input"] == 16
    assert manifest["verification"]["multimodal_prefill"]["max_abs_logit_diff"] < 1e-4


def test_bad_image_is_one_line(trained: Path) -> None:
    bad = trained / "bad.png"
    bad.write_bytes(b"")
    res = run_cli(["generate", str(trained / "run"), "<image> hi", "--image", str(bad), "-n", "2"])
    assert res.exit_code == 2 and "the file is empty (0 bytes)" in res.stderr
    assert "Traceback" not in res.stderr


def test_onnxruntime_with_image_never_imports_torch(trained: Path) -> None:
    args = ["generate", str(trained / "onnx"), "<image> Describe the picture.", "--image",
            str(trained / "shapes/images/00003.png"), "-t", "0", "-n", "6", "--backend", "onnxruntime"]
    code = (
        "import sys\n"
        "from salesai.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SALESAI_LOAD_PLUGINS": "salesai-vision"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == generate(trained, "run")


def test_eval_on_records(trained: Path) -> None:
    res = run_cli(["eval", str(trained / "run"), "--data", str(trained / "shapes/test.jsonl"), "--json"])
    assert res.exit_code == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["records"] == 16 and result["val_loss"] > 0 and result["val_tokens"] > 0
