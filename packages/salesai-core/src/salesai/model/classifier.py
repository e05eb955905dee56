"""SalesAIForSequenceClassification: the salesai decoder with a linear head on the last token.

What: the decoder of `SalesAIModel` (embeddings, blocks, final RMSNorm) without its language-model
head, then `score`, a bias-free linear layer D -> num_labels applied to the hidden state of each
sequence's last non-padding token, exactly as transformers' `MixtralForSequenceClassification` /
`LlamaForSequenceClassification`: the pooled position is the rightmost token whose id is not
`pad_token_id` (so left and right padding both work), the last position when only
`inputs_embeds` are given. Parameter names are transformers' (`model.embed_tokens`,
`model.layers.i...`, `model.norm`, `score.weight`), so `salesai.export.hf` writes a directory that
`AutoModelForSequenceClassification` loads with the same logits. The class names live in
`config.labels` (config.json).

Entry points:
- `forward(input_ids=None, attention_mask=None, labels=None, inputs_embeds=None, class_weights=None)
  -> ModelOutput` with `logits` (B, num_labels) and, with `labels` (B,) class indices, `loss` =
  cross-entropy (optionally class-weighted) + the MoE aux loss when it is computed (training).
- `from_language_model(lm, labels)`: a classifier whose decoder is a copy of `lm`'s (`--init`);
  the head is new.
- `predict(texts, tokenizer)`: label, score and per-label probabilities for each text;
  `encode_texts` is the one tokenisation used for training and prediction (BOS + text + EOS,
  truncated to `max_len` keeping the EOS).
- `save_pretrained` / `from_pretrained`: config.json + model.safetensors, as the language model.

References: transformers `modeling_mixtral.py` (`MixtralForSequenceClassification`),
`modeling_layers.py` (`GenericForSequenceClassification`). What it is not: no regression or
multi-label problem types (single-label classification only).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from salesai.errors import SalesAIError
from salesai.model import weights as W
from salesai.model.config import ModelConfig
from salesai.model.transformer import ModelOutput, SalesAIModel


class Backbone(SalesAIModel):
    """The decoder without a language-model head: its `logits` are the final hidden states (B, T, D)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.lm_head = nn.Identity()  # type: ignore[assignment]


def encode_texts(tokenizer: Any, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """BOS + text + EOS token ids per text, the text cut so that the whole fits in `max_len`."""
    if max_len < 3:
        raise SalesAIError(f"max_len={max_len}: a classified text needs at least 3 tokens (BOS, text, EOS)")
    out = []
    for text in texts:
        body = tokenizer.encode(text)[: max_len - 2]
        out.append([tokenizer.bos_id, *body, tokenizer.eos_id])
    return out


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists into (input_ids (B, T), attention_mask (B, T)) int64 tensors."""
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def last_token_index(input_ids: torch.Tensor | None, pad_token_id: int | None, batch: int,
                     length: int) -> torch.Tensor:
    """(B,) index of the rightmost non-padding token (transformers' rule; -1 -> the last position)."""
    if input_ids is None or pad_token_id is None:
        if pad_token_id is None and batch != 1:
            raise SalesAIError("sequence classification of a batch needs pad_token_id in the config")
        return torch.full((batch,), length - 1, dtype=torch.long)
    non_pad = (input_ids != pad_token_id).to(torch.int32)  # (B, T)
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device, dtype=torch.int32)
    return (positions * non_pad).argmax(-1)  # (B,)


class SalesAIForSequenceClassification(nn.Module):
    """Decoder + last-token linear head; see the module docstring."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not config.labels:
            raise SalesAIError("a sequence classifier needs labels in its config (config.labels)")
        self.config = config
        self.model = Backbone(config)
        self.score = nn.Linear(config.hidden_dim, config.num_labels, bias=False)
        nn.init.normal_(self.score.weight, mean=0.0, std=config.init_std)

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels or [])

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @classmethod
    def from_language_model(cls, lm: SalesAIModel, labels: Sequence[str]) -> SalesAIForSequenceClassification:
        """A classifier with `lm`'s decoder weights (copied) and a new, randomly initialised head."""
        clf = cls(lm.config.replace(labels=list(labels)))
        decoder = {k: v for k, v in lm.state_dict().items() if not k.startswith("lm_head.")}
        missing, unexpected = clf.model.load_state_dict(decoder, strict=False)
        if missing or unexpected:
            raise SalesAIError(f"--init: the language model's weights do not fit the classifier "
                               f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        return clf.to(lm.device)

    # -- forward ---------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        class_weights: torch.Tensor | None = None,
    ) -> ModelOutput:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds)
        hidden = out.logits  # (B, T, D): the backbone's head is the identity
        b, t = hidden.shape[0], hidden.shape[1]
        last = last_token_index(input_ids, self.config.pad_token_id, b, t).to(hidden.device)  # (B,)
        pooled = hidden[torch.arange(b, device=hidden.device), last]  # (B, D)
        logits = self.score(pooled)  # (B, C)
        loss = None
        if labels is not None:
            if labels.shape != (b,):
                raise SalesAIError(f"labels: expected shape ({b},) of class indices, "
                                   f"got {tuple(labels.shape)}")
            weight = class_weights.to(logits.device, torch.float32) if class_weights is not None else None
            loss = F.cross_entropy(logits.float(), labels.to(logits.device), weight=weight)
            if out.aux_loss is not None:
                loss = loss + out.aux_loss
        return ModelOutput(logits=logits, loss=loss, aux_loss=out.aux_loss)

    # -- prediction ------------------------------------------------------------------------
    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str], tokenizer: Any, batch_size: int = 32,
                      max_len: int | None = None) -> torch.Tensor:
        """Class probabilities (N, num_labels) float32 of `texts`, in eval mode."""
        was_training = self.training
        self.eval()
        max_len = max_len or self.config.max_seq_len
        probs = []
        for i in range(0, len(texts), batch_size):
            ids, mask = pad_batch(encode_texts(tokenizer, texts[i : i + batch_size], max_len),
                                  self.config.pad_token_id)
            logits = self(ids.to(self.device), attention_mask=mask.to(self.device)).logits  # (B, C)
            probs.append(torch.softmax(logits.float(), dim=-1).cpu())
        self.train(was_training)
        return torch.cat(probs) if probs else torch.empty(0, self.config.num_labels)

    def predict(self, texts: str | Sequence[str], tokenizer: Any, batch_size: int = 32,
                max_len: int | None = None) -> list[dict[str, Any]]:
        """For each text: {"label", "score" (its probability), "probabilities" {label: p}}."""
        items = [texts] if isinstance(texts, str) else list(texts)
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise SalesAIError(f"input {i}: expected a string to classify, got {type(text).__name__}")
        probs = self.predict_proba(items, tokenizer, batch_size, max_len)
        names = self.labels
        out = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            out.append({"label": names[best], "score": row[best],
                        "probabilities": dict(zip(names, row, strict=True))})
        return out

    # -- checkpoints -----------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        """Write config.json (with `labels`) + model.safetensors into `path`."""
        return W.save_pretrained(self, path)

    @classmethod
    def from_pretrained(cls, path: str | Path,
                        device: str | torch.device | None = None) -> SalesAIForSequenceClassification:
        """Load a classifier checkpoint directory; nothing is unpickled."""
        d = Path(path)
        cfg = W.read_config(d)
        if not cfg.labels:
            raise SalesAIError(f"{d / W.CONFIG_FILE}: a language model (no labels), not a classifier")
        tensors = W.read_weights(d / W.WEIGHTS_FILE)
        with torch.device("meta"):
            model = cls(cfg)
        model = model.to_empty(device="cpu")
        model.model.init_rope()
        W.load_state(model, tensors, d / W.WEIGHTS_FILE)
        model.eval()
        return model.to(device) if device is not None else model

    def num_parameters(self, active: bool = False) -> int:
        """Unique parameters (`active=True`: only the top_k routed experts per MoE layer count)."""
        return self.model.num_parameters(active) + self.score.weight.numel()

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise SalesAIError("this checkpoint is a text classifier (config.json has labels): it does not "
                           "generate text; use `salesai classify` or `predict(texts, tokenizer)`")

    stream = generate

    def expert_usage(self) -> list[dict[str, Any]]:
        return self.model.expert_usage()

    def reset_expert_usage(self) -> None:
        self.model.reset_expert_usage()


class TextClassifier:
    """A classifier with its tokenizer: `predict(texts)` -> label, score and probabilities per text.

        clf = salesai.model.load_classifier("clf")          # checkpoint or run directory
        clf.predict(["def read_config(path): ...", "SELECT 1"])
        # [{"label": "python", "score": 0.97, "probabilities": {"python": 0.97, "sql": 0.03}}, ...]
    """

    backend = "torch"

    def __init__(self, model: SalesAIForSequenceClassification, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer

    @property
    def labels(self) -> list[str]:
        return self.model.labels

    def predict(self, texts: str | Sequence[str], batch_size: int = 32) -> list[dict[str, Any]]:
        return self.model.predict(texts, self.tokenizer, batch_size=batch_size)


def load_classifier(path: str | Path, device: str | torch.device | None = None) -> TextClassifier:
    """The classifier of a checkpoint or run directory, with its tokenizer, ready to `predict`."""
    from salesai.model.checkpoint import load_checkpoint, resolve_checkpoint

    ckpt = resolve_checkpoint(path)
    model, tokenizer = load_checkpoint(ckpt, device=device)
    if not isinstance(model, SalesAIForSequenceClassification):
        raise SalesAIError(f"{ckpt}: a language model, not a classifier (its config.json has no labels); "
                           "train one with `salesai train --task classify`")
    if tokenizer is None:
        raise SalesAIError(f"{ckpt}: no tokenizer.model beside the classifier's weights")
    return TextClassifier(model, tokenizer)


__all__ = ["Backbone", "SalesAIForSequenceClassification", "TextClassifier", "encode_texts",
           "last_token_index", "load_classifier", "pad_batch"]
