"""Prompt/response and media records: labels, placeholders, errors naming the line, Trainer, resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from salesai import ModelConfig, SalesAIModel
from salesai.data.records import IGNORE, RecordDataset, load_records
from salesai.errors import SalesAIError
from salesai.testing import ByteTokenizer, ToyEncoders, npy_bytes, register_plugin
from salesai.train.trainer import TrainConfig, Trainer

IMG = 4
TOY = {"image": {"type": "toy-patches", "size": 16, "patch": 8}}
TOK = ByteTokenizer()


@pytest.fixture(autouse=True)
def toy_encoder() -> Iterator[None]:
    with register_plugin(ToyEncoders):
        yield


def write(tmp: Path, records: list[dict], name: str = "data.jsonl") -> Path:
    for i in range(4):
        arr = np.full((3, 16, 16), (i - 1.5) / 2, dtype=np.float32)
        arr[i % 3, : 4 * (i + 1)] = 1.0
        (tmp / f"{i}.npy").write_bytes(npy_bytes(arr))
    path = tmp / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def enc(text: str) -> list[int]:
    return TOK.encode(text)


def test_prompt_response_loss_on_response_only(tmp_path: Path) -> None:
    path = write(tmp_path, [{"prompt": "Q?", "response": "ok", "task": "x"}])
    [s] = load_records(path, TOK)
    assert s.ids == [2, *enc("Q?"), *enc(" ok"), 3]  # one space joins prompt and response
    assert s.labels == [IGNORE] * 3 + [*enc(" ok"), 3]
    assert s.where == f"{path}:1"


def test_text_with_image_gets_a_placeholder_in_front(tmp_path: Path) -> None:
    two = {"prompt": "<image> and <image>?", "response": "two", "image": ["0.npy", "1.npy"]}
    path = write(tmp_path, [{"text": "a cat", "image": "0.npy"}, two])
    a, b = load_records(path, TOK, {"image": IMG})
    assert a.ids == [2, IMG, *enc("a cat"), 3] and a.labels == [IGNORE, IGNORE, *enc("a cat"), 3]
    assert a.media == {"image": [tmp_path / "0.npy"]}
    n_prompt = 1 + len(enc("<image> and <image>?"))
    assert b.ids.count(IMG) == 2 and all(lab == IGNORE for lab in b.labels[:n_prompt])
    assert b.media["image"] == [tmp_path / "0.npy", tmp_path / "1.npy"]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prompt": "<image> <image>", "response": "x", "image": "0.npy"},
         r":2: 2 <image> placeholder\(s\) but 1"),
        ({"prompt": "<image>", "response": "x"}, r":2: 1 <image> placeholder\(s\) but 0 image"),
        ({"text": "x", "image": "missing.npy"}, r":2: image file .*missing.npy not found"),
        ({"prompt": "x"}, ":2: a prompt/response record needs both"),
        ({"text": "x", "audio": "0.npy"}, ":2: the record has audio input but the model has no audio"),
    ],
)
def test_bad_records_name_the_line(tmp_path: Path, record: dict, message: str) -> None:
    path = write(tmp_path, [{"text": "fine", "image": "0.npy"}, record])
    with pytest.raises(SalesAIError, match=message):
        load_records(path, TOK, {"image": IMG})


def model() -> SalesAIModel:
    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny", vocab_size=len(TOK), encoders=TOY)
    return SalesAIModel(cfg)


def dataset(tmp: Path, m: SalesAIModel) -> RecordDataset:
    colours = ["red", "green", "blue", "gold"]
    recs = [{"prompt": "<image> colour?", "response": colours[i % 4], "image": f"{i % 4}.npy"}
            for i in range(16)]
    recs += [{"text": f"picture {i}", "image": [f"{i % 4}.npy", f"{(i + 1) % 4}.npy"]} for i in range(4)]
    return RecordDataset.from_files(write(tmp, recs), TOK, seq_len=64, model=m)


def test_batches_pad_and_stack_media(tmp_path: Path) -> None:
    m = model()
    ds = dataset(tmp_path, m)
    batch = ds.batch([0, 16])  # one image, then two images
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["media"]["image"].shape == (3, 3, 16, 16)
    assert batch["attention_mask"][0].sum() == len(ds.samples[0].ids)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()
    out = m(**batch)
    n0, n1 = batch["attention_mask"].sum(1).tolist()
    assert torch.isfinite(out.loss) and out.logits.shape[1] == max(n0 + 3, n1 + 2 * 3)  # N = 4 per image


def config(out: Path, **kw: object) -> TrainConfig:
    base = dict(max_steps=8, batch_size=4, seq_len=64, grad_accum=2, warmup_steps=2, lr=3e-3, min_lr=3e-4,
                eval_every=4, eval_steps=1, save_every=4, keep_last=2, log_every=1, precision="fp32",
                out_dir=str(out), seed=3)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_trainer_on_records_learns_and_resumes_exactly(tmp_path: Path) -> None:
    def trainer(out: Path, seed: int = 0) -> Trainer:
        torch.manual_seed(seed)
        m = model()
        ds = dataset(tmp_path, m)
        return Trainer(m, config(out), ds, ds, progress=False, log=lambda _m: None)

    full = trainer(tmp_path / "a").fit()
    assert full.losses[-1] < full.losses[0]
    assert full.evals[-1]["val_tokens"] > 0 and np.isfinite(full.evals[-1]["val_loss"])
    first = trainer(tmp_path / "b").fit(stop_at_step=4)
    second = trainer(tmp_path / "b", seed=99).fit(resume=True)
    np.testing.assert_allclose(first.losses + second.losses, full.losses, rtol=0, atol=1e-6)
    a = SalesAIModel.from_pretrained(tmp_path / "a" / "step-000008").state_dict()
    b = SalesAIModel.from_pretrained(tmp_path / "b" / "step-000008").state_dict()
    assert any(k.startswith("encoders.") for k in a)
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)


def test_freeze_and_init_from_a_text_checkpoint(tmp_path: Path) -> None:
    from salesai.train.multimodal import freeze, init_model

    torch.manual_seed(1)
    text = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(TOK)))
    text.save_pretrained(tmp_path / "text")
    m = init_model(tmp_path / "text", model().config)
    assert set(m.encoders) == {"image"}
    torch.testing.assert_close(m.embed_tokens.weight, text.embed_tokens.weight)  # decoder loaded
    torch.testing.assert_close(m.layers[1].self_attn.q_proj.weight, text.layers[1].self_attn.q_proj.weight)
    freeze(m, ["encoder", "decoder"], log=lambda _m: None)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("projectors.") for n in trainable)  # LLaVA stage 1
    with pytest.raises(SalesAIError, match="--freeze-encoder: the model has no encoders"):
        freeze(text, ["encoder"])
    with pytest.raises(SalesAIError, match="does not fit the model config"):
        init_model(tmp_path / "text", model().config.replace(hidden_dim=32, num_heads=2, num_kv_heads=1))
