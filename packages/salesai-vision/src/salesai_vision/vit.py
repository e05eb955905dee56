"""The `vit` encoder: a Vision Transformer (Dosovitskiy et al. 2021, arXiv:2010.11929).

What: patch embedding (a Conv2d with kernel = stride = patch_size, default 16) -> optional CLS
token -> learned position embeddings (bicubically interpolated when the input image size
differs from `image_size`, as DINO and transformers do) -> `num_layers` pre-norm blocks
(LayerNorm -> multi-head self-attention through `scaled_dot_product_attention` -> residual;
LayerNorm -> GELU MLP -> residual) -> final LayerNorm. The output is every token's final
hidden state, (B, N, hidden_dim), N = patches (+ 1 with the CLS token first).

With the same weights (`load_hf_state_dict`) it equals transformers' `ViTModel`
`last_hidden_state` to float32 round-off (tests/test_hf_parity.py), and the ViT-Ti/16 224
configuration has that architecture's published 5.5M parameters (5,717,416 with timm's
1000-class head).

The salesai encoder contract (docs/plugins/hooks.md): `modality = "image"`, `output_dim`,
`preprocess(path | bytes | array | PIL image) -> (3, H, W)`, `forward((B, 3, H, W)) ->
(B, N, output_dim)`, `example_input()` and `preprocess_spec()`.

What it is not: no classification head, no dropout, no pooler; no hybrid (CNN) stem.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from salesai.errors import SalesAIError
from salesai_vision.preprocess import ImageSpec, preprocess_image


class Attention(nn.Module):
    """Multi-head self-attention with biased q/k/v/out projections (transformers' ViT layout)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D)
        b, n, d = x.shape
        shape = (b, n, self.num_heads, d // self.num_heads)
        q = self.q(x).view(shape).transpose(1, 2)  # (B, H, N, hd)
        k = self.k(x).view(shape).transpose(1, 2)
        v = self.v(x).view(shape).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, hd)
        return self.out(y.transpose(1, 2).reshape(b, n, d))  # (B, N, D)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln1(x)), then + mlp(ln2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, eps: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads)
        self.ln2 = nn.LayerNorm(dim, eps=eps)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D)
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class ViTEncoder(nn.Module):
    """Vision Transformer image encoder; see the module docstring."""

    modality = "image"

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        hidden_dim: int = 192,
        num_layers: int = 12,
        num_heads: int = 3,
        mlp_dim: int | None = None,
        cls_token: bool = False,
        norm_eps: float = 1e-6,
        channels: int = 3,
        resize: str = "pad",
        resample: str = "bicubic",
        mean: tuple[float, float, float] | list[float] = (0.5, 0.5, 0.5),
        std: tuple[float, float, float] | list[float] = (0.5, 0.5, 0.5),
        max_pixels: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("image_size", image_size), ("patch_size", patch_size),
                            ("hidden_dim", hidden_dim), ("num_layers", num_layers), ("num_heads", num_heads)):
            if not isinstance(value, int) or value < 1:
                raise SalesAIError(f"vit: {name}={value!r} must be a positive integer")
        if image_size % patch_size:
            raise SalesAIError(f"vit: image_size={image_size} must be a multiple of patch_size={patch_size}")
        if hidden_dim % num_heads:
            raise SalesAIError(f"vit: hidden_dim={hidden_dim} must be divisible by num_heads={num_heads}")
        self.image_size, self.patch_size, self.channels = image_size, patch_size, channels
        self.output_dim = hidden_dim
        self.grid = image_size // patch_size  # patches per side at the trained size
        self.has_cls = cls_token
        self.spec = ImageSpec(
            size=(image_size, image_size), resize=resize, resample=resample,
            mean=(mean[0], mean[1], mean[2]), std=(std[0], std[1], std[2]),
            max_pixels=max_pixels if max_pixels is not None else ImageSpec.max_pixels,
        )
        self.patch_embed = nn.Conv2d(channels, hidden_dim, kernel_size=patch_size, stride=patch_size)
        # Position and CLS embeddings are nn.Embedding tables, so the Trainer never applies weight
        # decay to them (timm's `no_weight_decay`); decaying them slowed learning here (docs/vision.md).
        self.cls_token = nn.Embedding(1, hidden_dim) if cls_token else None  # (1, D)
        self.pos_embed = nn.Embedding(self.grid**2 + int(cls_token), hidden_dim)  # ([1 +] N, D)
        self.blocks = nn.ModuleList(
            Block(hidden_dim, num_heads, mlp_dim or 4 * hidden_dim, norm_eps) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_dim, eps=norm_eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal(0.02) weights and position/CLS embeddings, zero biases (timm's ViT)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos_embed.weight, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token.weight, std=0.02)

    # -- the encoder contract ----------------------------------------------------------------
    def num_tokens(self, height: int | None = None, width: int | None = None) -> int:
        """Output tokens N for an input of height x width (default: the trained size)."""
        h, w = height or self.image_size, width or self.image_size
        return (h // self.patch_size) * (w // self.patch_size) + int(self.has_cls)

    def preprocess(self, source: Any) -> torch.Tensor:
        """A path, bytes, numpy array or PIL image -> float tensor (3, H, W); SalesAIError if unreadable."""
        return torch.from_numpy(preprocess_image(source, self.spec))

    def preprocess_spec(self) -> dict[str, Any]:
        """The preprocessing as data (sizes, resize mode, resampling, mean/std) for the ONNX manifest."""
        return {**self.spec.as_dict(), "patch_size": self.patch_size, "tokens": self.num_tokens()}

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        """A random preprocessed batch (B, 3, image_size, image_size), for tests and export."""
        g = torch.Generator().manual_seed(0)
        return torch.randn(batch_size, self.channels, self.image_size, self.image_size, generator=g)

    def _positions(self, gh: int, gw: int) -> torch.Tensor:
        """Position embeddings (1, [1 +] gh * gw, D), interpolated when the grid differs."""
        pos = self.pos_embed.weight[None]  # (1, [1 +] N, D)
        if gh == self.grid and gw == self.grid:
            return pos
        cls_pos, patch_pos = pos[:, : int(self.has_cls)], pos[:, int(self.has_cls):]
        d = pos.shape[-1]
        grid = patch_pos.reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)  # (1, D, g, g)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        patch_pos = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, d)  # (1, gh*gw, D)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.channels:
            raise SalesAIError(
                f"vit: expected pixel values (B, {self.channels}, H, W), got {tuple(pixel_values.shape)}"
            )
        x = self.patch_embed(pixel_values.to(self.patch_embed.weight.dtype))  # (B, D, H/p, W/p)
        gh, gw = x.shape[-2], x.shape[-1]
        x = x.flatten(2).transpose(1, 2)  # (B, gh*gw, D)
        if self.cls_token is not None:
            cls = self.cls_token.weight[None].expand(x.shape[0], -1, -1)  # (B, 1, D)
            x = torch.cat([cls, x], dim=1)  # (B, 1+gh*gw, D)
        x = x + self._positions(int(gh), int(gw))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)  # (B, N, D)

    # -- weights from transformers' ViTModel -------------------------------------------------
    def load_hf_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Copy a transformers `ViTModel` state dict (ViT layout, no pooler needed) into this encoder."""
        self.load_state_dict(hf_to_salesai(state, len(self.blocks), self.has_cls))


# transformers' ViT names per block: the hub checkpoints' layout (transformers 4.x) and the
# layout of transformers >= 5 (`layers.i.attention.q_proj`, `layers.i.mlp.fc1`).
_HF_BLOCK = {
    "ln1": ("encoder.layer.{i}.layernorm_before", "layers.{i}.layernorm_before"),
    "attn.q": ("encoder.layer.{i}.attention.attention.query", "layers.{i}.attention.q_proj"),
    "attn.k": ("encoder.layer.{i}.attention.attention.key", "layers.{i}.attention.k_proj"),
    "attn.v": ("encoder.layer.{i}.attention.attention.value", "layers.{i}.attention.v_proj"),
    "attn.out": ("encoder.layer.{i}.attention.output.dense", "layers.{i}.attention.o_proj"),
    "ln2": ("encoder.layer.{i}.layernorm_after", "layers.{i}.layernorm_after"),
    "fc1": ("encoder.layer.{i}.intermediate.dense", "layers.{i}.mlp.fc1"),
    "fc2": ("encoder.layer.{i}.output.dense", "layers.{i}.mlp.fc2"),
}


def hf_to_salesai(
    state: dict[str, torch.Tensor], num_layers: int, cls_token: bool
) -> dict[str, torch.Tensor]:
    """Rename transformers' ViT weights (either layout, optionally prefixed `vit.`) to this module's names."""
    s = {k.removeprefix("vit."): v for k, v in state.items()}
    out = {
        "patch_embed.weight": s["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.bias": s["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": s["layernorm.weight"],
        "norm.bias": s["layernorm.bias"],
    }
    pos = s["embeddings.position_embeddings"][0]  # (1 + N, D): transformers always keeps a CLS slot
    out["pos_embed.weight"] = pos if cls_token else pos[1:]
    if cls_token:
        out["cls_token.weight"] = s["embeddings.cls_token"][0]  # (1, D)
    for i in range(num_layers):
        for ours, layouts in _HF_BLOCK.items():
            for kind in ("weight", "bias"):
                names = [f"{layout.format(i=i)}.{kind}" for layout in layouts]
                found = [n for n in names if n in s]
                if not found:
                    raise SalesAIError(f"ViT state dict: missing {names[0]} (or {names[1]})")
                out[f"blocks.{i}.{ours}.{kind}"] = s[found[0]]
    return out


def vit(**options: Any) -> ViTEncoder:
    """The registry factory: `vit(image_size=224, patch_size=16, hidden_dim=192, ...)`."""
    import inspect

    known = set(inspect.signature(ViTEncoder.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SalesAIError(f"vit: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return ViTEncoder(**options)


__all__ = ["ViTEncoder", "hf_to_salesai", "vit"]
