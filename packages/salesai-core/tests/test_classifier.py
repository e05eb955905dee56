"""The sequence classifier (salesai.model.classifier): pooling, padding, loss, checkpoints, --init."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from salesai.errors import SalesAIError
from salesai.model import load_checkpoint, save_checkpoint
from salesai.model.classifier import SalesAIForSequenceClassification, encode_texts, pad_batch
from salesai.model.config import ModelConfig
from salesai.model.transformer import SalesAIModel
from salesai.testing import ByteTokenizer

torch.set_num_threads(1)
LABELS = ["neg", "neu", "pos"]


def _clf(**overrides: object) -> SalesAIForSequenceClassification:
    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny", vocab_size=300, init_std=0.1, labels=LABELS, **overrides)
    return SalesAIForSequenceClassification(cfg).eval()


def test_labels_are_validated_and_named_in_the_config() -> None:
    assert ModelConfig.from_name("tiny").num_labels == 0
    assert ModelConfig.from_name("tiny", labels=["a", "b"]).num_labels == 2
    with pytest.raises(SalesAIError, match="at least 2 distinct"):
        ModelConfig.from_name("tiny", labels=["a", "a"])
    with pytest.raises(SalesAIError, match="needs labels"):
        SalesAIForSequenceClassification(ModelConfig.from_name("tiny"))


@pytest.mark.parametrize("dense", [False, True])
def test_padding_left_or_right_gives_the_unpadded_logits(dense: bool) -> None:
    clf = _clf(num_experts=1) if dense else _clf()
    torch.manual_seed(1)
    seqs = [torch.randint(11, 300, (n,)).tolist() for n in (7, 3, 5)]
    alone = torch.cat([clf(torch.tensor([s])).logits for s in seqs])  # (3, C), no padding
    ids, mask = pad_batch(seqs, 0)  # right padding
    with torch.no_grad():
        right = clf(ids, attention_mask=mask).logits
        left_ids = torch.stack([torch.cat([i[m == 0], i[m == 1]]) for i, m in zip(ids, mask, strict=True)])
        left_mask = torch.stack([torch.cat([m[m == 0], m[m == 1]]) for m in mask])
        left = clf(left_ids, attention_mask=left_mask).logits
    assert right.shape == (3, 3)
    torch.testing.assert_close(right, alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(left, alone, rtol=1e-5, atol=1e-5)


def test_loss_is_cross_entropy_plus_aux_and_class_weights_apply() -> None:
    clf = _clf()
    ids, mask = pad_batch([[2, 40, 50, 3], [2, 60, 3]], 0)
    labels = torch.tensor([0, 2])
    out = clf(ids, attention_mask=mask, labels=labels)  # eval mode: no aux loss
    assert out.aux_loss is None
    expected = torch.nn.functional.cross_entropy(out.logits, labels)
    torch.testing.assert_close(out.loss, expected)
    weights = torch.tensor([1.0, 1.0, 3.0])
    weighted = clf(ids, attention_mask=mask, labels=labels, class_weights=weights).loss
    want = torch.nn.functional.cross_entropy(out.logits, labels, weight=weights)
    torch.testing.assert_close(weighted, want)
    clf.train()
    trained = clf(ids, attention_mask=mask, labels=labels)
    assert trained.aux_loss is not None and trained.aux_loss > 0
    torch.testing.assert_close(trained.loss, expected + trained.aux_loss)
    with pytest.raises(SalesAIError, match=r"labels: expected shape \(2,\)"):
        clf(ids, attention_mask=mask, labels=labels[:1])


def test_checkpoint_round_trip_returns_the_classifier(tmp_path: Path) -> None:
    clf, tok = _clf(tie_embeddings=True), ByteTokenizer()
    save_checkpoint(tmp_path / "clf", clf)  # (a ByteTokenizer file is not a SentencePiece model)
    loaded, no_tok = load_checkpoint(tmp_path / "clf")
    assert no_tok is None
    assert isinstance(loaded, SalesAIForSequenceClassification)
    assert loaded.labels == LABELS and "lm_head.weight" not in loaded.state_dict()
    texts = ["good", "bad and long text", ""]
    got, want = loaded.predict(texts, tok), clf.predict(texts, tok)
    assert [p["label"] for p in got] == [p["label"] for p in want]
    for g, w in zip(got, want, strict=True):
        assert set(g["probabilities"]) == set(LABELS)
        assert sum(g["probabilities"].values()) == pytest.approx(1.0)
        assert g["score"] == pytest.approx(w["score"], abs=1e-6)
        assert g["score"] == max(g["probabilities"].values())
    with pytest.raises(SalesAIError, match="does not generate text; use `salesai classify`"):
        loaded.generate(torch.tensor([[2, 40]]))
    assert loaded.num_parameters() == sum(p.numel() for p in loaded.parameters())
    assert loaded.num_parameters(active=True) < loaded.num_parameters()  # 2 of 4 experts per token
    with pytest.raises(SalesAIError, match="not a classifier"):
        SalesAIModel(ModelConfig.from_name("tiny")).save_pretrained(tmp_path / "lm")
        SalesAIForSequenceClassification.from_pretrained(tmp_path / "lm")


def test_init_from_a_language_model_copies_the_decoder() -> None:
    torch.manual_seed(3)
    lm = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=300))
    clf = SalesAIForSequenceClassification.from_language_model(lm, ["a", "b"])
    assert clf.config.labels == ["a", "b"] and lm.config.labels is None
    for name, tensor in lm.state_dict().items():
        if not name.startswith("lm_head"):
            assert torch.equal(clf.model.state_dict()[name], tensor), name
    assert clf.score.weight.shape == (2, 64)
    # the decoder is a copy: training the classifier leaves the language model alone
    before = lm.embed_tokens.weight.clone()
    with torch.no_grad():
        clf.model.embed_tokens.weight.add_(1.0)
    assert torch.equal(lm.embed_tokens.weight, before)


def test_encode_texts_keeps_bos_and_eos_within_max_len() -> None:
    tok = ByteTokenizer()
    ids = encode_texts(tok, ["abcdefgh", "x"], max_len=5)
    assert ids[0] == [2, *tok.encode("abc"), 3] and ids[1] == [2, *tok.encode("x"), 3]
