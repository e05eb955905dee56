"""Trainer: config validation, schedule, decay groups, data order, training, eval, metrics, CLI."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import salesai
from salesai.data import SampleOrder, TokenSequences
from salesai.errors import SalesAIError
from salesai.testing import run_cli
from salesai.train import distributed as D
from salesai.train.config import TrainConfig, load_run_config, run_config_from_dict
from salesai.train.trainer import (
    Trainer,
    evaluate,
    lr_at,
    micro_indices,
    param_groups,
    resolve_precision,
)


def tiny_model(seed: int = 0, **overrides: object) -> salesai.SalesAIModel:
    torch.manual_seed(seed)
    return salesai.SalesAIModel(salesai.ModelConfig.from_name("tiny", **overrides))


def learnable_tokens(n: int = 6000, seed: int = 0) -> torch.Tensor:
    """A token stream with structure (repeating phrases), so the loss must fall quickly."""
    rng = random.Random(seed)
    phrases = [[rng.randrange(4, 512) for _ in range(rng.randrange(3, 8))] for _ in range(12)]
    out: list[int] = []
    while len(out) < n:
        out += rng.choice(phrases)
    return torch.tensor(out[:n])


def cfg(tmp_path: Path, **kw: object) -> TrainConfig:
    base = dict(max_steps=6, batch_size=4, seq_len=32, warmup_steps=2, lr=3e-3, min_lr=3e-4,
                eval_every=3, eval_steps=2, save_every=3, log_every=1, precision="fp32",
                out_dir=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- config
def test_train_config_validates_every_key() -> None:
    with pytest.raises(SalesAIError, match=r"TrainConfig\.lr: expected a number in \[0, 10\], got -1"):
        TrainConfig(lr=-1)
    with pytest.raises(SalesAIError, match=r"batch_size: expected an integer >= 1, got 0"):
        TrainConfig(batch_size=0)
    with pytest.raises(SalesAIError, match=r"precision: expected one of auto, fp32, bf16, got 'fp16'"):
        TrainConfig(precision="fp16")
    with pytest.raises(SalesAIError, match=r"betas: expected two numbers in \[0, 1\)"):
        TrainConfig(betas=(0.9,))  # type: ignore[arg-type]
    with pytest.raises(SalesAIError, match=r"min_lr: expected a number <= lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3)
    with pytest.raises(SalesAIError, match=r"training: unknown key 'learning_rate'; known keys: .*\blr\b"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    with pytest.raises(SalesAIError, match=r"training\.max_steps: expected an integer >= 1, got 'ten'"):
        TrainConfig.from_dict({"max_steps": "ten"})
    assert TrainConfig.from_dict({"lr": "3e-4", "max_steps": 10.0}).lr == pytest.approx(3e-4)


@pytest.mark.parametrize("suffix", ["yaml", "json", "toml"])
def test_config_files(tmp_path: Path, suffix: str) -> None:
    text = {
        "yaml": "preset: tiny\nmodel:\n  num_experts: 2\n  top_k: 1\ntraining:\n  lr: 1e-3\n  max_steps: 7\n",
        "json": json.dumps({"preset": "tiny", "model": {"num_experts": 2, "top_k": 1},
                            "training": {"lr": 1e-3, "max_steps": 7}}),
        "toml": 'preset = "tiny"\n[model]\nnum_experts = 2\ntop_k = 1\n'
                '[training]\nlr = 1e-3\nmax_steps = 7\n',
    }[suffix]
    path = tmp_path / f"run.{suffix}"
    path.write_text(text)
    run = load_run_config(path)
    assert (run.training.lr, run.training.max_steps) == (1e-3, 7)
    mc = run.model_config()
    assert (mc.num_experts, mc.top_k, mc.hidden_dim) == (2, 1, 64)


def test_config_file_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(SalesAIError, match=r"unknown section 'optimizer'; expected preset, model, training"):
        run_config_from_dict({"optimizer": {}})
    with pytest.raises(SalesAIError, match=r"bad\.yaml\.training\.warmup_steps: expected an integer >= 0"):
        (tmp_path / "bad.yaml").write_text("training:\n  warmup_steps: -5\n")
        load_run_config(tmp_path / "bad.yaml")
    with pytest.raises(SalesAIError, match=r"m\.yaml' could not be parsed: expected ',' or '\]'.* at line 2"):
        (tmp_path / "m.yaml").write_text("training: [unclosed\n")
        load_run_config(tmp_path / "m.yaml")
    with pytest.raises(SalesAIError, match=r"unknown model setting 'widht'"):
        run_config_from_dict({"preset": "tiny", "model": {"widht": 3}}).model_config()


# ------------------------------------------------------------------------ schedule and groups
def test_lr_warmup_then_cosine_to_floor() -> None:
    c = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=4, max_steps=14)
    assert [lr_at(s, c) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, c) == pytest.approx(1.0)
    assert lr_at(9, c) == pytest.approx(0.55)  # half way down the cosine
    assert lr_at(14, c) == pytest.approx(0.1) and lr_at(100, c) == pytest.approx(0.1)


def test_no_weight_decay_on_norms_biases_embeddings() -> None:
    model = tiny_model(tie_embeddings=True)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    decay_names = {names[id(p)] for p in decay["params"]}
    assert "embed_tokens.weight" in no_decay_names and "norm.weight" in no_decay_names
    assert all("layernorm" not in n and n != "embed_tokens.weight" for n in decay_names)
    assert "layers.0.mlp.experts.0.w1.weight" in decay_names
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    n_params = len({id(p) for p in model.parameters()})
    assert len(decay["params"]) + len(no_decay["params"]) == n_params


def test_auto_precision_resolution() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("auto", cpu) in ("fp32", "bf16")


# ------------------------------------------------------------------------------------ data
def test_token_sequences_overlap_by_one_token() -> None:
    seqs = TokenSequences(np.arange(100, dtype=np.uint16), 10)
    assert len(seqs) == 11  # (100 - 1) // 9
    assert seqs[0].tolist() == list(range(10)) and seqs[1].tolist()[0] == 9
    assert seqs[0].dtype == torch.int64
    with pytest.raises(SalesAIError, match="no complete sequence of 10 tokens"):
        TokenSequences(np.arange(5), 10)


def test_sample_order_shards_like_one_big_batch() -> None:
    order = SampleOrder(50, seed=3)
    one = TrainConfig(batch_size=4, grad_accum=1)
    half = TrainConfig(batch_size=2, grad_accum=1)
    accum = TrainConfig(batch_size=2, grad_accum=2)
    for step in range(30):  # crosses epoch boundaries
        big = micro_indices(step, 0, one, D.DistInfo(), order)
        ranks = [micro_indices(step, 0, half, D.DistInfo(r, 2), order) for r in range(2)]
        micros = [micro_indices(step, m, accum, D.DistInfo(), order) for m in range(2)]
        assert big == ranks[0] + ranks[1] == micros[0] + micros[1]
    epoch0 = [order(i) for i in range(50)]
    assert sorted(epoch0) == list(range(50)) and epoch0 != list(range(50))
    assert [order(i) for i in range(50, 100)] != epoch0  # a new permutation per epoch


# ---------------------------------------------------------------------------------- training
def test_training_lowers_loss_and_writes_metrics_and_checkpoints(tmp_path: Path) -> None:
    tokens = learnable_tokens()
    c = cfg(tmp_path, max_steps=30, eval_every=15, save_every=15, keep_last=1, log_every=5)
    trainer = Trainer(tiny_model(), c, tokens, tokens[:1200], progress=False, log=lambda _m: None)
    result = trainer.fit()
    assert result.step == 30 and len(result.losses) == 30
    assert result.losses[-1] < result.losses[0] - 1.0  # structured data: clearly learned
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in train] == [5, 10, 15, 20, 25, 30]
    assert {"loss", "aux_loss", "lr", "grad_norm", "tokens", "tokens_per_s"} <= set(train[0])
    assert train[-1]["tokens"] == 30 * 4 * 32
    assert [r["step"] for r in evals] == [15, 30]
    assert evals[-1]["val_perplexity"] == pytest.approx(math.exp(evals[-1]["val_loss"]))
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    usage = evals[-1]["expert_usage"]
    assert len(usage) == 2 and sum(usage[0]["share"]) == pytest.approx(1.0)
    run = tmp_path / "run"
    kept = sorted(p.name for p in run.iterdir() if p.name.startswith("step-"))
    assert kept == ["step-000030"]  # keep_last=1
    assert (run / "latest").read_text().strip() == "step-000030"
    ckpt = run / "step-000030"
    assert {"config.json", "model.safetensors", "trainer_state"} <= {p.name for p in ckpt.iterdir()}
    assert {p.name for p in (ckpt / "trainer_state").iterdir()} == {
        "state.json", "optimizer.safetensors", "rng-rank0.safetensors", "rng-rank0.json"}
    reloaded = salesai.SalesAIModel.from_pretrained(ckpt)
    theirs = reloaded.state_dict()
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name


def test_grad_accumulation_matches_a_big_batch(tmp_path: Path) -> None:
    tokens = learnable_tokens()
    losses = []
    for bs, accum in ((4, 1), (2, 2), (1, 4)):
        c = cfg(tmp_path / f"{bs}", max_steps=3, batch_size=bs, grad_accum=accum, save_every=0,
                eval_every=0, eval_steps=1)
        t = Trainer(tiny_model(aux_loss_coef=0.0, z_loss_coef=0.0), c, tokens, tokens[:200],
                    progress=False, log=lambda _m: None)
        losses.append(t.fit().losses)
    np.testing.assert_allclose(losses[1], losses[0], atol=1e-5)
    np.testing.assert_allclose(losses[2], losses[0], atol=1e-5)


def test_evaluate_is_cross_entropy_without_aux() -> None:
    model = tiny_model().eval()
    seqs = TokenSequences(learnable_tokens(800), 32)
    result = evaluate(model, seqs, batch_size=4, max_batches=2, device=torch.device("cpu"))
    ids = seqs.batch(list(range(8)))
    with torch.no_grad():
        logits = model(ids).logits
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    assert result["val_loss"] == pytest.approx(float(ce), rel=1e-5)
    assert result["val_tokens"] == 8 * 31


def test_bf16_autocast_trains(tmp_path: Path) -> None:
    tokens = learnable_tokens()
    trainer = Trainer(tiny_model(), cfg(tmp_path, precision="bf16", max_steps=20, save_every=0, eval_every=0),
                      tokens, tokens[:400], progress=False, log=lambda _m: None)
    result = trainer.fit()
    assert result.precision == "bf16" and all(math.isfinite(x) for x in result.losses)
    assert result.losses[-1] < result.losses[0] - 0.5
    assert next(trainer.model.parameters()).dtype == torch.float32  # master weights stay fp32


# --------------------------------------------------------------------------------------- CLI
def _write_corpus(folder: Path) -> Path:
    folder.mkdir()
    rng = random.Random(0)
    for i in range(6):
        body = "".join(f"def f{i}_{j}(x):\n    return x * {rng.randrange(100)} + {j}\n\n" for j in range(150))
        (folder / f"m{i}.py").write_text(body)
    return folder


def test_cli_train_then_eval(tmp_path: Path) -> None:
    data = _write_corpus(tmp_path / "data")
    out = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text("preset: tiny\ntraining:\n  batch_size: 4\n  seq_len: 64\n  warmup_steps: 2\n"
                      "  eval_every: 4\n  eval_steps: 2\n  save_every: 4\n  precision: fp32\n")
    r = run_cli(["train", "--config", str(config), "--data", str(data), "--out", str(out),
                 "--max-steps", "6", "--vocab-size", "400", "--threads", "1", "--json"])
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["steps"] == 6 and summary["checkpoint"].endswith("step-000006")
    assert summary["eval"]["val_loss"] < math.log(400)
    ckpt = Path(summary["checkpoint"])
    assert (ckpt / "tokenizer.model").is_file()
    vocab = json.loads((ckpt / "config.json").read_text())["vocab_size"]
    assert vocab == len(salesai.Tokenizer.from_pretrained(ckpt))
    assert any(p.suffix == ".bin" for p in (out / "cache").iterdir())

    again = run_cli(["train", "--config", str(config), "--data", str(data), "--out", str(out)])
    assert again.exit_code == 2 and "already holds checkpoints; pass --resume" in again.stderr

    more = run_cli(["train", "--config", str(config), "--data", str(data), "--out", str(out),
                    "--max-steps", "8", "--resume", "--json"])
    assert more.exit_code == 0, more.stderr
    assert json.loads(more.stdout)["steps"] == 8 and "resumed from" in more.stderr

    ev = run_cli(["eval", str(out), "--data", str(data / "m0.py"), "--seq-len", "64", "--json"])
    assert ev.exit_code == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["checkpoint"].endswith("step-000008")
    assert result["val_perplexity"] == pytest.approx(math.exp(result["val_loss"]))
    assert len(result["expert_usage"]) == 2


def test_cli_train_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  grad_clip: -1\n")
    r = run_cli(["train", "--config", str(bad), "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "bad.yaml.training.grad_clip: expected a number >= 0, got -1" in r.stderr
    missing = str(tmp_path / "missing")
    r = run_cli(["train", "--preset", "tiny", "--data", missing, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "missing: no such file or folder" in r.stderr
    r = run_cli(["eval", str(tmp_path), "--data", str(tmp_path)])
    assert r.exit_code == 2 and "no checkpoint found" in r.stderr


def test_time_budgeted_schedule_ends_on_the_floor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake clock (0.125 s per step) makes the test independent of how busy the machine is."""
    import types

    from salesai.train import trainer as trainer_module

    clock = {"t": 0.0}
    fake_time = types.SimpleNamespace(**{k: getattr(trainer_module.time, k) for k in dir(trainer_module.time)
                                         if not k.startswith("_")})
    fake_time.perf_counter = lambda: clock["t"]
    monkeypatch.setattr(trainer_module, "time", fake_time)
    tokens = learnable_tokens()
    c = cfg(tmp_path, max_steps=100_000, warmup_steps=3, eval_every=0, save_every=0, log_every=1)
    trainer = Trainer(tiny_model(), c, tokens, tokens[:400], progress=False, log=lambda _m: None)
    real_step = trainer.train_step

    def timed_step() -> dict[str, float]:
        clock["t"] += 0.125
        return real_step()

    trainer.train_step = timed_step  # type: ignore[method-assign]
    seen: list[float] = []
    result = trainer.fit(time_budget_s=3.0, on_step=lambda t, stats: seen.append(stats["lr"]))
    assert result.step == 24 and trainer.config.max_steps == result.step
    assert result.elapsed_s == pytest.approx(3.0)
    assert len(seen) == result.step and max(seen) == pytest.approx(c.lr)
    assert seen[-1] < c.min_lr + 0.25 * (c.lr - c.min_lr)  # the cosine ran (nearly) to its floor
