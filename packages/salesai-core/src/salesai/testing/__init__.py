"""Helpers for testing salesai and its plugins.

- `register_plugin(obj)`: a context manager that registers a plugin object for one test
  (the pytest fixture `salesai_plugin` wraps it);
- `run_cli(args)`: runs `salesai` in-process through `salesai.cli.main` (plugin commands
  included) and returns `CliResult(exit_code, stdout, stderr)`;
- conformance checks every registered component must pass: `check_expert`, `check_encoder`,
  `check_exporter`, `check_reward`, `check_agent` (they raise `AssertionError` naming what is wrong);
- `ByteTokenizer`: a byte-level tokenizer with the `salesai.Tokenizer` interface, for fast
  tests that need no trained SentencePiece model;
- `sample_png_bytes`, `sample_wav_bytes`: tiny valid media files made with the standard library;
- `ToyEncoders`, `npy_bytes`: a toy image encoder plugin (`toy-patches`, reads .npy arrays) for
  tests of multimodal models without an image library.

Importing this package does not import torch; the checks import it when called.
"""

from __future__ import annotations

from salesai.testing.cli import CliResult, installed_plugin, run_cli
from salesai.testing.conformance import (
    check_agent,
    check_encoder,
    check_expert,
    check_exporter,
    check_reward,
)
from salesai.testing.encoders import ToyEncoders, npy_bytes
from salesai.testing.host import has_component, register_plugin
from salesai.testing.samples import sample_png_bytes, sample_wav_bytes
from salesai.testing.tokenizer import ByteTokenizer

__all__ = [
    "ByteTokenizer",
    "CliResult",
    "ToyEncoders",
    "check_agent",
    "check_encoder",
    "check_expert",
    "check_exporter",
    "check_reward",
    "has_component",
    "installed_plugin",
    "npy_bytes",
    "register_plugin",
    "run_cli",
    "sample_png_bytes",
    "sample_wav_bytes",
]
