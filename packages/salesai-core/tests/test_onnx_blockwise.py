"""Block-wise quantised decoders (`--quantize q8` / `q4`): fused MoE operators, QMoE, MatMulNBits.

One tiny model (2 layers, 4 SwiGLU experts top-2) with a SentencePiece tokenizer is exported
once with quantize="int8,q8,q4". The tests check the block quantiser's values, the fused fp32
graph's parity with PyTorch, the quantised graphs' structure, manifest and verification
report, greedy generation through ONNX Runtime (also from the CLI, and without torch), and
that other expert types fall back to the plain graph.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from salesai import ModelConfig, SalesAIModel
from salesai.errors import SalesAIError
from salesai.export.onnx import DecoderGraph, export_decoder, export_onnx
from salesai.export.onnx_blockwise import fused_moe_graph, quantize_blocks
from salesai.export.onnx_verify import verify_decoder
from salesai.ort_runtime import OrtDecoder, OrtGenerator, positions, read_manifest
from salesai.testing import run_cli
from salesai.tokenizer import Tokenizer

CORPUS = ["def add(x, y):\n    return x + y\n",
          "hello world, the quick brown fox jumps over the lazy dog\n"] * 20


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(iter(CORPUS), vocab_size=320, num_threads=1, verbose=False)


@pytest.fixture(scope="module")
def model(tokenizer: Tokenizer) -> SalesAIModel:
    torch.manual_seed(0)
    return SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(tokenizer))).eval()


@pytest.fixture(scope="module")
def export_dir(model: SalesAIModel, tokenizer: Tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("blockwise") / "export"
    export_onnx(model, tokenizer, out, quantize="int8,q8,q4")
    return out


def test_quantize_blocks_round_trips_within_half_a_step() -> None:
    w = np.random.default_rng(0).normal(0, 1, (2, 3, 64)).astype(np.float32)  # (E, N, K)
    for bits in (8, 4):
        q, scale = quantize_blocks(w, bits, block=32)
        assert q.dtype == np.uint8 and q.shape == (2, 3, 64 * bits // 8) and scale.shape == (2, 3, 2)
        if bits == 4:  # two values per byte, low nibble first
            q = np.stack([q & 0x0F, q >> 4], -1).reshape(2, 3, 64)
        deq = (q.astype(np.float32) - 2 ** (bits - 1)).reshape(2, 3, 2, 32) * scale[..., None]
        err = np.abs(deq.reshape(w.shape) - w).reshape(2, 3, 2, 32).max(-1)
        assert (err <= scale / 2 + 1e-6).all()  # symmetric rounding: at most half a step per block
        qmax = 2 ** (bits - 1) - 1
        np.testing.assert_allclose(scale, np.abs(w).reshape(2, 3, 2, 32).max(-1) / qmax, rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of the block size"):
        quantize_blocks(w[..., :40], 8, block=32)


def test_fused_moe_graph_matches_pytorch(model: SalesAIModel, tmp_path: Path) -> None:
    """The fp32 graph with one com.microsoft.MoE node per layer equals PyTorch like decoder.onnx does."""
    with fused_moe_graph(model) as replaced:
        export_decoder(DecoderGraph(model).eval(), model.config, tmp_path / "fused.onnx", 17)
    assert replaced == 2 and all(layer.mlp.__class__.__name__ == "MoE" for layer in model.layers)  # restored
    ops = [n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node]
    assert ops.count("MoE") == 2 and "ScatterElements" not in ops  # no index_add_ of the static loop
    assert ops.count("NonZero") == 1  # logits_to_keep's only; the expert loop's are gone
    result = verify_decoder(DecoderGraph(model).eval(), model.config, tmp_path / "fused.onnx")
    assert result["max_abs_logit_diff"] < 1e-4 and result["max_abs_present_diff"] < 1e-4


def test_quantised_graphs_structure_and_manifest(export_dir: Path, model: SalesAIModel) -> None:
    files = sorted(p.name for p in export_dir.iterdir())
    assert files == ["decoder.int8.onnx", "decoder.onnx", "decoder.q4.onnx", "decoder.q8.onnx",
                     "manifest.json", "tokenizer.model"]  # the fused temporary graph is gone
    m = read_manifest(export_dir)
    assert m["quantization"]["weight_type"] == "QInt8"  # int8 keeps its place
    for variant, bits in (("q8", 8), ("q4", 4)):
        g = m["graphs"][f"decoder_{variant}"]
        assert g["file"] == f"decoder.{variant}.onnx"
        assert [i["name"] for i in g["inputs"]] == [i["name"] for i in m["graphs"]["decoder"]["inputs"]]
        q = m["quantizations"][variant]
        assert (q["bits"], q["block_size"], q["symmetric"], q["moe_nodes"]) == (bits, 32, True, 2)
        assert q["fused_fp32_max_abs_logit_diff"] < 1e-4
        assert q["fp32_matmuls_left"] == 2 + 2 * 2  # the routers, and attention's QK / AV products
        assert np.isfinite(q["verification"]["max_abs_logit_diff"])
        nodes = onnx.load(str(export_dir / g["file"]), load_external_data=False).graph.node
        qmoe = [n for n in nodes if n.op_type == "QMoE"]
        assert len(qmoe) == 2
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in qmoe[0].attribute}
        assert attrs["expert_weight_bits"] == bits and attrs["block_size"] == 32 and attrs["k"] == 2
        assert sum(n.op_type == "MatMulNBits" for n in nodes) == 2 * 4 + 1  # q, k, v, o per layer + head
    q8, q4 = m["quantizations"]["q8"], m["quantizations"]["q4"]
    assert q4["bytes"] < q8["bytes"] < 0.5 * q8["fp32_bytes"]
    assert q8["verification"]["max_abs_logit_diff"] < q4["verification"]["max_abs_logit_diff"]


def test_q8_is_closer_to_pytorch_than_int8(export_dir: Path, model: SalesAIModel) -> None:
    """Teacher-forced logits on 4 x 24 random tokens: q8 beats the per-channel int8 graph, q4 trails q8."""
    ids = torch.randint(11, model.config.vocab_size, (4, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(ids).logits.numpy()  # (4, 24, V)
    mask = np.ones((4, 24), np.int64)
    median, agree = {}, {}
    for variant in ("int8", "q8", "q4"):
        dec = OrtDecoder(export_dir, variant=variant, threads=1)
        got, _ = dec.step(ids.numpy(), mask, positions(mask), dec.empty_past(4))
        median[variant] = float(np.median(np.abs(got - ref).max(-1)))  # per position, then the median
        agree[variant] = float((got.argmax(-1) == ref.argmax(-1)).mean())
    assert median["q8"] < median["int8"] < median["q4"]
    assert agree["q8"] >= 0.9  # 0.98 when written


def test_q8_generation_streams_like_the_other_variants(export_dir: Path, model: SalesAIModel) -> None:
    q8 = OrtGenerator.from_export(export_dir, variant="q8", threads=1)
    assert q8.decoder.path.name == "decoder.q8.onnx"
    kwargs = {"max_new_tokens": 12, "temperature": 0.0, "stop_token_ids": []}
    got = q8.generate([[2, 40, 41, 42, 43], [2, 7]], **kwargs)
    assert [len(r) for r in got] == [12, 12] and all(0 <= t < model.config.vocab_size for r in got for t in r)
    assert list(q8.stream([2, 7], **kwargs)) == got[1]  # batch (left padding) = alone
    q4 = OrtGenerator.from_export(export_dir, variant="q4", threads=1).generate([[2, 7]], **kwargs)
    assert len(q4[0]) == 12


def test_cli_backend_by_name_and_no_torch(export_dir: Path) -> None:
    r = run_cli(["generate", str(export_dir), "def add", "-n", "4", "-t", "0", "--backend", "onnxruntime-q8",
                 "--threads", "1"])
    assert r.exit_code == 0, r.stderr
    assert "[onnxruntime-q8]" in r.stderr + r.stdout
    code = (
        "import sys\n"
        "from salesai.ort_runtime import OrtGenerator\n"
        f"g = OrtGenerator.from_export({str(export_dir)!r}, variant='q4', threads=1)\n"
        "assert len(g.generate([[2, 5]], max_new_tokens=3, temperature=0)[0]) == 3\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr


def test_missing_variant_and_bad_names_are_refused(model: SalesAIModel, tmp_path: Path) -> None:
    export_onnx(model, None, tmp_path / "plain", verify=False)
    with pytest.raises(SalesAIError, match=r"no q8 decoder .*--quantize q8"):
        OrtGenerator.from_export(tmp_path / "plain", variant="q8")
    with pytest.raises(SalesAIError, match="expected one of int8, q8, q4"):
        export_onnx(model, None, tmp_path / "bad", quantize="q3")


def test_gelu_experts_fall_back_to_the_plain_graph(tmp_path: Path) -> None:
    torch.manual_seed(0)
    gelu = SalesAIModel(ModelConfig.from_name("tiny", expert_type="gelu")).eval()
    export_onnx(gelu, None, tmp_path / "g", quantize="q8")
    q = read_manifest(tmp_path / "g")["quantizations"]["q8"]
    assert q["moe_nodes"] == 0 and q["matmulnbits_nodes"] > 0
    assert "fused_fp32_max_abs_logit_diff" not in q
    q8 = OrtGenerator.from_export(tmp_path / "g", variant="q8", threads=1)
    out = q8.generate([[2, 9]], max_new_tokens=3, temperature=0)
    assert len(out[0]) == 3
