"""The salesai-audio plugin: registers the `audio` encoder and the `salesai audio` command group.

This is the module the `salesai` entry point of salesai-audio names. It stays tiny and imports
nothing heavy: torch is imported when an encoder is built, scipy when a clip is resampled.
"""

from __future__ import annotations

from typing import Any

import salesai


def preprocess_numpy(source: Any, spec: dict[str, Any]) -> Any:
    """Torch-free `preprocess` from the encoder's `preprocess_spec()` (used by ONNX Runtime inference)."""
    from salesai_audio.preprocess import preprocess_numpy as run

    return run(source, spec)


def audio(**options: Any) -> Any:
    """Factory of the `audio` encoder (options: the fields of `salesai_audio.AudioEncoderConfig`)."""
    from salesai_audio.encoder import build_audio_encoder

    return build_audio_encoder(**options)


@salesai.hookimpl
def register_encoders(register: Any) -> None:
    register(
        "audio",
        audio,
        modality="audio",
        preprocess_numpy=preprocess_numpy,
        description="Whisper log-mel, 1-D conv stack (stride = audio patch, 4), transformer; modality audio",
    )


@salesai.hookimpl
def register_commands(app: Any) -> None:
    """`salesai audio make-data` (and `transcribe`)."""
    from salesai_audio.cli import make_app

    app.add_typer(make_app(), name="audio")
