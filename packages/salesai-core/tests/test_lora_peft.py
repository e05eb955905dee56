"""LoRA interop: `salesai export --format hf` of an adapter checkpoint loads with transformers + PEFT
(`PeftModel.from_pretrained`), logits equal to ours to 1e-5; ONNX export merges first.
Skipped without transformers/peft (the core's `hf` and `test` extras install them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from salesai.lora import LoraConfig, LoraModel, load_base_for_lora
from salesai.model import load_checkpoint, save_checkpoint
from salesai.model.config import ModelConfig
from salesai.model.transformer import SalesAIModel
from salesai.testing import run_cli

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
if int(transformers.__version__.split(".")[0]) < 5:
    pytest.skip("PEFT adapters are written with transformers 5 module names", allow_module_level=True)

CASES: dict[str, tuple[dict[str, Any], str]] = {
    "moe-attn-experts": ({}, "r=4,alpha=8,targets=attn,experts"),
    "moe-router-head-w2": ({}, "r=2,alpha=4,targets=router,lm_head,w2"),
    "moe-some-experts": ({}, "r=3,alpha=3,targets=layers.1.mlp.experts.2.w3,q_proj"),
    "dense-all": ({"num_experts": 1}, "r=4,alpha=16,targets=attn,experts,lm_head"),
}


def _adapter_checkpoint(tmp_path: Path, overrides: dict[str, Any], spec: str) -> tuple[Path, LoraModel]:
    torch.manual_seed(0)
    base = save_checkpoint(tmp_path / "base", SalesAIModel(ModelConfig.from_name("tiny", init_std=0.1,
                                                                                **overrides)))
    model = load_base_for_lora(base, LoraConfig.parse(spec))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, a in model.named_adapters():
            a.lora_B.weight.copy_(torch.randn(a.lora_B.weight.shape, generator=g) * 0.1)
    return model.save_pretrained(tmp_path / "ft"), model.eval()


@pytest.mark.parametrize("case", list(CASES))
def test_peft_loads_our_adapter_with_equal_logits(tmp_path: Path, case: str) -> None:
    overrides, spec = CASES[case]
    ckpt, ours = _adapter_checkpoint(tmp_path, overrides, spec)
    r = run_cli(["export", str(ckpt), "--format", "hf", "--out", str(tmp_path / "hf")])
    assert r.exit_code == 0, r.stderr
    config = json.loads((tmp_path / "hf" / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["lora_alpha"] / config["r"] == ours.lora_config.scaling
    base = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    theirs = peft.PeftModel.from_pretrained(base, tmp_path / "hf" / "adapter").eval()
    ids = torch.randint(3, 512, (2, 13), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = ours(ids).logits
        with ours.disabled():
            plain = ours(ids).logits
        assert (got - plain).abs().max() > 1e-3  # the adapter changes the logits
        torch.testing.assert_close(theirs(input_ids=ids).logits, got, rtol=1e-5, atol=1e-5)


def test_onnx_and_safetensors_exports_merge_first(tmp_path: Path) -> None:
    ckpt, ours = _adapter_checkpoint(tmp_path, {}, "r=2,alpha=4,targets=attn")
    r = run_cli(["export", str(ckpt), "--format", "safetensors", "--out", str(tmp_path / "st")])
    assert r.exit_code == 0, r.stderr
    merged, _ = load_checkpoint(tmp_path / "st")
    assert isinstance(merged, SalesAIModel) and not isinstance(merged, LoraModel)
    ids = torch.randint(3, 512, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, ours(ids).logits, rtol=1e-5, atol=1e-5)
    pytest.importorskip("onnxruntime")
    r = run_cli(["export", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "onnx")])
    assert r.exit_code == 0, r.stderr
    assert any(p.suffix == ".onnx" for p in (tmp_path / "onnx").rglob("*"))
