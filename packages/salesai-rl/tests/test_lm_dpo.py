"""DPO trainer on a tiny MoE model: batch layout, precomputed vs live reference, learning, resume."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from salesai import ModelConfig, SalesAIModel
from salesai.errors import SalesAIError
from salesai.testing import ByteTokenizer
from salesai_rl.lm.dpo import DPOConfig, DPOTrainer, pair_batch

torch.set_num_threads(1)
PAIRS = [{"prompt": f"{a}+{b}=", "chosen": str(a + b), "rejected": str(a + b + 1)}
         for a, b in [(1, 2), (3, 4), (2, 2), (5, 1), (0, 7), (4, 4), (6, 2), (1, 1)]]


def _model() -> SalesAIModel:
    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny", vocab_size=267, hidden_dim=32, intermediate_dim=32, max_seq_len=64)
    return SalesAIModel(cfg)


def test_pair_batch_puts_chosen_rows_first_and_ends_with_eos() -> None:
    tok = ByteTokenizer()
    batch = pair_batch(tok, PAIRS[:2], 512)
    assert batch.input_ids.shape[0] == 4
    chosen_0 = batch.completion_ids[0][batch.completion_mask[0].bool()].tolist()
    rejected_0 = batch.completion_ids[2][batch.completion_mask[2].bool()].tolist()
    assert chosen_0 == [*tok.encode("3"), tok.eos_id]
    assert rejected_0 == [*tok.encode("4"), tok.eos_id]


def test_first_step_is_log2_and_precomputed_equals_live_reference() -> None:
    cfg = dict(steps=1, batch_size=4, lr=1e-3)
    pre = DPOTrainer(_model(), ByteTokenizer(), PAIRS, DPOConfig(**cfg), log=None)
    live = DPOTrainer(_model(), ByteTokenizer(), PAIRS, DPOConfig(**cfg, precompute_ref=False), log=None)
    a, b = pre.step(), live.step()
    assert a["loss"] == pytest.approx(math.log(2), abs=1e-5)  # policy == reference: margin 0
    assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    assert a["rewards/margins"] == pytest.approx(0.0, abs=1e-6) and "aux_loss" in a


def test_dpo_learns_the_preferences_and_resumes(tmp_path: Path) -> None:
    model = _model()
    ref = copy.deepcopy(model)
    cfg = dict(batch_size=8, lr=3e-3, beta=0.1, save_every=10)
    first = DPOTrainer(model, ByteTokenizer(), PAIRS, DPOConfig(steps=10, **cfg), tmp_path, ref_model=ref,
                       log=None)
    first.train()
    again = DPOTrainer(_model(), ByteTokenizer(), PAIRS, DPOConfig(steps=20, **cfg), tmp_path, ref_model=ref,
                       log=None)
    summary = again.train(resume=True)
    assert summary["start_step"] == 10 and summary["steps"] == 20
    assert again.evaluate(PAIRS, ref_model=ref)["accuracy"] == 1.0
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 21))
    assert lines[-1]["rewards/margins"] > lines[0]["rewards/margins"]
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracies"} <= set(lines[-1])


def test_config_errors() -> None:
    with pytest.raises(SalesAIError, match="beta=0"):
        DPOConfig(beta=0).validate()
    with pytest.raises(SalesAIError, match="no records"):
        DPOTrainer(_model(), ByteTokenizer(), [], DPOConfig(), log=None)
