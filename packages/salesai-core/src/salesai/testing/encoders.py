"""A toy image encoder for tests of the multimodal plumbing, without any image library.

`ToyEncoders` is a plugin object registering `toy-patches` (modality `image`): `preprocess`
reads a `.npy` array (path, bytes or an array) of shape (3, size, size) or (size, size, 3),
`forward` cuts (B, 3, size, size) into patch x patch squares and projects each with one
linear map: (B, (size / patch)^2, output_dim). It meets the encoder contract
(`check_encoder(toy_patches, sample=npy_bytes(...))`), including `example_input`,
`preprocess_spec` and a torch-free `preprocess_numpy` for the ONNX Runtime path.

    with register_plugin(ToyEncoders):
        model = SalesAIModel(ModelConfig.from_name("tiny", encoders={"image": {"type": "toy-patches"}}))

What it is not: an image encoder to train real models with.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from salesai.errors import SalesAIError
from salesai.hookspecs import Register, hookimpl


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of a `.npy` file."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def read_npy(source: Any, spec: dict[str, Any]) -> np.ndarray:
    """(3, size, size) float32 from a .npy path, bytes or array; SalesAIError naming the input otherwise."""
    size = int(spec["size"][0])
    name = str(source) if isinstance(source, (str, Path)) else f"<{type(source).__name__}>"
    try:
        if isinstance(source, np.ndarray):
            a = source
        elif isinstance(source, (bytes, bytearray)):
            a = np.load(io.BytesIO(bytes(source)), allow_pickle=False)
        else:
            a = np.load(Path(source), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise SalesAIError(f"{name}: not a .npy array ({exc})".splitlines()[0]) from None
    if a.shape == (size, size, 3):
        a = a.transpose(2, 0, 1)
    if a.shape != (3, size, size):
        raise SalesAIError(f"{name}: expected an array (3, {size}, {size}), got {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def toy_patches(size: int = 16, patch: int = 8, output_dim: int = 24) -> Any:
    """The toy encoder module (see the module docstring)."""
    import torch
    from torch import nn

    if size % patch:
        raise SalesAIError(f"toy-patches: size={size} must be a multiple of patch={patch}")

    class ToyPatches(nn.Module):
        modality = "image"

        def __init__(self) -> None:
            super().__init__()
            self.output_dim = output_dim
            self.proj = nn.Conv2d(3, output_dim, kernel_size=patch, stride=patch)
            self.norm = nn.LayerNorm(output_dim)
            # A buffer computed at init and not saved (as sinusoidal positions are): checkpoints
            # must rebuild it when they load, not leave it uninitialised.
            n = (size // patch) ** 2
            self.register_buffer("positions", torch.linspace(0, 1, n)[:, None], persistent=False)  # (N, 1)

        def preprocess_spec(self) -> dict[str, Any]:
            return {"modality": "image", "format": "npy", "size": [size, size], "layout": "CHW"}

        def preprocess(self, source: Any) -> torch.Tensor:
            return torch.from_numpy(read_npy(source, self.preprocess_spec()))  # (3, size, size)

        def example_input(self) -> torch.Tensor:
            return torch.linspace(-1, 1, 3 * size * size).reshape(1, 3, size, size)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, size, size)
            y = self.proj(x)  # (B, D, size/patch, size/patch)
            return self.norm(y.flatten(2).transpose(1, 2) + self.positions)  # (B, N, D)

    return ToyPatches()


class ToyEncoders:
    """Plugin object: registers `toy-patches` (use with `salesai.testing.register_plugin`)."""

    @staticmethod
    @hookimpl
    def register_encoders(register: Register) -> None:
        register("toy-patches", toy_patches, modality="image", preprocess_numpy=read_npy,
                 description="toy .npy patch encoder for tests")


__all__ = ["ToyEncoders", "npy_bytes", "read_npy", "toy_patches"]
