"""Numerical parity with Hugging Face transformers through the `hf` exporter (litgpt-style test).

A tiny 2-layer MoE model (-> MixtralForCausalLM) and a dense one (-> LlamaForCausalLM): the
exported directory loads with `from_pretrained`, logits agree to 1e-5 in float32 with and
without left padding, and greedy generation gives the same tokens. Skipped without transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from salesai.errors import SalesAIError
from salesai.export.hf import export_hf
from salesai.model.config import ModelConfig
from salesai.model.transformer import SalesAIModel

transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)

CASES: dict[str, tuple[dict, str, str]] = {
    "mixtral-hub": ({}, "hub", "MixtralForCausalLM"),
    "mixtral-stacked-tied": ({"tie_embeddings": True}, "stacked", "MixtralForCausalLM"),
    "llama-dense": ({"num_experts": 1}, "hub", "LlamaForCausalLM"),
}


def _pair(tmp_path: Path, overrides: dict, layout: str) -> tuple[SalesAIModel, Any]:
    torch.manual_seed(0)
    ours = SalesAIModel(ModelConfig.from_name("tiny", init_std=0.1, **overrides)).eval()
    theirs: Any
    out = export_hf(ours, None, tmp_path / "hf", layout=layout)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    return ours, theirs


@pytest.mark.parametrize("case", list(CASES))
def test_logits_and_greedy_generation_match(tmp_path: Path, case: str) -> None:
    overrides, layout, arch = CASES[case]
    if layout == "stacked" and int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("the stacked expert layout needs transformers >= 5")
    ours, theirs = _pair(tmp_path, overrides, layout)
    assert type(theirs).__name__ == arch
    torch.manual_seed(1)
    ids = torch.randint(3, 512, (3, 11))
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, :4] = 0
    mask[2, :9] = 0
    ids = ids.masked_fill(mask == 0, 0)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, theirs(ids).logits, rtol=1e-5, atol=1e-5)
        padded_ours = ours(ids, attention_mask=mask).logits
        padded_theirs = theirs(ids, attention_mask=mask).logits
        valid = mask.bool()
        torch.testing.assert_close(padded_ours[valid], padded_theirs[valid], rtol=1e-5, atol=1e-5)
        expected = theirs.generate(ids, attention_mask=mask, max_new_tokens=10, min_new_tokens=10,
                                   do_sample=False, pad_token_id=0, eos_token_id=None)
    got = ours.generate(ids, attention_mask=mask, max_new_tokens=10, temperature=0, stop_token_ids=[])
    assert torch.equal(got, expected)


def test_unsupported_models_are_refused(tmp_path: Path) -> None:
    gelu = SalesAIModel(ModelConfig.from_name("tiny", expert_type="gelu"))
    with pytest.raises(SalesAIError, match="expert_type='gelu' has no Mixtral/Llama equivalent"):
        export_hf(gelu, None, tmp_path / "a")
    shared = SalesAIModel(ModelConfig.from_name("tiny", num_shared_experts=1))
    with pytest.raises(SalesAIError, match="shared experts"):
        export_hf(shared, None, tmp_path / "b")
    with pytest.raises(SalesAIError, match="layout='flat'"):
        export_hf(SalesAIModel(ModelConfig.from_name("tiny")), None, tmp_path / "c", layout="flat")
