"""Exports of the sequence classifier: transformers' *ForSequenceClassification parity (hf) and
ONNX Runtime parity (onnx). Tiny configs, no downloads; the hf test is skipped without transformers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from salesai.export.hf import export_hf
from salesai.model.classifier import SalesAIForSequenceClassification, pad_batch
from salesai.model.config import ModelConfig
from salesai.testing import ByteTokenizer

torch.set_num_threads(1)
LABELS = ["bug", "feature", "question"]


def _clf(**overrides: object) -> SalesAIForSequenceClassification:
    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny", vocab_size=300, init_std=0.1, labels=LABELS, **overrides)
    return SalesAIForSequenceClassification(cfg).eval()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return pad_batch([torch.randint(11, 300, (n,)).tolist() for n in (9, 4, 6)], 0)


@pytest.mark.parametrize(("overrides", "arch"), [({}, "MixtralForSequenceClassification"),
                                                 ({"num_experts": 1, "tie_embeddings": True},
                                                  "LlamaForSequenceClassification")])
def test_hf_export_loads_as_sequence_classification_with_equal_logits(
        tmp_path: Path, overrides: dict, arch: str) -> None:
    transformers = pytest.importorskip("transformers")
    ours = _clf(**overrides)
    out = export_hf(ours, None, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [arch] and config["id2label"] == {"0": "bug", "1": "feature",
                                                                         "2": "question"}
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(out, dtype=torch.float32).eval()
    assert type(theirs).__name__ == arch and theirs.config.num_labels == 3
    ids, mask = _batch()
    with torch.no_grad():
        want = theirs(input_ids=ids, attention_mask=mask).logits  # (B, C)
        got = ours(ids, attention_mask=mask).logits
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        shifts = [int((m == 0).sum()) for m in mask]
        left = torch.stack([torch.roll(i, n) for i, n in zip(ids, shifts, strict=True)])  # left padding
        left_mask = (left != 0).long()
        want_left = theirs(input_ids=left, attention_mask=left_mask).logits
        got_left = ours(left, attention_mask=left_mask).logits
        torch.testing.assert_close(got_left, want_left, rtol=1e-5, atol=1e-5)


def test_onnx_export_of_the_classifier_matches_torch(tmp_path: Path) -> None:
    import onnxruntime as ort

    from salesai.export.onnx_classifier import export_classifier_onnx

    ours, tok = _clf(), ByteTokenizer()
    out = export_classifier_onnx(ours, tok, tmp_path / "onnx")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "classify" and manifest["labels"] == LABELS
    assert manifest["verification"]["max_abs_diff"] < 1e-4
    assert (out / "tokenizer.model").is_file()
    session = ort.InferenceSession(str(out / "classifier.onnx"), providers=["CPUExecutionProvider"])
    ids, mask = _batch()
    (logits,) = session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    with torch.no_grad():
        want = ours(ids, attention_mask=mask).logits.numpy()
    assert logits.shape == (3, 3)
    np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-4)
    assert (logits.argmax(-1) == want.argmax(-1)).all()
    single = session.run(["logits"], {"input_ids": ids[:1].numpy(), "attention_mask": mask[:1].numpy()})
    np.testing.assert_allclose(single[0], want[:1], rtol=1e-4, atol=1e-4)
