"""ONNX export of the sequence classifier: token ids + attention mask in, class logits out.

What: `export_classifier_onnx(model, tokenizer, out_dir, ...)` writes an export directory

    classifier.onnx        input_ids (B, T) int64, attention_mask (B, T) int64 -> logits (B, num_labels)
    classifier.int8.onnx   (with quantize="int8") ONNX Runtime dynamic int8 quantisation
    tokenizer.model        the tokenizer, copied
    manifest.json          task "classify", labels, graph inputs/outputs, special ids, model config,
                           how texts are encoded (BOS + text + EOS, max_len), verification figures

The graph runs the decoder's export-safe path (`decoder_forward` with an empty KV cache, positions
from the attention mask) and pools the last non-padding token as the PyTorch model does, so the
logits agree with PyTorch to float32 round-off (verified here on padded batches with ONNX Runtime;
the export fails above `VERIFY_TOLERANCE`). The built-in `onnx` exporter hands classifiers here.
The directory appears atomically (temporary sibling, renamed at the end).

What it is not: no KV cache (a classifier reads each text once).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salesai.atomic import atomic_dir
from salesai.errors import SalesAIError
from salesai.export.onnx import (
    DEFAULT_OPSET,
    OPSET_RANGE,
    QUANTIZE_CHOICES,
    TOKENIZER_FILE,
    VERIFY_TOLERANCE,
    graph_io,
    quantize_int8,
)
from salesai.ort_runtime import MANIFEST_FILENAME

CLASSIFIER_FILE = "classifier.onnx"
CLASSIFIER_INT8_FILE = "classifier.int8.onnx"


class ClassifierGraph(nn.Module):
    """(input_ids, attention_mask) -> logits, around the classifier's export-safe decoder path."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.clf = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from salesai.model.classifier import last_token_index

        clf: Any = self.clf
        cfg = clf.config
        b = input_ids.shape[0]
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
        empty = torch.zeros(b, cfg.num_kv_heads, 0, cfg.head_dim, dtype=clf.model.dtype)  # (B, n_kv, 0, hd)
        pasts = [empty] * cfg.num_layers
        hidden, _, _ = clf.model.decoder_forward(clf.model.embed(input_ids), attention_mask, position_ids,
                                                 pasts, pasts)  # (B, T, D): the backbone has no LM head
        last = last_token_index(input_ids, cfg.pad_token_id, b, input_ids.shape[1])  # (B,)
        index = last.long().view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])  # (B, 1, D)
        pooled = hidden.gather(1, index).squeeze(1)  # (B, D)
        return clf.score(pooled).float()  # (B, C)


def export_classifier_onnx(
    model: nn.Module,
    tokenizer: Any,
    out_dir: str | Path,
    opset: int | None = None,
    quantize: str | None = None,
    verify: bool = True,
    force: bool = False,
    threads: int = 1,
    **options: Any,
) -> Path:
    """Export a `SalesAIForSequenceClassification` as described in the module docstring."""
    options.pop("exporter", None)  # the classifier is always traced with the TorchScript exporter
    options.pop("progress", None)
    if options:
        raise SalesAIError(f"onnx exporter (classifier): unknown option(s) {', '.join(sorted(options))}; "
                           "known: opset, quantize, verify, force, threads")
    cfg: Any = getattr(model, "config", None)
    if cfg is None or not getattr(cfg, "labels", None):
        raise SalesAIError("onnx classifier export: expected a sequence classifier (config.labels)")
    opset = opset or DEFAULT_OPSET["torchscript"]
    lo, hi = OPSET_RANGE["torchscript"]
    if not lo <= int(opset) <= hi:
        raise SalesAIError(f"onnx export: opset={opset}; expected {lo}..{hi}")
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise SalesAIError(f"onnx export: quantize={quantize!r}; expected one of: "
                           f"{', '.join(QUANTIZE_CHOICES)}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise SalesAIError(f"{out}: exists and is not an empty directory; pass --force to replace it")
    model = model.float().eval().cpu()
    graph = ClassifierGraph(model).eval()
    with atomic_dir(out) as tmp:
        path = tmp / CLASSIFIER_FILE
        ids = torch.tensor([[2, 11, 12, 3, 0], [2, 13, 3, 0, 0]])  # (B, T), right padding
        args = (ids, (ids != 0).long())
        axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                "logits": {0: "batch"}}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, args, str(path), dynamo=False,
                              input_names=["input_ids", "attention_mask"], output_names=["logits"],
                              dynamic_axes=axes, opset_version=int(opset),
                              do_constant_folding=True)
        graphs = {"classifier": {"file": CLASSIFIER_FILE, **graph_io(path)}}
        if quantize == "int8":
            quantize_int8(path, tmp / CLASSIFIER_INT8_FILE)
            graphs["classifier_int8"] = {"file": CLASSIFIER_INT8_FILE, **graph_io(tmp / CLASSIFIER_INT8_FILE)}
        verification = verify_classifier(model, path, threads) if verify else None
        if verification is not None and verification["max_abs_diff"] > VERIFY_TOLERANCE:
            raise SalesAIError(f"onnx classifier export: ONNX Runtime logits differ from PyTorch by "
                               f"{verification['max_abs_diff']:.2e} (> {VERIFY_TOLERANCE:g})")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        manifest = {
            "format": "salesai-onnx-classifier",
            "format_version": 1,
            "task": "classify",
            "labels": list(cfg.labels),
            "graphs": graphs,
            "opset": int(opset),
            "quantize": quantize,
            "encoding": {"add_bos": True, "add_eos": True, "max_len": cfg.max_seq_len, "padding": "right"},
            "special_tokens": {"pad": cfg.pad_token_id, "bos": cfg.bos_token_id, "eos": cfg.eos_token_id},
            "tokenizer": TOKENIZER_FILE if tokenizer is not None else None,
            "config": cfg.to_dict(),
            "verification": verification,
        }
        (tmp / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def verify_classifier(model: nn.Module, path: Path, threads: int = 1) -> dict[str, Any]:
    """Max |logit difference| between PyTorch and ONNX Runtime on padded random batches."""
    import onnxruntime as ort

    from salesai.model.classifier import pad_batch

    cfg: Any = model.config
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(0)
    worst, cases = 0.0, 0
    for lengths in ((7,), (3, 9, 5, 1), (12, 12)):
        seqs = [torch.randint(4, cfg.vocab_size, (n,), generator=g).tolist() for n in lengths]
        ids, mask = pad_batch(seqs, cfg.pad_token_id)
        with torch.no_grad():
            want = model(ids, attention_mask=mask).logits.float().numpy()
        (got,) = session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        worst = max(worst, float(abs(got - want).max()))
        cases += 1
    return {"cases": cases, "max_abs_diff": worst, "tolerance": VERIFY_TOLERANCE}


__all__ = ["CLASSIFIER_FILE", "CLASSIFIER_INT8_FILE", "ClassifierGraph", "export_classifier_onnx"]
