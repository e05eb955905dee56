"""The `onnx` exporter and the ONNX Runtime generator (salesai.export.onnx, salesai.ort_runtime).

One tiny model (2 layers, 4 experts top-2, GQA 4:2) with a real SentencePiece tokenizer is
exported once per module (fp32 + int8); the tests check the files, the manifest, parity with
PyTorch (logits with and without a cache, left padding, injected embeddings; greedy token
ids), int8, the directory rules (refuse non-empty, nothing half-written) and that the ONNX
Runtime path never imports torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from salesai import ModelConfig, SalesAIModel
from salesai.errors import SalesAIError
from salesai.export import onnx_verify
from salesai.export.onnx import export_onnx
from salesai.ort_runtime import OrtDecoder, OrtGenerator, positions, read_manifest
from salesai.tokenizer import Tokenizer

CORPUS = ["def add(x, y):\n    return x + y\n", "hello world, the quick brown fox jumps over the lazy dog\n",
          "for i in range(10):\n    print(i)\n"] * 20


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(iter(CORPUS), vocab_size=320, num_threads=1, verbose=False)


@pytest.fixture(scope="module")
def model(tokenizer: Tokenizer) -> SalesAIModel:
    torch.manual_seed(0)
    # init_std 0.2: logits spread widely enough that greedy choices are never near-ties
    cfg = ModelConfig.from_name("tiny", vocab_size=len(tokenizer), init_std=0.2)
    return SalesAIModel(cfg).eval()


@pytest.fixture(scope="module")
def export_dir(model: SalesAIModel, tokenizer: Tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("onnx") / "export"
    assert export_onnx(model, tokenizer, out, quantize="int8") == out
    return out


@pytest.fixture(scope="module")
def generator(export_dir: Path) -> OrtGenerator:
    return OrtGenerator.from_export(export_dir, threads=1)


# ------------------------------------------------------------------------------- files, manifest
def test_export_writes_checked_graphs_manifest_and_tokenizer(export_dir: Path, tokenizer: Tokenizer) -> None:
    import onnx

    names = sorted(p.name for p in export_dir.iterdir())
    assert names == ["decoder.int8.onnx", "decoder.onnx", "manifest.json", "tokenizer.model"]
    for graph in ("decoder.onnx", "decoder.int8.onnx"):
        onnx.checker.check_model(str(export_dir / graph), full_check=True)
    assert Tokenizer.from_pretrained(export_dir).fingerprint == tokenizer.fingerprint
    assert not [p for p in export_dir.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_manifest_describes_graphs_tokens_config_and_cache(export_dir: Path, model: SalesAIModel) -> None:
    m = read_manifest(export_dir)
    cfg = model.config
    assert m["format"] == "salesai-onnx" and m["opset"] == 17 and m["exporter"]["name"] == "torchscript"
    assert m["model_config"] == cfg.to_dict()
    keys = ("num_layers", "num_kv_heads", "head_dim", "hidden_dim", "vocab_size")
    layout = {k: m["decoder"][k] for k in keys}
    assert layout == {"num_layers": 2, "num_kv_heads": 2, "head_dim": 16, "hidden_dim": 64, "vocab_size": 320}
    assert m["special_tokens"] == {"pad": 0, "bos": 2, "eos": 3, "unk": 1}
    assert m["placeholders"] == {"<image>": 4, "<audio>": 5}
    assert m["tokenizer"]["file"] == "tokenizer.model"
    dec = m["graphs"]["decoder"]
    assert dec["file"] == "decoder.onnx"
    inputs = {i["name"]: (i["dtype"], i["shape"]) for i in dec["inputs"]}
    assert list(inputs)[:6] == ["input_ids", "inputs_embeds", "embeds_mask", "attention_mask", "position_ids",
                                "logits_to_keep"]
    assert inputs["logits_to_keep"] == ("int64", [])
    assert "last k positions" in m["decoder"]["logits_to_keep"]
    assert inputs["input_ids"] == ("int64", ["batch", "sequence"])
    assert inputs["inputs_embeds"] == ("float32", ["batch", "sequence", 64])
    assert inputs["embeds_mask"] == ("bool", ["batch", "sequence"])
    assert inputs["attention_mask"] == ("int64", ["batch", "total_sequence"])
    assert inputs["position_ids"] == ("int64", ["batch", "sequence"])
    for i in range(2):
        for kind in ("key", "value"):
            assert inputs[f"past_{kind}_{i}"] == ("float32", ["batch", 2, "past_sequence", 16])
    outputs = {o["name"]: (o["dtype"], o["shape"]) for o in dec["outputs"]}
    assert outputs["logits"] == ("float32", ["batch", "kept_sequence", cfg.vocab_size])
    assert "kept_sequence" in m["axes"]
    assert outputs["present_value_1"] == ("float32", ["batch", 2, "total_sequence", 16])
    assert len(outputs) == 1 + 2 * cfg.num_layers
    assert m["graphs"]["decoder_int8"]["file"] == "decoder.int8.onnx"
    assert m["encoders"] == {}
    v = m["verification"]
    assert v["performed"] and v["passed"] and v["tolerance"] == 1e-4
    assert [c["case"] for c in v["cases"]] == ["prefill", "prefill_logits_to_keep_1", "decode", "chunk"]
    shapes = [(c["batch"], c["seq"], c["past"]) for c in v["cases"]]
    assert shapes == [(2, 7, 0), (2, 7, 0), (2, 1, 7), (3, 2, 5)]
    assert v["cases"][1]["logits_shape"] == [2, 1, cfg.vocab_size]
    assert all(c["max_abs_logit_diff"] < 1e-4 and c["max_abs_present_diff"] < 1e-4 for c in v["cases"])
    q = m["quantization"]
    assert q["weight_type"] == "QInt8" and q["weights"]["int8_share"] > 0.99
    assert q["int8_bytes"] < 0.6 * q["fp32_bytes"]
    # Reported, not judged here: on random weights int8 rounding flips top-k routing, and one flipped
    # expert moves a logit a lot (5.7 was seen); quality is judged on a trained model below.
    int8_diff = q["verification"]["max_abs_logit_diff"]
    assert np.isfinite(int8_diff) and int8_diff >= 0


# -------------------------------------------------------------------------------------- parity
def test_ort_matches_model_forward_with_cache_padding_and_embeddings(
    export_dir: Path, model: SalesAIModel
) -> None:
    """Independent of the export wrapper: OrtDecoder against SalesAIModel.forward."""
    dec = OrtDecoder(export_dir, threads=1)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(4, model.config.vocab_size, (2, 6), generator=gen)
    mask = torch.ones(2, 6, dtype=torch.int64)
    mask[1, :2] = 0  # left padding
    ids[1, :2] = 0
    embeds = model.embed(ids).detach().clone()
    embeds[0, 3] = torch.randn(64, generator=gen)  # a spliced "image" embedding
    emask = torch.zeros(2, 6, dtype=torch.bool)
    emask[0, 3] = True
    with torch.no_grad():
        ref = model(inputs_embeds=embeds, attention_mask=mask, use_cache=True)
    logits, past = dec.step(ids.numpy(), mask.numpy(), positions(mask.numpy()), dec.empty_past(2),
                            embeds.numpy(), emask.numpy())
    real = mask.bool().numpy()
    assert np.abs(logits - ref.logits.numpy())[real].max() < 1e-4
    # one decode step from each side's cache
    step = torch.tensor([[7], [9]])
    mask2 = torch.cat([mask, torch.ones(2, 1, dtype=torch.int64)], 1)
    with torch.no_grad():
        ref2 = model(step, attention_mask=mask2, past_key_values=ref.past_key_values)
    logits2, past2 = dec.step(step.numpy(), mask2.numpy(), positions(mask2.numpy())[:, -1:], past)
    assert logits2.shape == (2, 1, model.config.vocab_size)
    assert past2[0].shape == (2, 2, 7, 16)
    assert np.abs(logits2 - ref2.logits.numpy()).max() < 1e-4


def test_logits_to_keep_returns_the_last_positions_unchanged(export_dir: Path, model: SalesAIModel) -> None:
    """logits_to_keep=k gives exactly the last k rows of the full logits; 0 (and k > T) give all."""
    dec = OrtDecoder(export_dir, threads=1)
    assert dec.has_logits_to_keep
    ids = torch.randint(4, model.config.vocab_size, (2, 6), generator=torch.Generator().manual_seed(3))
    mask = np.ones((2, 6), np.int64)
    mask[0, :3] = 0  # a left-padded row: its last position is still a token
    full, past_full = dec.step(ids.numpy(), mask, positions(mask), dec.empty_past(2))
    assert full.shape == (2, 6, model.config.vocab_size)
    with torch.no_grad():
        ref = model(ids, attention_mask=torch.from_numpy(mask), logits_to_keep=1).logits.numpy()  # (2, 1, V)
    for k in (1, 2, 5):
        kept, past = dec.step(ids.numpy(), mask, positions(mask), dec.empty_past(2), logits_to_keep=k)
        assert kept.shape == (2, k, model.config.vocab_size)
        np.testing.assert_array_equal(kept, full[:, -k:])
        for a, b in zip(past, past_full, strict=True):  # the cache does not depend on k
            np.testing.assert_array_equal(a, b)
    assert np.abs(full[:, -1:] - ref).max() < 1e-4
    for k in (0, 6, 50):
        got, _ = dec.step(ids.numpy(), mask, positions(mask), dec.empty_past(2), logits_to_keep=k)
        assert got.shape[1] == 6


def test_ort_greedy_token_ids_equal_pytorch(generator: OrtGenerator, model: SalesAIModel) -> None:
    prompts = [[2, 40, 41, 42, 43, 44, 45], [2, 100, 101], [2, 7]]
    kwargs: dict[str, Any] = {"max_new_tokens": 24, "temperature": 0.0, "stop_token_ids": []}
    want = model.generate(prompts, **kwargs)
    assert generator.generate(prompts, **kwargs) == want  # batch, left padding
    assert all(len(row) == 24 for row in want)
    for prompt, row in zip(prompts, want, strict=True):
        assert generator.generate([prompt], **kwargs) == [row]
    penalised = {**kwargs, "repetition_penalty": 1.3}
    assert generator.generate(prompts, **penalised) == model.generate(prompts, **penalised)
    assert list(generator.stream(prompts[0], max_new_tokens=5, temperature=0)) == want[0][:5]
    streamed = list(generator.stream(prompts, max_new_tokens=3, temperature=0, stop_token_ids=[]))
    assert streamed == [[row[i] for row in want] for i in range(3)]


def test_ort_stop_tokens_and_seeded_sampling(generator: OrtGenerator, model: SalesAIModel) -> None:
    prompt = [2, 40, 41, 42]
    free = generator.generate([prompt], max_new_tokens=12, temperature=0.0, stop_token_ids=[])[0]
    stop = free[4]
    cut = generator.generate([prompt], max_new_tokens=12, temperature=0.0, stop_token_ids=[stop])[0]
    assert cut == free[: free.index(stop) + 1]  # the stop token is kept and ends the row
    assert cut == model.generate([prompt], max_new_tokens=12, temperature=0.0, stop_token_ids=[stop])[0]
    sample = {"max_new_tokens": 16, "temperature": 1.0, "top_k": 50, "top_p": 0.9, "stop_token_ids": []}
    a = generator.generate([prompt], seed=3, **sample)
    assert a == generator.generate([prompt], seed=3, **sample)
    assert a != generator.generate([prompt], seed=4, **sample)
    assert generator.generate([prompt], temperature=1.0, top_k=1, max_new_tokens=12, stop_token_ids=[],
                              seed=0) == [free]
    with pytest.raises(SalesAIError, match="max_seq_len"):
        generator.generate([prompt], max_new_tokens=10_000)


def test_text_generation_round_trip(
    generator: OrtGenerator, tokenizer: Tokenizer, model: SalesAIModel
) -> None:
    text = generator.generate_text("def add", max_new_tokens=8, temperature=0.0, stop_token_ids=[])
    ids = model.generate([tokenizer.encode("def add", add_bos=True)], max_new_tokens=8, temperature=0.0,
                         stop_token_ids=[])[0]
    assert text == tokenizer.decode(ids)
    pieces = list(generator.stream_text("def add", max_new_tokens=8, temperature=0.0, stop_token_ids=[]))
    assert "".join(pieces) == text


def test_int8_graph_generates(export_dir: Path) -> None:
    int8 = OrtGenerator.from_export(export_dir, variant="int8", threads=1)
    assert int8.decoder.path.name == "decoder.int8.onnx"
    out = int8.generate([[2, 40, 41], [2, 7]], max_new_tokens=6, temperature=0.0, stop_token_ids=[])
    assert [len(r) for r in out] == [6, 6] and all(0 <= t < 320 for r in out for t in r)


def test_runtime_path_never_imports_torch(export_dir: Path) -> None:
    code = (
        "import sys\n"
        "from salesai.ort_runtime import OrtGenerator\n"
        f"g = OrtGenerator.from_export({str(export_dir)!r}, threads=1)\n"
        "print(g.generate_text('def', max_new_tokens=3, temperature=0))\n"
        "g8 = OrtGenerator.from_export(" f"{str(export_dir)!r}" ", variant='int8', threads=1)\n"
        "g8.generate([[2, 5]], max_new_tokens=2)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------ directory rules
def test_refuses_non_empty_directory_unless_forced(
    model: SalesAIModel, tokenizer: Tokenizer, tmp_path: Path
) -> None:
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SalesAIError, match=r"exp: directory exists and is not empty; pass --force"):
        export_onnx(model, tokenizer, out, verify=False)
    assert (out / "keep.txt").read_text() == "mine"
    export_onnx(model, tokenizer, out, verify=False, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "manifest.json", "tokenizer.model"]
    assert read_manifest(out)["verification"] == {"performed": False}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_failed_verification_leaves_nothing_behind(
    model: SalesAIModel, tokenizer: Tokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"max_abs_logit_diff": 0.5, "max_abs_present_diff": 0.5, "cases": []}

    monkeypatch.setattr(onnx_verify, "verify_decoder", broken)
    with pytest.raises(SalesAIError, match=r"verification failed: max \|logit diff\| 0.5 .* exceeds 0.0001"):
        export_onnx(model, tokenizer, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "old"
    old.mkdir()
    (old / "keep.txt").write_text("mine")
    with pytest.raises(SalesAIError, match="verification failed"):
        export_onnx(model, tokenizer, old, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["old"] and (old / "keep.txt").read_text() == "mine"


def test_bad_options_are_refused(model: SalesAIModel, tokenizer: Tokenizer, tmp_path: Path) -> None:
    with pytest.raises(SalesAIError, match="--quantize 'int4': expected one of int8"):
        export_onnx(model, tokenizer, tmp_path / "a", quantize="int4")
    with pytest.raises(SalesAIError, match=r"--opset 99: expected 14\.\.20"):
        export_onnx(model, tokenizer, tmp_path / "a", opset=99)
    with pytest.raises(SalesAIError, match=r"unknown option\(s\) bogus"):
        export_onnx(model, tokenizer, tmp_path / "a", bogus=1)
    with pytest.raises(SalesAIError, match="not an ONNX export"):
        OrtDecoder(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_registered_exporter_passes_conformance(
    model: SalesAIModel, tokenizer: Tokenizer, tmp_path: Path
) -> None:
    from salesai.plugins import registry
    from salesai.testing.conformance import check_exporter

    entry = registry("exporters").entry("onnx")
    assert entry.provider == "salesai-core"
    out = check_exporter(entry.factory, model, tokenizer, tmp_path, verify=False)
    assert json.loads((out / "manifest.json").read_text())["graphs"]["decoder"]["file"] == "decoder.onnx"


def test_large_models_keep_weights_in_one_external_data_file(
    model: SalesAIModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from salesai.export import onnx as onnx_export

    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)  # as if the model were over 2 GB
    out = export_onnx(model, None, tmp_path / "big", quantize="int8")
    assert sorted(p.name for p in out.iterdir()) == [
        "decoder.int8.onnx", "decoder.int8.onnx.data", "decoder.onnx", "decoder.onnx.data", "manifest.json"]
    m = read_manifest(out)
    assert m["graphs"]["decoder"]["external_data"] == "decoder.onnx.data"
    assert m["graphs"]["decoder_int8"]["external_data"] == "decoder.int8.onnx.data"
    assert m["verification"]["passed"] and m["quantization"]["weights"]["int8_share"] > 0.99
    assert (out / "decoder.onnx.data").stat().st_size > 4 * model.num_parameters() * 0.9
    prompt = [[2, 40, 41, 42]]
    greedy = {"max_new_tokens": 8, "temperature": 0.0, "stop_token_ids": []}
    ort = OrtGenerator.from_export(out, threads=1)
    assert ort.generate(prompt, **greedy) == model.generate(prompt, **greedy)


@pytest.mark.slow
def test_dynamo_exporter_also_verifies(model: SalesAIModel, tmp_path: Path) -> None:
    out = export_onnx(model, None, tmp_path / "dyn", exporter="dynamo")
    m = read_manifest(out)
    assert m["exporter"]["name"] == "dynamo" and m["verification"]["passed"]
    assert m["tokenizer"]["file"] is None


# ----------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def checkpoint(model: SalesAIModel, tokenizer: Tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ckpt = tmp_path_factory.mktemp("ckpt") / "tiny"
    model.save_pretrained(ckpt)
    tokenizer.save_pretrained(ckpt)
    return ckpt


def test_cli_export_then_generate_with_onnxruntime_equals_torch(checkpoint: Path, tmp_path: Path) -> None:
    from salesai.testing.cli import run_cli

    out = tmp_path / "onnx"
    res = run_cli(["export", str(checkpoint), "--format", "onnx", "--out", str(out), "--opset", "17",
                   "--quantize", "int8"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(out)
    m = read_manifest(out)
    assert m["opset"] == 17 and m["verification"]["passed"]
    assert m["quantization"]["file"] == "decoder.int8.onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]  # no temporary directories left
    args = ["def add", "-t", "0", "-n", "16"]
    torch_out = run_cli(["generate", str(checkpoint), *args])
    ort_out = run_cli(["generate", str(out), *args, "--backend", "onnxruntime", "--threads", "1"])
    assert torch_out.exit_code == ort_out.exit_code == 0, ort_out.stderr
    assert ort_out.stdout == torch_out.stdout and ort_out.stdout.strip()
    assert "[onnxruntime] prompt" in ort_out.stderr
    int8 = run_cli(["generate", str(out), *args, "--backend", "onnxruntime-int8", "--stream"])
    assert int8.exit_code == 0 and "[onnxruntime-int8]" in int8.stderr

    refused = run_cli(["export", str(checkpoint), "--format", "onnx", "--out", str(out), "--no-verify"])
    assert refused.exit_code == 2 and "exists and is not empty; pass --force" in refused.stderr
    replaced = run_cli(["export", str(checkpoint), "--format", "onnx", "--out", str(out), "--no-verify",
                        "--force"])
    assert replaced.exit_code == 0, replaced.stderr
    m = read_manifest(out)
    assert m["verification"] == {"performed": False} and m["quantization"] is None


def test_cli_errors_name_the_input(checkpoint: Path, tmp_path: Path) -> None:
    from salesai.testing.cli import run_cli

    res = run_cli(["export", str(checkpoint), "--format", "onnnx", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "unknown exporter 'onnnx'; known:" in res.stderr and "onnx (salesai-core)" in res.stderr
    res = run_cli(["export", str(checkpoint), "-f", "onnx", "-o", str(tmp_path / "x"), "--opset", "30"])
    assert res.exit_code == 2 and "--opset 30: expected 14..20" in res.stderr
    res = run_cli(["generate", str(checkpoint), "hi", "--backend", "onnxruntime"])
    assert res.exit_code == 2 and "not an ONNX export (no manifest.json)" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_onnxruntime_generate_never_imports_torch(export_dir: Path) -> None:
    code = (
        "import sys\n"
        "from salesai.cli import main\n"
        "try:\n"
        f"    main(['generate', {str(export_dir)!r}, 'def', '-n', '4', '--backend', 'onnxruntime'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SALESAI_LOAD_PLUGINS": ""}  # core only
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


def test_int8_keeps_a_trained_models_perplexity(tokenizer: Tokenizer, tmp_path: Path) -> None:
    """int8 quality where it means something: a briefly trained model's perplexity on its data."""
    from salesai import TrainConfig, Trainer

    torch.manual_seed(0)
    tokens = torch.tensor([t for text in CORPUS for t in tokenizer.encode(text, add_bos=True, add_eos=True)])
    model = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(tokenizer)))
    cfg = TrainConfig(max_steps=40, batch_size=8, seq_len=32, lr=3e-3, warmup_steps=4, eval_every=0,
                      save_every=0, precision="fp32", num_threads=1, out_dir=str(tmp_path / "run"))
    Trainer(model, cfg, tokens, progress=False, log=lambda _m: None).fit()
    model.eval()
    out = export_onnx(model, tokenizer, tmp_path / "export", quantize="int8")
    ids = tokens[:64].numpy()[None]  # (1, 64)

    def nll(logits: np.ndarray) -> float:  # mean next-token loss of (1, T, V) logits on `ids`
        z = logits[0, :-1].astype(np.float64)
        z = z - z.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return float(-logp[np.arange(len(z)), ids[0, 1:]].mean())

    with torch.no_grad():
        fp32 = nll(model(torch.from_numpy(ids)).logits.numpy())
    dec = OrtDecoder(out, variant="int8", threads=1)
    pos = np.arange(ids.shape[1], dtype=np.int64)[None]
    int8_logits, _ = dec.step(ids, np.ones_like(ids), pos, dec.empty_past(1))
    int8 = nll(int8_logits)
    assert fp32 < 2.0  # it learned the corpus (uniform would be ln 320 = 5.8)
    assert abs(np.exp(int8) / np.exp(fp32) - 1) < 0.05  # perplexity within 5%
