"""LoRA through the Trainer and the CLI: adapter-only optimizer and checkpoints, exact resume,
`salesai train --init --lora`, generate, eval, `salesai lora merge`/`info`."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

import salesai
from salesai.lora import LoraConfig, LoraModel, load_base_for_lora
from salesai.lora.checkpoint import lora_for_training
from salesai.model import load_checkpoint, save_checkpoint
from salesai.testing import run_cli
from salesai.train.trainer import TrainConfig, Trainer


def _tokens(n: int = 4000) -> torch.Tensor:
    return torch.randint(4, 512, (n,), generator=torch.Generator().manual_seed(0))


def _base(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "base", salesai.SalesAIModel(salesai.ModelConfig.from_name("tiny")))


def _trainer(model: LoraModel, out: Path) -> Trainer:
    cfg = TrainConfig(max_steps=8, batch_size=2, seq_len=24, grad_accum=2, warmup_steps=2, lr=5e-3,
                      min_lr=5e-4, eval_every=4, eval_steps=2, save_every=4, log_every=1, precision="fp32",
                      out_dir=str(out), seed=3)
    data = _tokens()
    return Trainer(model, cfg, data, data[:500], progress=False, log=lambda _m: None)


def test_trainer_optimizes_adapters_only_and_resumes_exactly(tmp_path: Path) -> None:
    base_dir = _base(tmp_path)
    config = LoraConfig(r=4, alpha=8, dropout=0.1, targets=("attn", "experts"))
    torch.manual_seed(1)
    model = load_base_for_lora(base_dir, config)
    before = {k: v.clone() for k, v in model.base.state_dict().items()}
    full = _trainer(model, tmp_path / "a")
    optimized = sum(p.numel() for g in full.optimizer.param_groups for p in g["params"])
    assert optimized == model.num_adapter_parameters()
    result = full.fit()
    assert result.losses[-1] < result.losses[0]
    assert all(torch.equal(before[k], v) for k, v in model.base.state_dict().items())  # base untouched

    ckpt = tmp_path / "a" / "step-000008"
    assert not (ckpt / "model.safetensors").exists()
    base_bytes = (base_dir / "model.safetensors").stat().st_size
    assert (ckpt / "adapter_model.safetensors").stat().st_size < base_bytes / 5
    assert (ckpt / "trainer_state" / "optimizer.safetensors").is_file()

    torch.manual_seed(1)
    first = _trainer(load_base_for_lora(base_dir, config), tmp_path / "b").fit(stop_at_step=4)
    resumed_model = lora_for_training(None, None, tmp_path / "b" / "step-000004", log=lambda _m: None)
    second = _trainer(resumed_model, tmp_path / "b").fit(resume=True)
    assert second.step == 8
    np.testing.assert_allclose(first.losses + second.losses, result.losses, rtol=0, atol=1e-6)
    a, _ = load_checkpoint(ckpt)
    b, _ = load_checkpoint(tmp_path / "b")
    ids = _tokens(30)[None]
    with torch.no_grad():
        torch.testing.assert_close(a(ids).logits, b(ids).logits, rtol=0, atol=1e-6)


def test_bf16_base_trains_fp32_adapters(tmp_path: Path) -> None:
    base_dir = _base(tmp_path)
    model = lora_for_training("r=4,alpha=8,base=bf16,targets=attn,experts", base_dir, log=lambda _m: None)
    assert {p.dtype for p in model.base.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.adapters.parameters()} == {torch.float32}
    result = _trainer(model, tmp_path / "run").fit()
    reference = _trainer(lora_for_training("r=4,alpha=8,targets=attn,experts", base_dir, log=lambda _m: None),
                         tmp_path / "fp32").fit()
    np.testing.assert_allclose(result.losses, reference.losses, atol=0.05)  # bf16 base: about the same run
    assert all(a.lora_B.weight.abs().max() > 0 for _, a in model.named_adapters())
    loaded, _ = load_checkpoint(tmp_path / "run")  # inference: the base as stored (fp32)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    ids = _tokens(20)[None]
    with torch.no_grad():  # the bf16 base trained the same adapters the fp32 base now carries
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits.float(), rtol=0.05, atol=0.05)


def _corpus(folder: Path) -> Path:
    folder.mkdir()
    rng = random.Random(0)
    for i in range(4):
        body = "".join(f"def f{i}_{j}(x):\n    return x * {rng.randrange(100)} + {j}\n\n" for j in range(120))
        (folder / f"m{i}.py").write_text(body)
    return folder


def test_cli_train_lora_generate_eval_merge(tmp_path: Path) -> None:
    data = _corpus(tmp_path / "data")
    config = tmp_path / "c.yaml"
    config.write_text("preset: tiny\ntraining:\n  batch_size: 4\n  seq_len: 64\n  warmup_steps: 1\n"
                      "  eval_every: 0\n  eval_steps: 2\n  save_every: 0\n  precision: fp32\n")
    common = ["--config", str(config), "--data", str(data), "--threads", "1", "--json"]
    r = run_cli(["train", *common, "--out", str(tmp_path / "pre"), "--max-steps", "2", "--vocab-size", "300"])
    assert r.exit_code == 0, r.stderr
    base = json.loads(r.stdout)["checkpoint"]

    ft = tmp_path / "ft"
    r = run_cli(["train", *common, "--init", base, "--lora", "r=4,alpha=8,targets=attn,experts",
                 "--out", str(ft), "--max-steps", "3"])
    assert r.exit_code == 0, r.stderr
    assert "trainable parameters" in r.stderr and "base frozen" in r.stderr
    ckpt = Path(json.loads(r.stdout)["checkpoint"])
    assert (ckpt / "adapter_config.json").is_file() and (ckpt / "tokenizer.model").is_file()

    r = run_cli(["train", *common, "--out", str(ft), "--max-steps", "4", "--resume"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 4 and "resumed from" in r.stderr

    ev = run_cli(["eval", str(ft), "--data", str(data / "m0.py"), "--seq-len", "64", "--json"])
    assert ev.exit_code == 0, ev.stderr

    info = run_cli(["lora", "info", str(ft), "--json"])
    assert info.exit_code == 0, info.stderr
    assert json.loads(info.stdout)["lora"]["targets"] == ["attn", "experts"]

    merged = tmp_path / "merged"
    m = run_cli(["lora", "merge", str(ft), "--out", str(merged)])
    assert m.exit_code == 0, m.stderr
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    gen = ["--temperature", "0", "-n", "12", "--no-bos"]
    with_adapter = run_cli(["generate", str(ft), "def f", *gen])
    with_merged = run_cli(["generate", str(merged), "def f", *gen])
    assert with_adapter.exit_code == 0, with_adapter.stderr
    assert with_merged.exit_code == 0, with_merged.stderr
    assert with_adapter.stdout == with_merged.stdout

    bad = run_cli(["train", *common, "--lora", "r=4", "--out", str(tmp_path / "x"), "--max-steps", "1"])
    assert bad.exit_code == 2 and "--lora: needs --init CHECKPOINT" in bad.stderr
    bad = run_cli(["lora", "merge", base, "--out", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "not a LoRA adapter checkpoint" in bad.stderr


def test_cli_lora_with_classify_is_refused(tmp_path: Path) -> None:
    r = run_cli(["train", "--task", "classify", "--lora", "r=4", "--data", str(tmp_path), "--out",
                 str(tmp_path / "o")])
    assert r.exit_code == 2 and "--lora: with --task lm only for now" in r.stderr
