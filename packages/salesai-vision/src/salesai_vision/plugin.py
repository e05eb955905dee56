"""salesai-vision's hooks: the `vit` image encoder and the `salesai vision` command group.

This is the module the `salesai` entry point of salesai-vision names. It stays light:
torch, Pillow and numpy are imported only when a factory or command runs.
"""

from __future__ import annotations

from typing import Any

from salesai.hookspecs import Register, hookimpl


def vit(**options: Any) -> Any:
    """Vision Transformer image encoder (patch 16, learned positions, pre-norm blocks, optional CLS)."""
    from salesai_vision.vit import vit as build

    return build(**options)


def preprocess_numpy(source: Any, spec: dict[str, Any]) -> Any:
    """Torch-free preprocessing from a manifest's preprocess_spec -> float32 array (3, H, W)."""
    from salesai_vision.preprocess import preprocess_image

    return preprocess_image(source, spec)


@hookimpl
def register_encoders(register: Register) -> None:
    register(
        "vit",
        vit,
        modality="image",
        preprocess_numpy=preprocess_numpy,
        description="Vision Transformer: 16x16 patches, learned positions, pre-norm blocks",
    )


@hookimpl
def register_commands(app: Any) -> None:
    from salesai_vision.cli import vision_app

    app.add_typer(vision_app(), name="vision")
