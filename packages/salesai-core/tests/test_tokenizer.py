"""Tokenizer: fixed ids, single-id symbols, lossless round trip, vocab shrink, files, errors, CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from salesai.errors import SalesAIError
from salesai.testing import run_cli
from salesai.tokenizer import CHAT_TOKENS, MODALITY_TOKENS, Tokenizer

SPECIALS = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3, "<image>": 4, "<audio>": 5, "<code>": 6,
            "<|system|>": 7, "<|user|>": 8, "<|assistant|>": 9, "<|end|>": 10}


def synthetic_corpus(n_functions: int = 300, seed: int = 0) -> str:
    """About 60 kB of Python-like code and prose, the same for a seed."""
    rng = random.Random(seed)
    names = ["alpha", "beta", "gamma", "delta", "value", "items", "count", "total", "result", "node"]
    parts = []
    for i in range(n_functions):
        a, b = rng.sample(names, 2)
        parts.append(
            f"def {a}_{i}({a}, {b}=None):\n"
            f'    """Return the {a} of {b} ({i})."""\n'
            f"    if {b} is None:\n"
            f"        {b} = []\n"
            f"    for x in range({rng.randint(1, 99)}):\n"
            f"        {a} += x * {rng.randint(2, 9)}\n"
            f"    return {a}, {b}\n\n"
        )
        if i % 10 == 0:
            parts.append("The quick brown fox jumps over the lazy dog. Ünïcödé, 日本語 and emoji 🙂.\n\n")
    return "".join(parts)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.py"
    path.write_text(synthetic_corpus(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tok(corpus_file: Path) -> Tokenizer:
    return Tokenizer.train([corpus_file], vocab_size=500, num_threads=1, verbose=False)


def random_text(rng: random.Random) -> str:
    """A random string mixing whitespace runs, code, emoji, CJK, combining marks, any code point."""
    pool = [" ", "  ", "    ", "\t", "\n", "\n\n", "\r\n", "\x0b", "\x0c", "\u00a0", "\u3000", "\u2028",
            "\u2581", "😀", "👨\u200d👩\u200d👧", "👍🏽", "日本語", "中文字", "한국어", "e\u0301", "ﬁ",
            "\ufeff", "\x00", "<image>", "<ima", "<|user|>", "<|", "<s>", "</s>", "def f(x):", "0123",
            "  return x"]
    out = []
    for _ in range(rng.randint(0, 24)):
        r = rng.random()
        if r < 0.5:
            out.append(rng.choice(pool))
        elif r < 0.75:
            out.append(chr(rng.randint(32, 126)))
        else:
            cp = rng.randint(0, 0x10FFFF)
            out.append(chr(cp) if not 0xD800 <= cp <= 0xDFFF else "?")
    return "".join(out)


def test_fixed_special_ids(tok: Tokenizer) -> None:
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.special_tokens == SPECIALS
    for token, i in SPECIALS.items():
        assert tok.token_to_id(token) == i
        assert tok.id_to_token(i) == token
    assert len(tok) == 500 and tok.vocab_size == 500
    assert tok.model_type == "bpe"


def test_symbols_always_encode_to_one_id(tok: Tokenizer) -> None:
    for symbol in (*MODALITY_TOKENS, *CHAT_TOKENS):
        i = SPECIALS[symbol]
        assert tok.encode(symbol) == [i]
        for context in (f"x{symbol}y", f"  {symbol}\n", f"{symbol}{symbol}", f"def f():{symbol}"):
            ids = tok.encode(context)
            assert ids.count(i) == context.count(symbol), context
            assert tok.decode(ids) == context
    # Control tokens are never produced from text; add_bos/add_eos add them.
    assert 2 not in tok.encode("<s>hello</s>") and 3 not in tok.encode("<s>hello</s>")
    ids = tok.encode("hello", add_bos=True, add_eos=True)
    assert ids[0] == 2 and ids[-1] == 3 and tok.decode(ids) == "hello"


def test_round_trip_random_unicode(tok: Tokenizer) -> None:
    rng = random.Random(1234)
    for _ in range(1500):
        s = random_text(rng)
        ids = tok.encode(s)
        assert tok.decode(ids) == s, repr(s)
        assert tok.unk_id not in ids, repr(s)  # byte fallback: nothing is unknown


@pytest.mark.parametrize("text", [
    "", " ", "   leading", "trailing   ", "a  b   c", "\n", "\n\n\nx\n", "\t\tx = 1\t", "\r\n",
    "    def f(x):\n        return x\n", "▁", "a▁▁b ▁", "🙂🙃" * 3, "日本語のテキスト", "１２３ 123 ①",
    "\x00\x01",
])
def test_round_trip_edge_cases(tok: Tokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


def test_whitespace_and_digits_kept(tok: Tokenizer) -> None:
    # Identity normalisation: runs of spaces are not collapsed, no dummy prefix is added.
    assert tok.encode("x") != tok.encode(" x")
    assert tok.decode(tok.encode("    return x")) == "    return x"
    pieces = [tok.id_to_token(i) for i in tok.encode("a" + " " * 8 + "b")]
    assert "".join(pieces) == "a" + "\u2581" * 8 + "b"  # all 8 spaces kept
    # split_digits: every digit its own piece.
    assert [tok.id_to_token(i) for i in tok.encode("2024")] == ["2", "0", "2", "4"]
    assert tok.encode("\n") == [11]


def test_byte_fallback_for_unseen_characters(tok: Tokenizer) -> None:
    ids = tok.encode("𝔘")  # not in the corpus: its 4 UTF-8 bytes
    assert [tok.id_to_token(i) for i in ids] == ["<0xF0>", "<0x9D>", "<0x94>", "<0x98>"]


def test_encode_batch_matches_encode(tok: Tokenizer) -> None:
    texts = ["def f(x):", "a▁b", "", "日本語 🙂", "<image> caption"]
    assert tok.encode_batch(texts, add_bos=True) == [tok.encode(t, add_bos=True) for t in texts]


def test_decode_accepts_arrays_and_rejects_bad_ids(tok: Tokenizer) -> None:
    import numpy as np

    ids = tok.encode("return x")
    assert tok.decode(np.array(ids)) == "return x"
    with pytest.raises(SalesAIError, match="token id 500"):
        tok.decode([500])
    with pytest.raises(KeyError, match="<video>"):
        tok.token_to_id("<video>")


def test_save_and_load(tok: Tokenizer, tmp_path: Path) -> None:
    path = tok.save_pretrained(tmp_path / "ckpt")
    assert path == tmp_path / "ckpt" / "tokenizer.model"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["tokenizer.model"]
    for source in (tmp_path / "ckpt", path, str(path)):
        loaded = Tokenizer.from_pretrained(source)
        assert loaded.fingerprint == tok.fingerprint
        assert loaded.encode("def f(x):\n  return 1") == tok.encode("def f(x):\n  return 1")


def test_train_from_iterator_leaves_no_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = set(Path(tempfile.gettempdir()).iterdir())
    lines = (line for line in synthetic_corpus(80, seed=3).splitlines())
    t = Tokenizer.train(lines, vocab_size=400, num_threads=1, verbose=False)
    assert len(t) == 400 and t.special_tokens == SPECIALS
    assert list(work.iterdir()) == []
    assert set(Path(tempfile.gettempdir()).iterdir()) - before == set()


def test_vocab_shrinks_with_notice(capsys: pytest.CaptureFixture[str]) -> None:
    t = Tokenizer.train(iter(["def f(x):\n    return x + 1\n"] * 4), vocab_size=2000, num_threads=1)
    assert 280 < len(t) < 2000
    assert t.notices == [t.notices[0]] and f"shrunk from 2000 to {len(t)}" in t.notices[0]
    assert f"notice: vocabulary shrunk from 2000 to {len(t)}" in capsys.readouterr().err
    assert t.decode(t.encode("def g(y): return y")) == "def g(y): return y"


def test_training_is_deterministic(corpus_file: Path, tok: Tokenizer) -> None:
    again = Tokenizer.train([corpus_file], vocab_size=500, verbose=False)
    assert again.fingerprint == tok.fingerprint


def test_unigram(tmp_path: Path) -> None:
    text = synthetic_corpus(120, seed=5)
    t = Tokenizer.train(iter([text]), vocab_size=350, model_type="unigram", out_dir=tmp_path, num_threads=1,
                        verbose=False)
    assert t.model_type == "unigram" and len(t) == 350 and t.special_tokens == SPECIALS
    assert (tmp_path / "tokenizer.model").is_file()
    rng = random.Random(7)
    for _ in range(300):
        s = random_text(rng)
        assert t.decode(t.encode(s)) == s


def test_errors_name_the_input(tmp_path: Path) -> None:
    with pytest.raises(SalesAIError, match=r"missing\.txt: no such file"):
        Tokenizer.train([tmp_path / "missing.txt"], vocab_size=500)
    with pytest.raises(SalesAIError, match=r"has no tokenizer\.model"):
        Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(SalesAIError, match=r"nope\.model: no such file"):
        Tokenizer.from_pretrained(tmp_path / "nope.model")
    bad = tmp_path / "bad.model"
    bad.write_text("this is not a model")
    with pytest.raises(SalesAIError, match=r"bad\.model: not a SentencePiece model"):
        Tokenizer.from_pretrained(bad)
    with pytest.raises(SalesAIError, match="model_type 'wordpiece'"):
        Tokenizer.train(iter(["abc"]), vocab_size=500, model_type="wordpiece")
    with pytest.raises(SalesAIError, match="vocab_size 100: expected at least 269"):
        Tokenizer.train(iter(["abc"]), vocab_size=100)
    with pytest.raises(SalesAIError, match="no text to train"):
        Tokenizer.train(iter(["", "   "]), vocab_size=500)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": oops}\n')
    with pytest.raises(SalesAIError, match=r"broken\.jsonl:2: malformed JSON"):
        Tokenizer.train([broken], vocab_size=500)


def test_pickle_round_trip(tok: Tokenizer) -> None:
    import pickle

    again = pickle.loads(pickle.dumps(tok))
    assert again.fingerprint == tok.fingerprint and again.encode("x ▁ y") == tok.encode("x ▁ y")


def test_cli_train_encode_decode(corpus_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    args = ["tokenizer", "train", str(corpus_file), "--vocab-size", "500", "--out", str(out), "--json"]
    result = run_cli(args)
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["vocab_size"] == 500 and info["model_type"] == "bpe" and info["notices"] == []
    assert info["special_tokens"] == SPECIALS and (out / "tokenizer.model").is_file()

    result = run_cli(["tokenizer", "encode", str(out), "<image>\n<|user|>"])
    assert result.exit_code == 0 and result.stdout.split() == ["4", "11", "8"]
    result = run_cli(["tokenizer", "encode", str(out), "hi", "--bos", "--eos", "--json"])
    ids = json.loads(result.stdout)["ids"]
    assert ids[0] == 2 and ids[-1] == 3
    result = run_cli(["tokenizer", "decode", str(out), *map(str, ids)])
    assert result.stdout == "hi\n"


def test_cli_missing_file_is_one_line(tmp_path: Path) -> None:
    result = run_cli(["tokenizer", "train", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.txt'}: no such file or folder"]
