"""Multimodal plumbing: encoders built from the registry, projectors, and the LLaVA placeholder splice.

What: `build_encoders(config)` makes, for each modality of `config.encoders`, the registered encoder
(`registry("encoders")`, provided by a plugin such as salesai-vision) and a projector from the
encoder width to the decoder width (`mlp2x_gelu`, LLaVA-1.5's Linear-GELU-Linear, or `linear`;
`projector_norm: true` adds a LayerNorm on its output). `encode(model, modality, items)` runs items
(preprocessed tensors, or paths/bytes the encoder's `preprocess` reads) through both: (K, N,
hidden_dim). `splice(...)` replaces each placeholder token of a batch (`<image>`, `<audio>`:
`config.placeholder_id(modality)`) by the N projected embeddings of its item, in reading order (row
by row, left to right): the sequence grows by N - 1 per placeholder, the label of every inserted
position is -100, and the rows are re-padded (right, or left when the batch was left-padded or
`padding_side="left"`). The inserted positions keep the placeholder id in the expanded ids, which is
exactly what the ONNX decoder's `embeds_mask` path and `salesai.ort_runtime` reproduce.
References: LLaVA (Liu et al. 2023, arXiv:2304.08485) and LLaVA-1.5 (arXiv:2310.03744)
`prepare_inputs_labels_for_multimodal`; transformers `LlavaMultiModalProjector`.

What it is not: no image or audio code (that is the plugins'); no cross-attention fusion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from salesai.errors import PluginError, SalesAIError
from salesai.model.config import ModelConfig

Media = Mapping[str, Any]  # modality -> a list of items (tensor / path / bytes) or a stacked tensor


class Projector(nn.Module):
    """Encoder width -> decoder width: `mlp2x_gelu` (linear_1, GELU, linear_2) or `linear` (linear_1),
    optionally followed by a LayerNorm (`norm=True`, the entry's `projector_norm: true`)."""

    def __init__(self, kind: str, in_dim: int, out_dim: int, norm: bool = False) -> None:
        super().__init__()
        self.kind = kind
        self.linear_1 = nn.Linear(in_dim, out_dim)
        self.linear_2 = nn.Linear(out_dim, out_dim) if kind == "mlp2x_gelu" else None
        self.norm = nn.LayerNorm(out_dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (K, N, in_dim)
        x = self.linear_1(x)
        if self.linear_2 is not None:
            x = self.linear_2(nn.functional.gelu(x))
        if self.norm is not None:
            x = self.norm(x)
        return x  # (K, N, out_dim)


def build_encoders(config: ModelConfig) -> tuple[nn.ModuleDict, nn.ModuleDict]:
    """(encoders, projectors) keyed by modality; one clear line when a plugin is missing."""
    from salesai.plugins import FIRST_PARTY, registry

    encoders, projectors = nn.ModuleDict(), nn.ModuleDict()
    for modality, entry in config.encoders.items():
        name = entry["type"]
        try:
            factory = registry("encoders").get(name)
        except PluginError:
            package = FIRST_PARTY.get("encoders", {}).get(name) or FIRST_PARTY["encoders"].get(modality)
            hint = f"pip install {package}" if package else "install the plugin that registers it"
            raise SalesAIError(
                f"encoders.{modality}: the encoder {name!r} is not installed ({hint})"
            ) from None
        encoder = factory(**config.encoder_options(modality))
        for attr in ("modality", "output_dim", "preprocess"):
            if not hasattr(encoder, attr):
                raise SalesAIError(f"encoders.{modality}: encoder {name!r} has no `{attr}` (see the encoder "
                                   "contract in docs/plugins/hooks.md)")
        if encoder.modality != modality:
            raise SalesAIError(f"encoders.{modality}: encoder {name!r} fills {encoder.modality!r} "
                               f"placeholders, not {modality!r}")
        encoders[modality] = encoder
        projectors[modality] = Projector(entry.get("projector", "mlp2x_gelu"), int(encoder.output_dim),
                                         config.hidden_dim, norm=bool(entry.get("projector_norm", False)))
    return encoders, projectors


def as_batch(encoder: nn.Module, items: Any) -> torch.Tensor:
    """Items (tensors without a batch axis, or sources for `encoder.preprocess`) -> stacked (K, ...)."""
    if isinstance(items, torch.Tensor):
        return items
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        items = [items]
    read: Callable[[Any], torch.Tensor] = encoder.preprocess  # type: ignore[assignment]
    tensors = [x if isinstance(x, torch.Tensor) else read(x) for x in items]
    if not tensors:
        raise SalesAIError(f"{encoder.modality}: no inputs to encode")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise SalesAIError(f"{encoder.modality}: inputs of shapes {sorted(shapes)} cannot be batched")
    return torch.stack(tensors)  # (K, ...)


def encode(model: Any, modality: str, items: Any) -> torch.Tensor:
    """Projected embeddings (K, N, hidden_dim) of K items of one modality."""
    encoders = getattr(model, "encoders", None) or {}
    if modality not in encoders:
        known = ", ".join(encoders) or "none"
        raise SalesAIError(f"this model has no {modality} encoder (it has: {known}); add encoders.{modality} "
                           "to the model config")
    encoder = model.encoders[modality]
    weight = next(encoder.parameters(), None)
    batch = as_batch(encoder, items)
    if weight is not None and batch.is_floating_point():
        batch = batch.to(device=weight.device, dtype=weight.dtype)
    feats = encoder(batch)  # (K, N, output_dim)
    return model.projectors[modality](feats)  # (K, N, hidden_dim)


@dataclass
class Spliced:
    """A batch after the splice: what the decoder runs on."""

    inputs_embeds: torch.Tensor  # (B, L, D)
    attention_mask: torch.Tensor  # (B, L) int64, 1 = real position
    labels: torch.Tensor | None  # (B, L), -100 at inserted and padded positions
    input_ids: torch.Tensor  # (B, L): placeholders repeated N times, pad_id at padding


def splice(
    input_ids: torch.Tensor,
    embed: Callable[[torch.Tensor], torch.Tensor],
    features: Mapping[int, torch.Tensor],
    attention_mask: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    padding_side: str = "auto",
    pad_id: int = 0,
    names: Mapping[int, str] | None = None,
) -> Spliced:
    """Replace each placeholder id of `input_ids` (B, T) by its item's N embeddings; see the module docstring.

    `features`: placeholder id -> (K, N, D), items in reading order over the batch. `embed` maps
    ids to (B, T, D) token embeddings. `names` (id -> modality) only improves error messages.
    """
    b = input_ids.shape[0]
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    left = padding_side == "left" or (
        padding_side == "auto" and bool((~mask[:, 0]).any()) and bool(mask[:, -1].all())
    )
    names = names or {}
    for tok, feats in features.items():
        found = int(((input_ids == tok) & mask).sum())
        if found != feats.shape[0]:
            what = names.get(tok, f"token {tok}")
            raise SalesAIError(f"{found} <{what}> placeholder(s) in the batch but {feats.shape[0]} {what} "
                               "input(s); every input needs exactly one placeholder")
    tokens = embed(input_ids)  # (B, T, D)
    is_placeholder = torch.zeros_like(mask)
    for tok in features:
        is_placeholder |= input_ids == tok
    cursor = dict.fromkeys(features, 0)
    rows: list[tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]] = []
    for r in range(b):
        real = mask[r].nonzero().squeeze(-1)  # (n,) real positions, in order
        ids_r, emb_r = input_ids[r, real], tokens[r, real]
        lab_r = labels[r, real] if labels is not None else None
        spots = is_placeholder[r, real].nonzero().squeeze(-1).tolist()
        e_parts: list[torch.Tensor] = []
        i_parts: list[torch.Tensor] = []
        l_parts: list[torch.Tensor] = []
        start = 0
        for p in [*spots, len(real)]:
            e_parts.append(emb_r[start:p])
            i_parts.append(ids_r[start:p])
            if lab_r is not None:
                l_parts.append(lab_r[start:p])
            if p == len(real):
                break
            tok = int(ids_r[p])
            feat = features[tok][cursor[tok]]  # (N, D)
            cursor[tok] += 1
            e_parts.append(feat.to(emb_r.dtype))
            i_parts.append(ids_r.new_full((feat.shape[0],), tok))
            l_parts.append(ids_r.new_full((feat.shape[0],), -100))
            start = p + 1
        rows.append((e_parts, i_parts, l_parts))
    lengths = [sum(x.shape[0] for x in i_parts) for _, i_parts, _ in rows]
    width = max(lengths)
    d = tokens.shape[-1]
    out_e = tokens.new_zeros(b, width, d)
    out_i = input_ids.new_full((b, width), pad_id)
    out_m = torch.zeros(b, width, dtype=torch.long, device=input_ids.device)
    out_l = input_ids.new_full((b, width), -100) if labels is not None else None
    for r, ((e_parts, i_parts, l_parts), n) in enumerate(zip(rows, lengths, strict=True)):
        sl = slice(width - n, width) if left else slice(0, n)
        out_e[r, sl] = torch.cat(e_parts)
        out_i[r, sl] = torch.cat(i_parts)
        out_m[r, sl] = 1
        if out_l is not None:
            out_l[r, sl] = torch.cat(l_parts)
    return Spliced(out_e, out_m, out_l, out_i)


def splice_media(
    model: Any,
    input_ids: torch.Tensor,
    media: Media,
    attention_mask: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    padding_side: str = "auto",
) -> Spliced:
    """Encode `media` with the model's encoders and splice the embeddings into `input_ids`."""
    cfg = model.config
    features: dict[int, torch.Tensor] = {}
    names: dict[int, str] = {}
    for modality, items in media.items():
        if items is None or (isinstance(items, Sequence) and len(items) == 0):
            continue
        tok = cfg.placeholder_id(modality) if modality in cfg.encoders else None
        if tok is None:
            encode(model, modality, [])  # raises: the model has no such encoder
        assert tok is not None
        features[tok] = encode(model, modality, items)
        names[tok] = modality
    return splice(input_ids, model.embed, features, attention_mask, labels, padding_side,
                  cfg.pad_token_id, names)


__all__ = ["Projector", "Spliced", "as_batch", "build_encoders", "encode", "splice", "splice_media"]
