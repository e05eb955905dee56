"""Generation: KV cache == full forward, batching with left padding, samplers, seeds, stop tokens, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from salesai.errors import SalesAIError
from salesai.model.cache import StaticKVCache
from salesai.model.config import ModelConfig
from salesai.model.generation import apply_repetition_penalty, decode_layout, sample_next
from salesai.model.transformer import SalesAIModel

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> SalesAIModel:
    torch.manual_seed(0)
    return SalesAIModel(ModelConfig.from_name("tiny", init_std=0.1)).eval()


def test_cached_decoding_equals_full_forward(model: SalesAIModel) -> None:
    ids = torch.randint(0, 512, (2, 12))
    full = model(ids).logits  # (2, 12, V)
    cache = StaticKVCache.for_model(model, 2, 16)
    keys = cache.keys[0]
    with torch.inference_mode():
        steps = [model.step(ids[:, :5], cache)]
        steps += [model.step(ids[:, i:i + 1], cache) for i in range(5, 12)]
    assert cache.keys[0] is keys and cache.length == 12  # written in place, never reallocated
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 4:], rtol=1e-5, atol=1e-5)


def test_cached_decoding_with_left_padding_equals_full_forward(model: SalesAIModel) -> None:
    ids = torch.randint(3, 512, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, :4] = 0
    full = model(ids, attention_mask=mask).logits
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    valid = mask.bool()
    cache = StaticKVCache.for_model(model, 2, 10)
    with torch.inference_mode():
        steps = [model.step(ids[:, :6], cache, pos[:, :6], valid[:, :6])]
        steps += [model.step(ids[:, i:i + 1], cache, pos[:, i:i + 1], valid[:, :i + 1]) for i in range(6, 10)]
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 5:], rtol=1e-5, atol=1e-5)


def test_decode_layout_keeps_values_and_outputs(model: SalesAIModel, tmp_path: Path) -> None:
    """Column-major Linear weights (the fast decode path) change strides only: same logits and tokens."""
    import copy

    fast = copy.deepcopy(model)
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in fast.modules())
    assert decode_layout(fast) == n_linear
    assert decode_layout(fast) == 0  # already laid out: nothing to do
    w = fast.layers[0].self_attn.q_proj.weight
    assert w.shape == model.layers[0].self_attn.q_proj.weight.shape and w.stride() == (1, w.shape[0])
    for (name, a), (_, b) in zip(model.state_dict().items(), fast.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    ids = torch.randint(3, 512, (2, 9), generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        torch.testing.assert_close(fast(ids).logits, model(ids).logits, rtol=1e-5, atol=1e-5)
    prompts = [[2, 40, 41, 42], [2, 7]]
    kwargs = {"max_new_tokens": 16, "temperature": 0.0, "stop_token_ids": []}
    assert fast.generate(prompts, **kwargs) == model.generate(prompts, **kwargs)
    fast.save_pretrained(tmp_path / "ckpt")  # saved contiguous, loads back equal
    again = SalesAIModel.from_pretrained(tmp_path / "ckpt")
    assert again.layers[0].self_attn.q_proj.weight.is_contiguous()
    assert torch.equal(again.layers[0].self_attn.q_proj.weight, model.layers[0].self_attn.q_proj.weight)


def test_batched_left_padded_greedy_equals_one_by_one(model: SalesAIModel) -> None:
    prompts = [[5, 17, 42], [7, 8, 9, 10, 11, 12, 13], [100]]
    batched = model.generate(prompts, max_new_tokens=12, temperature=0, stop_token_ids=[])
    single = [model.generate([p], max_new_tokens=12, temperature=0, stop_token_ids=[])[0] for p in prompts]
    assert batched == single
    assert all(len(r) == 12 for r in batched)
    # the same through a left-padded tensor + attention_mask: prompt + completion per row
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    out = model.generate(ids, attention_mask=mask, max_new_tokens=12, temperature=0, stop_token_ids=[])
    assert out.shape == (3, width + 12) and torch.equal(out[:, :width], ids)
    assert out[:, width:].tolist() == single


def test_same_seed_same_output(model: SalesAIModel) -> None:
    args = dict(max_new_tokens=16, temperature=1.0, top_k=50, top_p=0.9, stop_token_ids=[])
    a = model.generate([[5, 6, 7]], seed=123, **args)
    b = model.generate([[5, 6, 7]], seed=123, **args)
    c = model.generate([[5, 6, 7]], seed=124, **args)
    assert a == b and a != c


def test_stop_tokens_end_rows(model: SalesAIModel) -> None:
    greedy = model.generate([[5, 6, 7]], max_new_tokens=10, temperature=0, stop_token_ids=[])[0]
    stop = greedy[3]
    first = greedy.index(stop)
    out = model.generate([[5, 6, 7]], max_new_tokens=10, temperature=0, stop_token_ids=[stop])[0]
    assert out == greedy[: first + 1]  # the stop token is kept and ends the row
    batch = model.generate([[5, 6, 7], [9, 9]], max_new_tokens=10, temperature=0, stop_token_ids=[stop])
    assert batch[0] == out
    prompt = torch.tensor([[5, 6, 7]])
    tensor = model.generate(prompt, max_new_tokens=10, temperature=0, stop_token_ids=[stop])
    assert tensor[0, 3:].tolist() == out  # every row stopped: generation ends early


def test_stream_yields_what_generate_returns(model: SalesAIModel) -> None:
    args = dict(max_new_tokens=8, temperature=0.7, seed=3, stop_token_ids=[])
    assert list(model.stream([4, 5, 6], **args)) == model.generate([[4, 5, 6]], **args)[0]
    rows = list(model.stream([[4, 5, 6], [7]], **args))
    assert len(rows) == 8 and all(isinstance(r, list) and len(r) == 2 for r in rows)
    greedy = dict(max_new_tokens=6, temperature=0, stop_token_ids=[])
    first_rows = [r[0] for r in model.stream([[4, 5, 6], [7]], **greedy)]
    assert first_rows == model.generate([[4, 5, 6]], **greedy)[0]


def test_samplers() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0, -1.0]])
    assert sample_next(logits, temperature=0).tolist() == [1]
    gen = torch.Generator().manual_seed(0)
    assert {sample_next(logits, 1.0, top_k=1, generator=gen).item() for _ in range(20)} == {1}
    assert {sample_next(logits, 5.0, top_p=0.01, generator=gen).item() for _ in range(20)} == {1}
    picked = {sample_next(logits, 1.0, top_k=2, generator=gen).item() for _ in range(200)}
    assert picked == {1, 2}
    seen = torch.tensor([[True, False, True, True]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    assert out.tolist() == [[0.5, 3.0, 1.0, -2.0]]


def test_repetition_penalty_changes_greedy_output(model: SalesAIModel) -> None:
    plain = model.generate([[5, 6]], max_new_tokens=20, temperature=0, stop_token_ids=[])[0]
    penalised = model.generate([[5, 6]], max_new_tokens=20, temperature=0, stop_token_ids=[],
                               repetition_penalty=5.0)[0]
    assert len(set(penalised)) >= len(set(plain))


def test_generation_errors(model: SalesAIModel) -> None:
    with pytest.raises(SalesAIError, match=r"exceeds the model's max_seq_len \(256\)"):
        model.generate([[1] * 250], max_new_tokens=10)
    with pytest.raises(SalesAIError, match="left padding"):
        model.generate(torch.tensor([[5, 6, 0]]), attention_mask=torch.tensor([[1, 1, 0]]))
    with pytest.raises(SalesAIError, match=r"top_p=1\.5"):
        model.generate([[5]], top_p=1.5)
    with pytest.raises(SalesAIError, match="non-empty"):
        model.generate([[]])
    assert model.generate([[5]], max_new_tokens=0) == [[]]


# -- CLI -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from salesai.model.checkpoint import save_checkpoint
    from salesai.tokenizer import Tokenizer

    texts = ["def add(a, b):\n    return a + b\n", "hello world, the quick brown fox jumps"] * 20
    tok = Tokenizer.train(iter(texts), vocab_size=320, verbose=False)
    torch.manual_seed(0)
    model = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(tok), init_std=0.1))
    return save_checkpoint(tmp_path_factory.mktemp("gen") / "ckpt", model, tok)


def test_cli_generate_prints_completion_and_stats(checkpoint: Path) -> None:
    from salesai.model.checkpoint import load_checkpoint
    from salesai.testing import run_cli

    args = ["generate", str(checkpoint), "hello world", "--max-new-tokens", "8", "--temperature", "0"]
    result = run_cli(args)
    assert result.exit_code == 0, result.stderr
    model, tok = load_checkpoint(checkpoint)
    ids = model.generate([tok.encode("hello world", add_bos=True)], max_new_tokens=8, temperature=0)[0]
    expected = tok.decode([i for i in ids if i != tok.eos_id])
    assert result.stdout == expected + "\n"
    prompt = len(tok.encode("hello world", add_bos=True))
    assert "tokens/s" in result.stderr and f"prompt {prompt} tokens, generated 8 tokens" in result.stderr
    streamed = run_cli([*args, "--stream", "--threads", "1"])
    assert streamed.exit_code == 0 and streamed.stdout == result.stdout
    seeded = [run_cli(["generate", str(checkpoint), "hi", "-n", "6", "--seed", "5"]).stdout for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_cli_generate_errors(checkpoint: Path, tmp_path: Path) -> None:
    from salesai.testing import run_cli

    bad = run_cli(["generate", str(checkpoint), "hi", "--backend", "nope"])
    assert bad.exit_code == 2 and "--backend 'nope': unknown; expected one of:" in bad.stderr
    assert "torch" in bad.stderr.rsplit(":", 1)[1]
    missing = run_cli(["generate", str(tmp_path / "none"), "hi"])
    assert missing.exit_code == 2 and "checkpoint directory not found" in missing.stderr
