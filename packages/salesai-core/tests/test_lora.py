"""LoRA adapters (salesai.lora): config, targets, frozen base, merge equality, adapter checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from salesai.errors import SalesAIError
from salesai.lora import LoraConfig, LoraModel, apply_lora, load_adapter_checkpoint, load_base_for_lora
from salesai.lora.checkpoint import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE
from salesai.model import load_checkpoint, save_checkpoint
from salesai.model.config import ModelConfig
from salesai.model.transformer import SalesAIModel

SRC = Path(__file__).resolve().parents[1] / "src" / "salesai"


def _base(tmp_path: Path, seed: int = 0, **overrides: object) -> Path:
    torch.manual_seed(seed)
    model = SalesAIModel(ModelConfig.from_name("tiny", init_std=0.1, **overrides))
    return save_checkpoint(tmp_path / f"base-{seed}", model)


def _trained(model: LoraModel, seed: int = 1) -> LoraModel:
    """Give every adapter a non-zero B, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, a in model.named_adapters():
            a.lora_B.weight.copy_(torch.randn(a.lora_B.weight.shape, generator=g) * 0.05)
    return model.eval()


def test_parse_cli_spec() -> None:
    cfg = LoraConfig.parse("r=16,alpha=32,targets=attn,experts")
    assert (cfg.r, cfg.alpha, cfg.dropout, cfg.targets) == (16, 32.0, 0.0, ("attn", "experts"))
    assert cfg.scaling == 2.0
    assert LoraConfig.parse("targets=w2,r=4").targets == ("w2",)
    assert LoraConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(SalesAIError, match="unknown key 'rank'"):
        LoraConfig.parse("rank=4")
    with pytest.raises(SalesAIError, match="r='x' is not an integer"):
        LoraConfig.parse("r=x")
    with pytest.raises(SalesAIError, match=r"lora.r: expected an integer >= 1, got 0"):
        LoraConfig(r=0)
    assert LoraConfig.parse("base=bf16,targets=router").base == "bf16"
    with pytest.raises(SalesAIError, match=r"lora\.base: expected one of fp32, bf16, got 'int4'"):
        LoraConfig.parse("base=int4")
    with pytest.raises(SalesAIError, match=r"lora\.dropout"):
        LoraConfig(dropout=1.5)


@pytest.mark.parametrize(("targets", "count"), [
    (("attn",), 2 * 4),                      # 2 layers x q/k/v/o
    (("experts",), 2 * 4 * 3),               # 2 layers x 4 experts x w1/w2/w3
    (("w2",), 2 * 4),
    (("router", "lm_head"), 2 + 1),
    (("layers.0.*",), 4 + 1 + 4 * 3),        # a glob: everything linear in layer 0
    (("re:layers\\.1\\.self_attn\\.[qv]_proj",), 2),
])
def test_targets_select_layers(targets: tuple[str, ...], count: int) -> None:
    model = apply_lora(SalesAIModel(ModelConfig.from_name("tiny")), LoraConfig(r=2, targets=targets))
    assert len(model.adapters) == count


def test_bad_targets_are_refused() -> None:
    with pytest.raises(SalesAIError, match="'mlp_in' matches no linear layer"):
        apply_lora(SalesAIModel(ModelConfig.from_name("tiny")), LoraConfig(targets=("mlp_in",)))
    tied = SalesAIModel(ModelConfig.from_name("tiny", tie_embeddings=True))
    with pytest.raises(SalesAIError, match="lm_head is tied"):
        apply_lora(tied, LoraConfig(targets=("lm_head",)))


def test_base_frozen_only_adapters_learn() -> None:
    torch.manual_seed(0)
    config = LoraConfig(r=4, targets=("attn", "experts"))
    model = apply_lora(SalesAIModel(ModelConfig.from_name("tiny")), config)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("adapters.") for n in trainable)
    assert model.num_adapter_parameters() == sum(p.numel() for p in model.parameters() if p.requires_grad)
    ids = torch.randint(3, 512, (2, 16))
    with torch.no_grad():
        fresh = model(ids).logits
        with model.disabled():
            base = model(ids).logits
    torch.testing.assert_close(fresh, base)  # B = 0: a fresh adapter changes nothing
    model.train()
    model(ids, labels=ids).loss.backward()
    assert all(p.grad is None for p in model.base.parameters())
    grads = [a.lora_B.weight.grad for _, a in model.named_adapters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_merge_unmerge_and_generation_equal_merged(tmp_path: Path) -> None:
    config = LoraConfig.parse("r=4,alpha=8,targets=attn,experts,router")
    model = _trained(load_base_for_lora(_base(tmp_path), config))
    ids = torch.randint(3, 512, (2, 12))
    with torch.no_grad():
        adapted = model(ids).logits
        with model.disabled():
            base = model(ids).logits
        assert (adapted - base).abs().max() > 1e-2  # the adapter does something
        model.merge()
        torch.testing.assert_close(model(ids).logits, adapted, rtol=1e-5, atol=1e-5)
        model.unmerge()
        torch.testing.assert_close(model(ids).logits, adapted, rtol=1e-5, atol=1e-5)
    got = model.generate(ids, max_new_tokens=12, temperature=0, stop_token_ids=[])
    merged = model.merged_model()
    assert isinstance(merged, SalesAIModel) and not isinstance(merged, LoraModel)
    assert torch.equal(merged.generate(ids, max_new_tokens=12, temperature=0, stop_token_ids=[]), got)


def test_adapter_checkpoint_round_trip(tmp_path: Path) -> None:
    base_dir = _base(tmp_path)
    model = _trained(load_base_for_lora(base_dir, LoraConfig(r=2, targets=("attn",))))
    out = model.save_pretrained(tmp_path / "ft")
    assert sorted(p.name for p in out.iterdir()) == [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, "config.json"]
    size = (out / ADAPTER_WEIGHTS_FILE).stat().st_size
    assert size < (base_dir / "model.safetensors").stat().st_size / 20  # adapter weights only
    meta = json.loads((out / ADAPTER_CONFIG_FILE).read_text())
    assert meta["lora"] == {"r": 2, "alpha": 32.0, "dropout": 0.0, "targets": ["attn"], "base": "fp32",
                            "train": []}
    assert meta["base"]["fingerprint"].startswith("sha256:")
    loaded, tokenizer = load_checkpoint(out)  # base + adapter
    assert isinstance(loaded, LoraModel) and tokenizer is None
    ids = torch.randint(3, 512, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)

    # the pair of directories moved together still loads (base found through its relative path)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(base_dir), moved / base_dir.name)
    shutil.move(str(out), moved / "ft")
    with torch.no_grad():
        torch.testing.assert_close(load_adapter_checkpoint(moved / "ft")(ids).logits, model(ids).logits)


def test_mismatched_or_missing_base_is_one_clear_error(tmp_path: Path) -> None:
    base_dir = _base(tmp_path)
    model = load_base_for_lora(base_dir, LoraConfig(r=2))
    out = model.save_pretrained(tmp_path / "ft")
    other = SalesAIModel(ModelConfig.from_name("tiny", init_std=0.3))
    save_checkpoint(base_dir, other)  # the base was retrained in place
    with pytest.raises(SalesAIError, match=r"adapter trained on a base with fingerprint sha256:.*, but "):
        load_checkpoint(out)
    shutil.rmtree(base_dir)
    with pytest.raises(SalesAIError, match=r"its base checkpoint .* is missing"):
        load_checkpoint(out)


def test_adapter_checkpoint_is_not_a_base(tmp_path: Path) -> None:
    out = load_base_for_lora(_base(tmp_path), LoraConfig(r=2)).save_pretrained(tmp_path / "ft")
    with pytest.raises(SalesAIError, match="an adapter checkpoint, not a base model; merge it first"):
        load_base_for_lora(out, LoraConfig(r=2))


def test_lora_imports_point_down() -> None:
    import ast

    for path in (SRC / "lora").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("salesai.train", "salesai.data", "salesai.cli",
                                                   "salesai.export")), (path.name, node.module)


def test_docs_page_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    page = Path(__file__).resolve().parents[3] / "docs" / "lora.md"
    if not page.is_file():
        pytest.skip("runs from a repository checkout (docs/ not found)")
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    blocks = [b for b in blocks if "from peft" not in b]  # (the PEFT block is tests/test_lora_peft.py's job)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_lora"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page}[python block {i}]", "exec"), namespace)
    assert (tmp_path / "ft" / "step-000004" / "adapter_model.safetensors").is_file()


def test_classifier_adapters_with_a_head_trained_in_full(tmp_path: Path) -> None:
    from salesai.model.classifier import SalesAIForSequenceClassification

    torch.manual_seed(0)
    clf = SalesAIForSequenceClassification(ModelConfig.from_name("tiny", labels=["neg", "pos"]))
    base_dir = save_checkpoint(tmp_path / "clf", clf)
    config = LoraConfig.parse("r=2,alpha=4,targets=attn,train=score")
    assert config.train == ("score",) and config.targets == ("attn",)
    model = load_base_for_lora(base_dir, config)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "base.score.weight" in trainable and not any(n.startswith("base.model.") for n in trainable)
    ids = torch.randint(3, 512, (4, 10))
    labels = torch.tensor([0, 1, 0, 1])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        model(ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    out = model.save_pretrained(tmp_path / "ft")
    loaded, _ = load_checkpoint(out)  # base classifier + adapters + the trained head
    assert isinstance(loaded, LoraModel) and isinstance(loaded.base, SalesAIForSequenceClassification)
    with torch.no_grad():
        expected = model(ids).logits
        torch.testing.assert_close(loaded(ids).logits, expected)
        merged = loaded.merged_model()
        torch.testing.assert_close(merged(ids).logits, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(SalesAIError, match=r"lora\.train: 'head' matches no module"):
        load_base_for_lora(base_dir, LoraConfig(targets=("attn",), train=("head",)))


def test_bf16_autocast_forward_and_backward(tmp_path: Path) -> None:
    model = _trained(load_base_for_lora(_base(tmp_path), LoraConfig.parse("r=4,targets=attn,experts")))
    ids = torch.randint(3, 512, (2, 12))
    with torch.no_grad():
        reference = model(ids).logits
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, labels=ids)
    assert out.logits.dtype == torch.bfloat16
    torch.testing.assert_close(out.logits.float(), reference, rtol=0.05, atol=0.1)
    out.loss.backward()
    assert all(a.lora_A.weight.grad is not None and a.lora_A.weight.grad.dtype == torch.float32
               for _, a in model.named_adapters())
