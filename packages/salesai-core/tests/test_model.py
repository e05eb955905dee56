"""The text model: config validation, forward/loss, MoE routing and losses, masks, explicit KV path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from salesai.errors import SalesAIError
from salesai.model.config import PRESETS, ModelConfig
from salesai.model.moe import MoE, load_balancing_loss, route, router_z_loss, usage_summary
from salesai.model.transformer import SalesAIModel

torch.set_num_threads(1)


def tiny(**overrides: object) -> SalesAIModel:
    torch.manual_seed(0)
    return SalesAIModel(ModelConfig.from_name("tiny", **overrides))


# -- config ----------------------------------------------------------------------------------
def test_presets_match_the_model_card() -> None:
    base = ModelConfig.from_name("base")
    assert (base.vocab_size, base.hidden_dim, base.num_layers, base.num_heads) == (32000, 512, 8, 8)
    assert (base.num_experts, base.top_k, base.intermediate_dim, base.num_kv_heads) == (4, 2, 1376, 4)
    mm = ModelConfig.from_name("multimodal")
    assert (mm.hidden_dim, mm.num_layers, mm.num_heads, mm.num_experts, mm.top_k) == (1024, 16, 16, 32, 4)
    for name in PRESETS:
        cfg = ModelConfig.from_name(name)
        assert cfg.intermediate_dim % 16 == 0 and cfg.max_seq_len <= 2048 and cfg.name == name


def test_from_name_overrides_and_dense_top_k() -> None:
    cfg = ModelConfig.from_name("tiny", num_experts=8, top_k=1)
    assert (cfg.num_experts, cfg.top_k, cfg.hidden_dim) == (8, 1, 64)
    dense = ModelConfig.from_name("tiny", num_experts=1)
    assert dense.top_k == 1 and not dense.is_moe
    with pytest.raises(SalesAIError, match=r"unknown model preset 'huge'.*tiny, base, multimodal"):
        ModelConfig.from_name("huge")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_dm": 64}, "unknown model setting 'hidden_dm' .did you mean 'hidden_dim'"),
        ({"max_seq_len": 4096}, r"max_seq_len=4096 must be in 1..2048"),
        ({"top_k": 5}, r"top_k=5 must be in 1..num_experts \(4\)"),
        ({"num_kv_heads": 3}, r"num_kv_heads=3 must divide num_heads=4"),
        ({"hidden_dim": 66}, r"hidden_dim=66 must be divisible by num_heads=4"),
        ({"num_layers": 0}, r"num_layers=0 must be >= 1"),
        ({"num_layers": "two"}, r"num_layers='two' must be an integer"),
        ({"tie_embeddings": "yes"}, r"tie_embeddings='yes' must be true or false"),
        ({"aux_loss_coef": -1.0}, r"aux_loss_coef=-1.0 must be >= 0"),
        ({"eos_token_id": 512}, r"eos_token_id=512 must be in 0..511"),
    ],
)
def test_bad_values_name_the_field_and_range(overrides: dict, message: str) -> None:
    with pytest.raises(SalesAIError, match=message):
        ModelConfig.from_name("tiny", **overrides)


def test_from_file_yaml_json_toml(tmp_path: Path) -> None:
    yaml = "model:\n  preset: tiny\n  num_experts: 8\n  norm_eps: 1e-6\ntraining:\n  lr: 1\n"
    (tmp_path / "m.yaml").write_text(yaml)
    cfg = ModelConfig.from_file(tmp_path / "m.yaml")
    assert (cfg.num_experts, cfg.hidden_dim, cfg.norm_eps, cfg.name) == (8, 64, 1e-6, "tiny")
    (tmp_path / "m.json").write_text(json.dumps({**ModelConfig.from_name("tiny").to_dict(), "num_layers": 3}))
    assert ModelConfig.from_file(tmp_path / "m.json").num_layers == 3
    (tmp_path / "m.toml").write_text('[model]\npreset = "base"\ntop_k = 1\n')
    assert ModelConfig.from_file(tmp_path / "m.toml").top_k == 1
    (tmp_path / "bad.yaml").write_text("model:\n  preset: tiny\n  experts: 8\n")
    with pytest.raises(SalesAIError, match=r"bad.yaml: unknown model setting 'experts'"):
        ModelConfig.from_file(tmp_path / "bad.yaml")
    (tmp_path / "run.yaml").write_text("preset: tiny\nmodel:\n  num_layers: 3\ntraining:\n  lr: 1\n")
    run = ModelConfig.from_file(tmp_path / "run.yaml")  # a run file: preset beside the model section
    assert (run.num_layers, run.hidden_dim) == (3, 64)
    (tmp_path / "m.ini").write_text("x")
    with pytest.raises(SalesAIError, match="unsupported config format"):
        ModelConfig.from_file(tmp_path / "m.ini")
    with pytest.raises(SalesAIError, match="not found"):
        ModelConfig.from_file(tmp_path / "missing.yaml")


def test_expert_type_is_checked_when_the_model_is_built() -> None:
    cfg = ModelConfig.from_name("tiny", expert_type="nope")  # lazily validated
    with pytest.raises(SalesAIError, match=r"unknown expert 'nope'.*gelu.*swiglu"):
        SalesAIModel(cfg)


# -- forward and loss ------------------------------------------------------------------------
def test_forward_shapes_loss_and_indexing() -> None:
    model = tiny()
    ids = torch.randint(0, 512, (2, 9))
    out = model(ids, labels=ids)
    assert out.logits.shape == (2, 9, 512)
    assert out["logits"] is out.logits and out["loss"] is out.loss
    ce = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 512), ids[:, 1:].reshape(-1))
    assert out.aux_loss is not None
    torch.testing.assert_close(out.loss, ce + out.aux_loss)
    # initial loss close to uniform
    assert abs(ce.item() - math.log(512)) < 0.5


def test_ignored_labels_and_padding_do_not_count() -> None:
    model = tiny(aux_loss_coef=0.0, z_loss_coef=0.0).eval()
    ids = torch.randint(0, 512, (1, 8))
    labels = ids.clone()
    labels[0, 5:] = -100
    out = model(ids, labels=labels)
    assert out.aux_loss is None  # both coefficients 0
    ce = torch.nn.functional.cross_entropy(out.logits[0, :4], ids[0, 1:5])
    torch.testing.assert_close(out.loss, ce)
    mask = torch.ones(1, 8, dtype=torch.long)
    mask[0, 5:] = 0
    torch.testing.assert_close(model(ids, attention_mask=mask, labels=ids).loss, ce)


def test_aux_loss_only_when_training_or_labels() -> None:
    model = tiny()
    ids = torch.randint(0, 512, (2, 6))
    assert model.train()(ids).aux_loss is not None
    assert model.eval()(ids).aux_loss is None
    assert model.eval()(ids, labels=ids).aux_loss is not None
    assert tiny(num_experts=1)(ids, labels=ids).aux_loss is None  # dense: no router


def test_gradients_reach_every_parameter() -> None:
    model = tiny(num_shared_experts=1, shared_intermediate_dim=32).train()
    ids = torch.randint(0, 512, (4, 16))
    model(ids, labels=ids).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_inputs_embeds_equal_input_ids() -> None:
    model = tiny().eval()
    ids = torch.randint(0, 512, (2, 5))
    torch.testing.assert_close(model(inputs_embeds=model.embed(ids)).logits, model(ids).logits)
    with pytest.raises(SalesAIError, match="exactly one of input_ids or inputs_embeds"):
        model()


def test_variants_build_and_run() -> None:
    ids = torch.randint(0, 512, (2, 5))
    for overrides in ({"expert_type": "gelu"}, {"num_experts": 1}, {"tie_embeddings": True},
                      {"num_shared_experts": 2, "shared_intermediate_dim": 16}, {"num_kv_heads": 4}):
        model = tiny(**overrides)
        assert model(ids).logits.shape == (2, 5, 512), overrides
    tied = tiny(tie_embeddings=True)
    assert tied.lm_head.weight is tied.embed_tokens.weight
    shared = tiny(num_shared_experts=2, shared_intermediate_dim=16)
    moe = shared.moe_layers()[0][1]
    assert moe.shared_expert is not None
    assert moe.shared_expert.get_parameter("w1.weight").shape == (32, 64)  # 2 experts x 16 wide


def test_parameter_counts() -> None:
    model = tiny()
    per_expert = 3 * 64 * 128
    total = sum(p.numel() for p in model.parameters())
    assert model.num_parameters() == total
    assert model.num_parameters(active=True) == total - 2 * (4 - 2) * per_expert
    dense = tiny(num_experts=1)
    assert dense.num_parameters(active=True) == dense.num_parameters()


# -- MoE ---------------------------------------------------------------------------------------
def test_load_balancing_loss_known_values() -> None:
    e = 4
    uniform = torch.full((8, e), 1 / e)
    balanced = torch.tensor([[0, 1], [2, 3]] * 4)  # every expert gets 1/4 of the assignments
    assert load_balancing_loss(uniform, balanced).item() == pytest.approx(1.0)
    collapsed = torch.zeros(8, e)
    collapsed[:, 0] = 1.0
    assert load_balancing_loss(collapsed, torch.zeros(8, 1, dtype=torch.long)).item() == pytest.approx(4.0)
    # f = (1/2, 1/2, 0, 0), P = (0.7, 0.1, 0.1, 0.1) -> 4 * (0.35 + 0.05) = 1.6
    probs = torch.tensor([[0.7, 0.1, 0.1, 0.1]]).repeat(4, 1)
    idx = torch.tensor([[0], [1], [0], [1]])
    assert load_balancing_loss(probs, idx).item() == pytest.approx(1.6)
    # padding tokens are excluded: masking the rows routed to expert 1 leaves f = (1, 0, 0, 0)
    mask = torch.tensor([1, 0, 1, 0])
    assert load_balancing_loss(probs, idx, mask).item() == pytest.approx(4 * 0.7)


def test_router_z_loss_known_values() -> None:
    assert router_z_loss(torch.zeros(3, 4)).item() == pytest.approx(math.log(4) ** 2)
    logits = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    expected_first = math.log(2) ** 2
    assert router_z_loss(logits, torch.tensor([1, 0])).item() == pytest.approx(expected_first)


def test_route_renormalises_top_k() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    probs, weights, idx = route(logits, 2)
    assert idx.tolist() == [[0, 1]]
    p = torch.softmax(logits, -1)[0]
    torch.testing.assert_close(weights, (p[:2] / p[:2].sum()).unsqueeze(0))
    assert probs.dtype == torch.float32


def test_eager_and_static_dispatch_agree() -> None:
    model = tiny().eval()
    ids = torch.randint(0, 512, (3, 7))
    eager = model(ids).logits
    for _, moe in model.moe_layers():
        moe.static_dispatch = True
    torch.testing.assert_close(model(ids).logits, eager, rtol=0, atol=1e-6)
    # single-token fast path == sorted path == static
    x = torch.randn(1, 1, 64)
    moe = model.moe_layers()[0][1]
    static = moe(x)[0]
    moe.static_dispatch = False
    torch.testing.assert_close(moe(x)[0], static, rtol=0, atol=1e-6)


def test_experts_run_only_on_their_tokens() -> None:
    torch.manual_seed(0)
    from salesai.model.experts import SwiGLUExpert

    moe = MoE(16, 32, num_experts=4, top_k=2, expert_factory=SwiGLUExpert)
    seen: list[int] = []
    for expert in moe.experts:
        expert.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    x = torch.randn(1, 10, 16)
    y, _, _ = moe(x)
    assert sum(seen) == 10 * 2  # dropless: N * k rows in all, each token at its own experts only
    # reference: dense evaluation of every expert, weighted by the renormalised top-k gates
    h = x.reshape(10, 16)
    _, w, idx = route(moe.gate(h), 2)
    ref = torch.stack([
        sum(w[n, j] * moe.experts[int(idx[n, j])](h[n:n + 1])[0] for j in range(2)) for n in range(10)
    ])
    torch.testing.assert_close(y.reshape(10, 16), ref)


def test_expert_usage_counts_and_reset() -> None:
    model = tiny().eval()
    assert model.state_dict().keys() == tiny().state_dict().keys()  # counters are not state
    ids = torch.randint(0, 512, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, :2] = 0  # two padding tokens
    model(ids, attention_mask=mask)
    usage = model.expert_usage()
    assert [u["layer"] for u in usage] == [0, 1]
    for u in usage:
        assert u["assignments"] == (12 - 2) * 2
        assert sum(u["share"]) == pytest.approx(1.0)
        assert 0.0 < u["balance"] <= 1.0 and 0.0 < u["utilisation"] <= 1.0
    model.reset_expert_usage()
    assert all(u["assignments"] == 0 for u in model.expert_usage())
    assert tiny(num_experts=1).expert_usage() == []
    assert usage_summary([5, 5, 5, 5])["balance"] == pytest.approx(1.0)
    one = usage_summary([8, 0, 0, 0])
    assert (one["balance"], one["utilisation"], one["share"]) == (0.0, 0.25, [1.0, 0.0, 0.0, 0.0])


# -- masks, positions, explicit KV ---------------------------------------------------------------
def test_left_padding_matches_unpadded() -> None:
    model = tiny().eval()
    ids = torch.randint(3, 512, (1, 6))
    padded = torch.cat((torch.zeros(1, 3, dtype=torch.long), ids), dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    batch = torch.cat((padded, torch.randint(3, 512, (1, 9))))
    bmask = torch.cat((mask, torch.ones(1, 9, dtype=torch.long)))
    out = model(batch, attention_mask=bmask).logits
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 3:], model(ids).logits[0], rtol=1e-5, atol=1e-5)


def test_explicit_past_matches_full_forward() -> None:
    model = tiny().eval()
    ids = torch.randint(0, 512, (2, 10))
    full = model(ids).logits
    first = model(ids[:, :6], use_cache=True)
    past = first.past_key_values
    assert isinstance(past, list) and len(past) == 2 and past[0][0].shape == (2, 2, 6, 16)
    second = model(ids[:, 6:], past_key_values=past)
    torch.testing.assert_close(torch.cat((first.logits, second.logits), 1), full, rtol=1e-5, atol=1e-5)


def test_decoder_forward_matches_forward_with_padding() -> None:
    model = tiny().eval()
    ids = torch.randint(3, 512, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[0, :3] = 0
    ref = model(ids, attention_mask=mask).logits
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    empty = [torch.zeros(2, 2, 0, 16) for _ in range(2)]
    with torch.no_grad():
        x = model.embed(ids[:, :5])
        logits, keys, values = model.decoder_forward(x, mask[:, :5], pos[:, :5], empty, empty)
        assert keys[0].shape == (2, 2, 5, 16) and logits.shape == (2, 5, 512)
        last, keys2, _ = model.decoder_forward(model.embed(ids[:, 5:]), mask, pos[:, 5:], keys, values,
                                               last_logits_only=True)
    assert last.shape == (2, 1, 512) and keys2[1].shape == (2, 2, 8, 16)
    valid = mask[:, :5].bool()
    torch.testing.assert_close(logits[valid], ref[:, :5][valid], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last[:, 0], ref[:, -1], rtol=1e-5, atol=1e-5)


def test_decoder_forward_exports_with_dynamic_shapes() -> None:
    """torch.export with dynamic batch, sequence and past (the ONNX exporter's starting point)."""
    model = tiny(num_layers=1).eval()

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, x, mask, pos, k, v):
            logits, keys, values = self.m.decoder_forward(x, mask, pos, [k], [v])
            return logits, keys[0], values[0]

    dim = torch.export.Dim
    b, t, p = dim("batch", max=64), dim("seq", max=2048), dim("past", max=2048)
    shapes = ({0: b, 1: t}, {0: b, 1: dim.AUTO}, {0: b, 1: t}, {0: b, 2: p}, {0: b, 2: p})
    args = (torch.randn(2, 3, 64), torch.ones(2, 7, dtype=torch.long), torch.arange(4, 7).expand(2, 3),
            torch.randn(2, 2, 4, 16), torch.randn(2, 2, 4, 16))
    ep = torch.export.export(Graph(), args, dynamic_shapes=shapes)
    x = torch.randn(3, 5, 64)
    k = v = torch.zeros(3, 2, 0, 16)
    mask = torch.ones(3, 5, dtype=torch.long)
    pos = torch.arange(5).expand(3, 5)
    with torch.no_grad():
        got = ep.module()(x, mask, pos, k, v)
        want = Graph()(x, mask, pos, k, v)
    torch.testing.assert_close(got[0], want[0])
    assert got[1].shape == (3, 2, 5, 16)


# -- docs ------------------------------------------------------------------------------------------
MODEL_MD = Path(__file__).resolve().parents[3] / "docs" / "model.md"


@pytest.mark.skipif(not MODEL_MD.is_file(), reason="runs from a repository checkout (docs/ not found)")
def test_docs_model_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    blocks = re.findall(r"```python\n(.*?)```", MODEL_MD.read_text(), flags=re.S)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"docs/model.md[python block {i}]", "exec"), {"__name__": "__docs__"})
        except Exception as exc:
            raise AssertionError(f"docs/model.md python block {i} failed: {exc!r}\n{code}") from exc
