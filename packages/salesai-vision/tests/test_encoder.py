"""The `vit` encoder: the salesai encoder contract, shapes, CLS, position interpolation, sizes."""

from __future__ import annotations

import pytest
import torch

from salesai.errors import SalesAIError
from salesai.plugins import registry
from salesai.testing import check_encoder, sample_png_bytes
from salesai_vision.plugin import vit

TINY = dict(image_size=32, hidden_dim=32, num_layers=2, num_heads=2)


@pytest.mark.parametrize("cls_token", [False, True])
def test_conformance(cls_token: bool) -> None:
    encoder = check_encoder(vit, **TINY, cls_token=cls_token)
    assert encoder.modality == "image"
    assert encoder.output_dim == 32
    assert encoder.num_tokens() == 4 + int(cls_token)


def test_registered_factory_is_the_plugin_one() -> None:
    assert registry("encoders").get("vit") is vit
    assert registry("encoders").entry("vit").metadata["modality"] == "image"


def test_forward_shape_and_example_input() -> None:
    encoder = vit(**TINY).eval()
    x = encoder.example_input(batch_size=3)
    assert x.shape == (3, 3, 32, 32)
    assert torch.equal(x, encoder.example_input(batch_size=3))  # deterministic
    assert encoder(x).shape == (3, 4, 32)


def test_preprocess_spec_describes_the_pipeline() -> None:
    encoder = vit(**TINY, resize="crop", mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0))
    spec = encoder.preprocess_spec()
    assert spec["size"] == [32, 32]
    assert spec["resize"] == "crop" and spec["resample"] == "bicubic"
    assert spec["mean"] == [0.1, 0.2, 0.3] and spec["std"] == [1.0, 2.0, 3.0]
    assert spec["layout"] == "NCHW" and spec["tokens"] == 4 and spec["patch_size"] == 16
    x = encoder.preprocess(sample_png_bytes(32, 32))
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32


def test_positions_interpolated_for_another_size() -> None:
    torch.manual_seed(0)
    encoder = vit(**TINY, cls_token=True).eval()
    with torch.no_grad():
        out = encoder(torch.randn(2, 3, 64, 48))
    assert out.shape == (2, 1 + 4 * 3, 32)
    assert torch.equal(encoder._positions(2, 2)[0], encoder.pos_embed.weight)  # trained grid: as is
    assert encoder._positions(4, 4).shape == (1, 17, 32)
    assert torch.equal(encoder._positions(4, 4)[0, 0], encoder.pos_embed.weight[0])  # CLS slot untouched


def test_positions_and_cls_are_not_weight_decayed() -> None:
    from salesai.train.trainer import param_groups

    encoder = vit(**TINY, cls_token=True)
    decay = {id(p) for p in param_groups(encoder, 0.1)[0]["params"]}
    assert id(encoder.pos_embed.weight) not in decay and id(encoder.cls_token.weight) not in decay
    assert id(encoder.patch_embed.weight) in decay


def test_vit_ti_16_has_the_published_parameter_count() -> None:
    with torch.device("meta"):
        encoder = vit(image_size=224, patch_size=16, hidden_dim=192, num_layers=12, num_heads=3,
                      cls_token=True)
    # timm's vit_tiny_patch16_224: 5,717,416 parameters with its 1000-class head (192*1000 + 1000).
    assert sum(p.numel() for p in encoder.parameters()) == 5_717_416 - 193_000
    assert encoder.num_tokens() == 197


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(image_size=30), "multiple of patch_size"),
        (dict(hidden_dim=30, num_heads=4), "divisible by num_heads"),
        (dict(not_an_option=1), "unknown option"),
        (dict(resize="stretch"), "resize='stretch'"),
    ],
)
def test_bad_options_fail_in_one_line(options: dict, message: str) -> None:
    with pytest.raises(SalesAIError, match=message):
        vit(**{**TINY, **options})


def test_wrong_input_shape_is_named() -> None:
    with pytest.raises(SalesAIError, match=r"expected pixel values \(B, 3, H, W\)"):
        vit(**TINY)(torch.zeros(3, 32, 32))
