"""salesai.testing: the byte tokenizer, media samples, the CLI runner and the conformance checks."""

from __future__ import annotations

import io
import json
import struct
import wave
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from salesai.errors import SalesAIError
from salesai.testing import (
    ByteTokenizer,
    check_encoder,
    check_expert,
    check_exporter,
    has_component,
    run_cli,
    sample_png_bytes,
    sample_wav_bytes,
)


# -- ByteTokenizer ---------------------------------------------------------------------------------
def test_byte_tokenizer_ids_and_round_trip(byte_tokenizer: ByteTokenizer) -> None:
    tok = byte_tokenizer
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert len(tok) == tok.vocab_size == 267
    assert tok.token_to_id("<image>") == 4 and tok.token_to_id("<audio>") == 5
    assert tok.encode("A") == [11 + 65]
    ids = tok.encode("<|user|>héllo\n<image>", add_bos=True, add_eos=True)
    assert ids == [2, 8, 11 + 104, 11 + 0xC3, 11 + 0xA9, 11 + 108, 11 + 108, 11 + 111, 11 + 10, 4, 3]
    for text in [
        "",
        "plain",
        "tabs\tand\nnewlines  ",
        "ünïcödé ✓ 😀",
        "<code>def f(): pass<|end|>",
        "<imag>",
    ]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.decode(torch.tensor([2, 11 + 104, 11 + 105, 0, 3])) == "hi"
    assert tok.id_to_token(11 + 255) == "<0xFF>"
    with pytest.raises(IndexError, match="expected 0 <= id < 267"):
        tok.decode([267])
    with pytest.raises(KeyError):
        tok.token_to_id("<video>")


def test_byte_tokenizer_save_and_load(tmp_path: Path, byte_tokenizer: ByteTokenizer) -> None:
    path = byte_tokenizer.save_pretrained(tmp_path / "ckpt")
    assert path == tmp_path / "ckpt" / "tokenizer.model"
    assert json.loads(path.read_text())["format"] == "salesai-byte-tokenizer"
    assert len(ByteTokenizer.from_pretrained(tmp_path / "ckpt")) == 267
    assert len(ByteTokenizer.from_pretrained(path)) == 267
    (tmp_path / "other.model").write_bytes(b"\x00\x01not json")
    with pytest.raises(SalesAIError, match=r"expected a ByteTokenizer tokenizer\.model"):
        ByteTokenizer.from_pretrained(tmp_path / "other.model")


def test_byte_tokenizer_matches_the_real_special_ids() -> None:
    tokenizer = pytest.importorskip("salesai.tokenizer")
    from salesai.testing import tokenizer as byte

    assert byte.CONTROL_TOKENS == tokenizer.CONTROL_TOKENS
    assert byte.SYMBOLS == tokenizer.MODALITY_TOKENS + tokenizer.CHAT_TOKENS


# -- samples -----------------------------------------------------------------------------------------
def test_sample_png_is_a_valid_png() -> None:
    data = sample_png_bytes(5, 3)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, colour) == (5, 3, 8, 2)
    idat_len = struct.unpack(">I", data[33:37])[0]
    assert len(zlib.decompress(data[41 : 41 + idat_len])) == 3 * (1 + 5 * 3)
    pil = pytest.importorskip("PIL.Image")
    image = pil.open(io.BytesIO(sample_png_bytes()))
    assert (image.size, image.mode) == ((32, 32), "RGB")


def test_sample_wav_is_a_valid_wav() -> None:
    with wave.open(io.BytesIO(sample_wav_bytes(seconds=0.5, sample_rate=8000)), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 8000, 4000)


# -- run_cli ----------------------------------------------------------------------------------------
def test_run_cli_sets_and_restores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALESAI_TEST_VAR", raising=False)
    result = run_cli(["--version"], env={"SALESAI_TEST_VAR": "1"})
    assert result.exit_code == 0
    import os

    assert "SALESAI_TEST_VAR" not in os.environ


# -- check_expert -----------------------------------------------------------------------------------
class GoodExpert(nn.Module):
    def __init__(self, d: int, i: int) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(d, i), nn.Linear(i, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(x)))


class WrongShape(GoodExpert):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.up(x))  # (N, I), not (N, D)


class MixesTokens(GoodExpert):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x - x.mean(dim=0, keepdim=True))  # a token sees the others


class Frozen(GoodExpert):
    def __init__(self, d: int, i: int) -> None:
        super().__init__(d, i)
        self.unused = nn.Linear(d, d)


class Noisy(GoodExpert):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + torch.randn_like(x)


def test_check_expert_accepts_a_good_expert() -> None:
    state = torch.random.get_rng_state()
    module = check_expert(GoodExpert)
    assert isinstance(module, GoodExpert)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda d, i: "not a module", "factory returned str, not nn.Module"),
        (WrongShape, r"input \(0, 16\) gave output \(0, 24\), expected \(0, 16\)"),
        (MixesTokens, "a token's output depends on the other tokens"),
        (Frozen, "no gradient reaches parameter\\(s\\) unused.weight, unused.bias"),
        (Noisy, "two eval-mode calls on the same input differ"),
    ],
    ids=["not-module", "wrong-shape", "mixes-tokens", "unused-params", "non-deterministic"],
)
def test_check_expert_rejects(factory: Any, match: str) -> None:
    with pytest.raises(AssertionError, match=f"check_expert: {match}"):
        check_expert(factory)


# -- check_encoder -----------------------------------------------------------------------------------
class WavEncoder(nn.Module):
    """A toy audio encoder: 100-sample frames -> linear projection."""

    modality = "audio"
    output_dim = 8

    def __init__(self, frame: int = 100) -> None:
        super().__init__()
        self.frame = frame
        self.proj = nn.Linear(frame, self.output_dim)

    def preprocess(self, source: bytes | str | Path) -> torch.Tensor:
        raw = source if isinstance(source, bytes) else Path(source).read_bytes()
        with wave.open(io.BytesIO(raw), "rb") as w:
            pcm = w.readframes(w.getnframes())
        samples = torch.tensor(struct.unpack(f"<{len(pcm) // 2}h", pcm), dtype=torch.float32) / 32768
        n = samples.numel() // self.frame
        return samples[: n * self.frame].reshape(n, self.frame)  # (frames, frame)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, frames, output_dim)

    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, 3, self.frame)  # (B, frames, frame)

    def preprocess_spec(self) -> dict[str, Any]:
        return {"modality": self.modality, "frame": self.frame, "sample_rate": None}


class NoSpec(WavEncoder):
    preprocess_spec = None  # type: ignore[assignment]


class BytesEncoder(WavEncoder):
    modality = "bytes"

    def preprocess(self, source: bytes | str | Path) -> torch.Tensor:
        raw = source if isinstance(source, bytes) else Path(source).read_bytes()
        return torch.tensor(list(raw[:200]), dtype=torch.float32).reshape(2, 100) / 255


class PoolsTheBatch(WavEncoder):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).mean(dim=1)  # (B, output_dim): lost the sequence axis


def test_check_encoder_accepts_a_good_encoder() -> None:
    encoder = check_encoder(WavEncoder, frame=50)
    assert encoder.frame == 50
    check_encoder(BytesEncoder, sample=bytes(range(200)))


def _zero_dim() -> WavEncoder:
    encoder = WavEncoder()
    encoder.output_dim = 0
    return encoder


def test_check_encoder_rejects() -> None:
    with pytest.raises(AssertionError, match=r"expected \(2, N, 8\)"):
        check_encoder(PoolsTheBatch)
    with pytest.raises(AssertionError, match="no built-in sample for modality 'bytes'"):
        check_encoder(BytesEncoder)
    with pytest.raises(AssertionError, match="`output_dim` must be a positive int"):
        check_encoder(_zero_dim)
    with pytest.raises(AssertionError, match="`preprocess_spec` is missing"):
        check_encoder(NoSpec)


# -- check_exporter ----------------------------------------------------------------------------------
def good_exporter(model: nn.Module, tokenizer: Any, out_dir: Path, **options: Any) -> Path:
    if options:
        raise SalesAIError(f"unknown exporter option(s) {', '.join(options)}; expected none")
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.shape for k, v in model.state_dict().items()}, out_dir / "shapes.pt")
    tokenizer.save_pretrained(out_dir)
    return out_dir


def test_check_exporter_accepts_a_good_exporter(tmp_path: Path, byte_tokenizer: ByteTokenizer) -> None:
    model = nn.Linear(4, 4)
    result = check_exporter(good_exporter, model, byte_tokenizer, tmp_path)
    assert result == tmp_path / "export"
    assert (result / "tokenizer.model").is_file()


def _accepts_anything(model: nn.Module, tokenizer: Any, out_dir: Path, **options: Any) -> Path:
    return good_exporter(model, tokenizer, out_dir)


def _outside(model: nn.Module, tokenizer: Any, out_dir: Path) -> Path:
    return out_dir.parent


def _mutates(model: nn.Module, tokenizer: Any, out_dir: Path) -> Path:
    with torch.no_grad():
        next(model.parameters()).mul_(2)
    return good_exporter(model, tokenizer, out_dir)


def _missing(model: nn.Module, tokenizer: Any, out_dir: Path) -> Path:
    return out_dir / "model.onnx"


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (_accepts_anything, "unknown option not_an_option_of_any_exporter=1 was accepted silently"),
        (_outside, "which is outside out_dir"),
        (_mutates, "the model's weights changed: weight"),
        (_missing, "which does not exist"),
    ],
    ids=["accepts-garbage", "outside", "mutates", "missing"],
)
def test_check_exporter_rejects(
    tmp_path: Path, byte_tokenizer: ByteTokenizer, factory: Any, match: str
) -> None:
    with pytest.raises(AssertionError, match=f"check_exporter: .*{match}"):
        check_exporter(factory, nn.Linear(4, 4), byte_tokenizer, tmp_path)


def test_has_component_says_whether_a_registry_holds_a_name() -> None:
    assert has_component("experts", "swiglu")  # the core's built-in expert
    assert not has_component("encoders", "no-such-encoder")
