"""Multimodal plumbing: encoders from config, projectors, the placeholder splice, generation, checkpoints.

Uses the toy `.npy` patch encoder of `salesai.testing` (no image library needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from salesai import ModelConfig, SalesAIModel
from salesai.errors import SalesAIError
from salesai.model.multimodal import Projector, splice
from salesai.testing import ToyEncoders, check_encoder, npy_bytes, register_plugin
from salesai.testing.encoders import toy_patches

IMG = 4  # <image>
TOY = {"image": {"type": "toy-patches", "size": 16, "patch": 8}}  # N = 4 embeddings per image


@pytest.fixture(autouse=True)
def toy_encoder() -> Iterator[None]:
    with register_plugin(ToyEncoders):
        yield


def model(**overrides: object) -> SalesAIModel:
    torch.manual_seed(0)
    return SalesAIModel(ModelConfig.from_name("tiny", **{"encoders": TOY, **overrides})).eval()


def image(seed: int) -> torch.Tensor:
    return torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_toy_encoder_meets_the_contract() -> None:
    check_encoder(toy_patches, sample=npy_bytes(np.zeros((3, 16, 16))))


def test_model_builds_encoder_and_projector_from_config() -> None:
    m = model()
    assert m.config.image_token_id == IMG
    assert set(m.encoders) == {"image"} and m.projectors["image"].kind == "mlp2x_gelu"
    assert m.projectors["image"].linear_1.in_features == 24
    assert m.projectors["image"].linear_2.out_features == m.config.hidden_dim
    linear = model(encoders={"image": {**TOY["image"], "projector": "linear"}})
    assert linear.projectors["image"].linear_2 is None
    assert any(k.startswith("encoders.image.") for k in m.state_dict())


def test_missing_plugin_names_the_package() -> None:
    cfg = ModelConfig.from_name("tiny", encoders={"audio": {"type": "not-installed-encoder"}})
    with pytest.raises(SalesAIError, match=r"encoders.audio: the encoder 'not-installed-encoder' is not "
                                           r"installed \(pip install salesai-audio\)"):
        SalesAIModel(cfg)


def test_bad_encoder_configs() -> None:
    with pytest.raises(SalesAIError, match="projector='conv'"):
        ModelConfig.from_name("tiny", encoders={"image": {"type": "vit", "projector": "conv"}})
    with pytest.raises(SalesAIError, match="no placeholder token id"):
        ModelConfig.from_name("tiny", encoders={"depth": {"type": "x"}})
    with pytest.raises(SalesAIError, match="expected a mapping with type"):
        ModelConfig.from_name("tiny", encoders={"image": {"size": 3}})


def test_splice_positions_labels_and_padding() -> None:
    d = 3
    embed = torch.nn.Embedding(50, d)
    feats = torch.arange(2 * 4 * d, dtype=torch.float32).reshape(2, 4, d) + 100  # (K=2, N=4, D)
    ids = torch.tensor([[2, IMG, 10, 11], [2, 12, IMG, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])  # row 1 right-padded
    labels = ids.clone()
    sp = splice(ids, embed, {IMG: feats}, mask, labels)
    assert sp.inputs_embeds.shape == (2, 7, d)  # grows by N - 1 = 3
    assert sp.input_ids.tolist() == [[2, IMG, IMG, IMG, IMG, 10, 11], [2, 12, IMG, IMG, IMG, IMG, 0]]
    assert sp.attention_mask.tolist() == [[1] * 7, [1] * 6 + [0]]
    assert sp.labels.tolist() == [[2, -100, -100, -100, -100, 10, 11], [2, 12, -100, -100, -100, -100, -100]]
    torch.testing.assert_close(sp.inputs_embeds[0, 1:5], feats[0])  # first image -> first placeholder
    torch.testing.assert_close(sp.inputs_embeds[1, 2:6], feats[1])
    torch.testing.assert_close(sp.inputs_embeds[0, 5], embed(torch.tensor(10)))
    left = splice(torch.tensor([[0, 0, 2, IMG], [2, IMG, 7, 8]]), embed, {IMG: feats},
                  torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]]))
    assert left.attention_mask.tolist() == [[0, 0, 1, 1, 1, 1, 1], [1] * 7]  # left padding kept


def test_placeholder_count_mismatch_is_one_line() -> None:
    embed = torch.nn.Embedding(50, 3)
    with pytest.raises(SalesAIError, match=r"2 <image> placeholder\(s\) in the batch but 1 image input\(s\)"):
        splice(torch.tensor([[IMG, 5, IMG]]), embed, {IMG: torch.zeros(1, 4, 3)}, names={IMG: "image"})


def test_forward_with_media_matches_inputs_embeds() -> None:
    m = model()
    ids = torch.tensor([[2, IMG, 20, 21], [2, 30, 31, 32]])
    out = m(ids, media={"image": [image(0)]}, labels=ids)
    assert out.logits.shape == (2, 7, m.config.vocab_size)
    feats = m.projectors["image"](m.encoders["image"](image(0)[None]))  # (1, 4, D)
    embeds = m.embed(torch.tensor([[2, IMG, IMG, IMG, IMG, 20, 21], [2, 30, 31, 32, 0, 0, 0]]))
    embeds[0, 1:5] = feats[0]
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    ref = m(inputs_embeds=embeds, attention_mask=mask)
    torch.testing.assert_close(out.logits[0], ref.logits[0])
    torch.testing.assert_close(out.logits[1, :4], ref.logits[1, :4])
    assert torch.isfinite(out.loss)


def test_gradients_reach_encoder_and_projector() -> None:
    m = model().train()
    ids = torch.tensor([[2, IMG, 20, 21, 22]])
    m(ids, media={"image": image(1)[None]}, labels=ids).loss.backward()
    assert m.encoders["image"].proj.weight.grad.abs().sum() > 0
    assert m.projectors["image"].linear_1.weight.grad.abs().sum() > 0


def test_generate_with_images_batched_equals_single() -> None:
    m = model()
    a, b = [2, IMG, 20, 21], [2, 30, IMG, 31, 32, 33]
    both = m.generate([a, b], images=[image(0), image(1)], max_new_tokens=6, temperature=0)
    one = m.generate([a], images=[image(0)], max_new_tokens=6, temperature=0)
    two = m.generate([b], images=[image(1)], max_new_tokens=6, temperature=0)
    assert both == one + two
    other = m.generate([a], images=[image(2)], max_new_tokens=6, temperature=0)
    assert other != one  # the image matters
    streamed = list(m.stream(a, images=[image(0)], max_new_tokens=6, temperature=0))
    assert streamed == one[0]
    seeded = [m.generate([a], images=[image(0)], max_new_tokens=6, seed=3) for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_generate_accepts_sources_and_checks_counts(tmp_path: Path) -> None:
    m = model()
    path = tmp_path / "x.npy"
    path.write_bytes(npy_bytes(image(0).numpy()))
    from_path = m.generate([[2, IMG, 20]], images=[path], max_new_tokens=4, temperature=0)
    assert from_path == m.generate([[2, IMG, 20]], images=[image(0)], max_new_tokens=4, temperature=0)
    with pytest.raises(SalesAIError, match=r"1 <image> placeholder\(s\) in the batch but 2 image"):
        m.generate([[2, IMG, 20]], images=[image(0), image(1)], max_new_tokens=2)
    with pytest.raises(SalesAIError, match=r"x\.txt: not a \.npy array"):
        (tmp_path / "x.txt").write_text("hello")
        m.generate([[2, IMG, 20]], images=[tmp_path / "x.txt"], max_new_tokens=2)


def test_checkpoint_round_trip_keeps_encoder_weights(tmp_path: Path) -> None:
    m = model()
    with torch.no_grad():
        m.encoders["image"].proj.weight.add_(1.0)
    m.save_pretrained(tmp_path / "ckpt")
    loaded = SalesAIModel.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.encoders["image"].proj.weight, m.encoders["image"].proj.weight)
    # a buffer the encoder computes at init and does not save is rebuilt, not left uninitialised
    torch.testing.assert_close(loaded.encoders["image"].positions, m.encoders["image"].positions)
    ids = [[2, IMG, 20, 21]]
    assert loaded.generate(ids, images=[image(0)], max_new_tokens=5, temperature=0) == \
        m.generate(ids, images=[image(0)], max_new_tokens=5, temperature=0)


def test_projector_shapes() -> None:
    x = torch.randn(2, 5, 7)
    assert Projector("mlp2x_gelu", 7, 9)(x).shape == (2, 5, 9)
    assert Projector("linear", 7, 9)(x).shape == (2, 5, 9)


def test_hf_export_refuses_a_model_with_encoders(tmp_path: Path) -> None:
    from salesai.export.hf import check_exportable

    with pytest.raises(SalesAIError, match=r"hf export: the model carries encoders \(image\)"):
        check_exportable(model().config)


def test_media_for_a_text_model_is_one_line() -> None:
    torch.manual_seed(0)
    text = SalesAIModel(ModelConfig.from_name("tiny"))
    with pytest.raises(SalesAIError, match="this model has no image encoder"):
        text.generate([[2, IMG, 5]], images=[image(0)], max_new_tokens=2)
