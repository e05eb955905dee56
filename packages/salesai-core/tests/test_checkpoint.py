"""Checkpoints (save/load, errors naming the file, atomic writes), `salesai info`, `salesai export`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from salesai.errors import SalesAIError
from salesai.model.checkpoint import load_checkpoint, save_checkpoint
from salesai.model.config import ModelConfig
from salesai.model.transformer import SalesAIModel
from salesai.testing import register_plugin, run_cli

torch.set_num_threads(1)


def tiny(**overrides: object) -> SalesAIModel:
    torch.manual_seed(0)
    return SalesAIModel(ModelConfig.from_name("tiny", **overrides)).eval()


@pytest.fixture(scope="module")
def tokenizer() -> object:
    from salesai.tokenizer import Tokenizer

    texts = ["def add(a, b):\n    return a + b\n", "the quick brown fox jumps over the lazy dog"] * 20
    return Tokenizer.train(iter(texts), vocab_size=320, verbose=False)


@pytest.mark.parametrize("tie", [False, True])
def test_save_and_load_round_trip(tmp_path: Path, tie: bool) -> None:
    model = tiny(tie_embeddings=tie)
    path = model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((path / "config.json").read_text())["tie_embeddings"] is tie
    loaded = SalesAIModel.from_pretrained(path)
    ids = torch.randint(0, 512, (2, 7))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)
    assert (loaded.lm_head.weight is loaded.embed_tokens.weight) is tie
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), "pt") as f:
        assert ("lm_head.weight" in set(f.keys())) is not tie  # a tied head is stored once


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    ckpt = tiny().save_pretrained(tmp_path / "ckpt")
    weights, config = ckpt / "model.safetensors", ckpt / "config.json"
    with pytest.raises(SalesAIError, match="checkpoint directory not found"):
        SalesAIModel.from_pretrained(tmp_path / "nowhere")

    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(SalesAIError, match=r"model.safetensors: not a readable safetensors file"):
        SalesAIModel.from_pretrained(ckpt)
    weights.write_bytes(b"\x80\x04PK pickle or zip, not safetensors")  # foreign
    with pytest.raises(SalesAIError, match=r"model.safetensors: not a readable safetensors file"):
        SalesAIModel.from_pretrained(ckpt)
    weights.unlink()
    with pytest.raises(SalesAIError, match=r"model.safetensors: missing"):
        SalesAIModel.from_pretrained(ckpt)
    weights.write_bytes(data)

    cfg = json.loads(config.read_text())
    config.write_text(json.dumps({**cfg, "num_layers": 3}))
    mismatch = r"model.safetensors: does not match config.json"
    with pytest.raises(SalesAIError, match=mismatch + r": missing \d+ tensors \(layers.2"):
        SalesAIModel.from_pretrained(ckpt)
    config.write_text(json.dumps({**cfg, "num_layers": 1}))
    with pytest.raises(SalesAIError, match=mismatch + r": unexpected \d+ tensors \(layers.1"):
        SalesAIModel.from_pretrained(ckpt)
    config.write_text(json.dumps({**cfg, "intermediate_dim": 96}))
    with pytest.raises(SalesAIError, match=r"model.safetensors: tensor layers.0.mlp.experts.0.w1.weight has"):
        SalesAIModel.from_pretrained(ckpt)
    config.write_text(json.dumps({**cfg, "hiden_dim": 3}))
    with pytest.raises(SalesAIError, match=r"config.json: unknown model setting 'hiden_dim'"):
        SalesAIModel.from_pretrained(ckpt)
    config.write_text("{not json")
    with pytest.raises(SalesAIError, match=r"config.json: not valid JSON"):
        SalesAIModel.from_pretrained(ckpt)
    config.write_text(json.dumps({"model_type": "mixtral", "architectures": ["MixtralForCausalLM"]}))
    with pytest.raises(SalesAIError, match=r"config.json: a Hugging Face transformers config"):
        SalesAIModel.from_pretrained(ckpt)
    config.unlink()
    with pytest.raises(SalesAIError, match=r"config.json: missing"):
        SalesAIModel.from_pretrained(ckpt)


def test_save_checkpoint_is_atomic_and_loads_the_tokenizer(tmp_path: Path, tokenizer: object) -> None:
    model = tiny(vocab_size=len(tokenizer))  # type: ignore[arg-type]
    out = save_checkpoint(tmp_path / "run" / "ckpt", model, tokenizer)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.model"]
    (out / "stale.txt").write_text("from an older save")
    save_checkpoint(out, model, tokenizer)  # replaces the whole directory
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["ckpt"]  # no temp dirs left behind
    _, tok = load_checkpoint(out)
    assert tok is not None and tok.encode("def add") == tokenizer.encode("def add")  # type: ignore[attr-defined]
    model_only, none = load_checkpoint(tiny().save_pretrained(tmp_path / "bare"))
    assert none is None and isinstance(model_only, SalesAIModel)

    class Boom(RuntimeError):
        pass

    class BadTokenizer:
        def save_pretrained(self, path: Path) -> None:
            raise Boom("disk full")

    with pytest.raises(Boom):
        save_checkpoint(tmp_path / "run" / "ckpt", model, BadTokenizer())
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["ckpt"]  # old checkpoint intact
    assert (out / "tokenizer.model").is_file()


# -- salesai info ----------------------------------------------------------------------------
def test_cli_info(tmp_path: Path) -> None:
    ckpt = tiny().save_pretrained(tmp_path / "ckpt")
    result = run_cli(["info", str(ckpt), "--json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    model = tiny()
    assert info["parameters"] == model.num_parameters()
    assert info["active_parameters"] == model.num_parameters(active=True)
    assert (info["num_experts"], info["top_k"], info["vocab_size"], info["num_layers"]) == (4, 2, 512, 2)
    assert info["kind"] == "checkpoint" and info["tokenizer_file"] is None
    base = json.loads(run_cli(["info", "base", "--json"]).stdout)
    assert base["kind"] == "preset" and 100e6 < base["parameters"] < 110e6
    assert base["active_parameters"] < 75e6
    table = run_cli(["info", str(ckpt)])
    assert table.exit_code == 0 and "active per token" in table.stdout and "4 x swiglu, top-2" in table.stdout
    bad = run_cli(["info", "nonsense"])
    assert bad.exit_code == 2 and "not a checkpoint directory, a config file or a preset" in bad.stderr


# -- salesai export --------------------------------------------------------------------------
def test_cli_export_safetensors_and_hf(tmp_path: Path, tokenizer: object) -> None:
    model = tiny(vocab_size=len(tokenizer))  # type: ignore[arg-type]
    ckpt = save_checkpoint(tmp_path / "ckpt", model, tokenizer)
    out = tmp_path / "native"
    result = run_cli(["export", str(ckpt), "--format", "safetensors", "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.model"]
    again, _ = load_checkpoint(out)
    ids = torch.randint(0, len(tokenizer), (1, 5))  # type: ignore[arg-type]
    torch.testing.assert_close(again(ids).logits, model(ids).logits, rtol=0, atol=0)

    refused = run_cli(["export", str(ckpt), "--format", "hf", "--out", str(out)])
    assert refused.exit_code == 2 and "exists and is not empty; pass --force" in refused.stderr
    args = ["export", str(ckpt), "-f", "hf", "-o", str(out), "--force", "--layout", "stacked", "--json"]
    forced = run_cli(args)
    assert forced.exit_code == 0, forced.stderr
    summary = json.loads(forced.stdout)
    assert summary["options"] == {"layout": "stacked"} and summary["provider"] == "salesai-core"
    files = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.model"}
    assert set(summary["files"]) == files
    assert json.loads((out / "config.json").read_text())["architectures"] == ["MixtralForCausalLM"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_export_errors_leave_nothing_behind(tmp_path: Path) -> None:
    ckpt = tiny(expert_type="gelu").save_pretrained(tmp_path / "ckpt")
    unknown = run_cli(["export", str(ckpt), "--format", "tflite", "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 2
    assert "unknown exporter 'tflite'; known:" in unknown.stderr and "hf (salesai-core)" in unknown.stderr
    gelu = run_cli(["export", str(ckpt), "--format", "hf", "--out", str(tmp_path / "hf")])
    assert gelu.exit_code == 2 and "expert_type='gelu' has no Mixtral/Llama equivalent" in gelu.stderr
    st = str(tmp_path / "st")
    option = run_cli(["export", str(ckpt), "--format", "safetensors", "--out", st, "--opset", "17"])
    assert option.exit_code == 2 and "unknown option(s) opset" in option.stderr

    class Broken:
        @staticmethod
        def register_exporters(register):
            def half_then_fail(model, tokenizer, out_dir, **options):
                Path(out_dir).mkdir(parents=True, exist_ok=True)
                (Path(out_dir) / "part.bin").write_bytes(b"x")
                raise SalesAIError("broken exporter failed halfway")

            register("broken", half_then_fail)

    from salesai.hookspecs import hookimpl

    Broken.register_exporters = hookimpl(Broken.register_exporters)  # type: ignore[method-assign]
    with register_plugin(Broken):
        failed = run_cli(["export", str(ckpt), "--format", "broken", "--out", str(tmp_path / "b")])
    assert failed.exit_code == 2 and "broken exporter failed halfway" in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no half-written or temp dirs


def test_export_option_parsing() -> None:
    from salesai.cli.export_cmd import parse_options

    assert parse_options(["--opset", "17", "--no-verify", "--quantize=int8", "--scale", "0.5", "--fast"]) == {
        "opset": 17, "verify": False, "quantize": "int8", "scale": 0.5, "fast": True,
    }
    with pytest.raises(SalesAIError, match="exporter options are written --name value"):
        parse_options(["stray"])
