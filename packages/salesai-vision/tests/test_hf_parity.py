"""With the same weights, `vit` equals transformers' ViTModel (last_hidden_state) to 1e-5.

Needs the `hf` extra (`pip install 'salesai-vision[hf]'`); skipped without transformers.
"""

from __future__ import annotations

import pytest
import torch

from salesai_vision.vit import vit

transformers = pytest.importorskip("transformers")


def _pair(image_size: int = 32) -> tuple[torch.nn.Module, torch.nn.Module]:
    cfg = transformers.ViTConfig(
        image_size=image_size, patch_size=16, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
        intermediate_size=96, hidden_act="gelu", layer_norm_eps=1e-6, qkv_bias=True,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    ref = transformers.ViTModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():  # non-trivial values everywhere, LayerNorms and biases included
        for p in ref.parameters():
            p.normal_(0.0, 0.1)
    ours = vit(image_size=image_size, hidden_dim=48, num_layers=2, num_heads=3, mlp_dim=96,
               cls_token=True, norm_eps=1e-6).eval()
    ours.load_hf_state_dict(ref.state_dict())
    return ours, ref


def test_same_outputs_as_vitmodel() -> None:
    ours, ref = _pair()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = ref(pixel_values=x).last_hidden_state
        got = ours(x)
    assert got.shape == expected.shape == (3, 5, 48)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_same_outputs_with_interpolated_positions() -> None:
    ours, ref = _pair()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        expected = ref(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state
        got = ours(x)
    assert got.shape == expected.shape == (2, 13, 48)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_vit_ti_16_matches_vitmodel_parameter_count() -> None:
    cfg = transformers.ViTConfig(image_size=224, patch_size=16, hidden_size=192, num_hidden_layers=12,
                                 num_attention_heads=3, intermediate_size=768)
    with torch.device("meta"):
        ref = transformers.ViTModel(cfg, add_pooling_layer=False)
        ours = vit(image_size=224, hidden_dim=192, num_layers=12, num_heads=3, cls_token=True)
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in ref.parameters()) == 5_524_416
