"""Data: sources, the stdlib corpus, held-out signatures, the token cache, the data ordering, inspect."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from salesai import data
from salesai.data import SampleOrder, TokenSequences
from salesai.data import tokens as data_tokens
from salesai.data.inspection import inspect_data
from salesai.errors import SalesAIError
from salesai.testing import ByteTokenizer, run_cli


class CountingTokenizer(ByteTokenizer):
    """A byte tokenizer that counts the texts it encodes (to prove the cache is reused)."""

    def __init__(self, vocab: int | None = None) -> None:
        super().__init__()
        self.calls = 0
        self._vocab = vocab

    def encode_batch(
        self, texts: Sequence[str], add_bos: bool = False, add_eos: bool = False
    ) -> list[list[int]]:
        self.calls += len(texts)
        return super().encode_batch(texts, add_bos=add_bos, add_eos=add_eos)

    def __len__(self) -> int:
        return self._vocab or super().__len__()


def expected_tokens(tok: ByteTokenizer, texts: list[str]) -> list[int]:
    out: list[int] = []
    for t in texts:
        out += tok.encode(t, add_bos=True, add_eos=True)
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "a.py").write_text("def a():\n    return 1\n")
    (root / "pkg" / "b.txt").write_text("bee text\n")
    (root / "pkg" / "sub" / "c.md").write_text("# see\n")
    (root / "pkg" / "image.png").write_bytes(b"\x89PNG")
    (root / ".hidden" / "d.py").write_text("hidden = 1\n")
    return root


# ------------------------------------------------------------------------------------ sources
def test_resolve_sources_files_folders_globs(tree: Path) -> None:
    found = data.resolve_sources(tree)
    assert found == [tree / "a.py", tree / "pkg" / "b.txt", tree / "pkg" / "sub" / "c.md"]
    assert data.resolve_sources([str(tree / "**" / "*.md"), tree / "a.py", tree / "a.py"]) == [
        tree / "pkg" / "sub" / "c.md", tree / "a.py"]
    with pytest.raises(SalesAIError, match=r"nope\.txt: no such file or folder"):
        data.resolve_sources([tree / "nope.txt"])
    with pytest.raises(SalesAIError, match="no files match"):
        data.resolve_sources(str(tree / "*.rs"))
    (tree / "empty").mkdir()
    with pytest.raises(SalesAIError, match="folder has no text files"):
        data.resolve_sources(tree / "empty")


def test_jsonl_records(tmp_path: Path) -> None:
    f = tmp_path / "set" / "d.jsonl"
    f.parent.mkdir()
    f.write_text('{"metadata": {"modalities": ["text", "image"]}}\n'
                 '{"text": "a cat", "image": "img/cat.png"}\n\n'
                 '{"text": "hello", "audio": "a.wav"}\n')
    records = list(data.iter_records(f))
    assert [(r.text, r.line) for r in records] == [("a cat", 2), ("hello", 4)]
    assert records[0].image == f.parent / "img" / "cat.png" and records[0].audio is None
    assert records[1].audio == f.parent / "a.wav"
    assert list(data.iter_texts(f)) == ["a cat", "hello"]
    f.write_text('{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(SalesAIError, match=r"d\.jsonl:2: malformed JSON"):
        list(data.iter_records(f))


# ------------------------------------------------------------------------------- stdlib corpus
def test_stdlib_corpus_capped_split() -> None:
    split = data.stdlib_corpus(max_bytes=200_000)
    again = data.stdlib_corpus(max_bytes=200_000)
    assert split == again  # deterministic
    assert split.train and split.validation and not set(split.train) & set(split.validation)
    assert split.train == sorted(split.train) and split.validation == sorted(split.validation)
    assert split.train_bytes <= 200_000 * 0.98
    assert split.validation_bytes <= 4_000 or len(split.validation) == 1
    for p in split.train + split.validation:
        rel = p.relative_to(split.root).parts
        assert p.suffix == ".py" and not set(rel) & {"test", "tests", "idlelib", "lib2to3", "site-packages"}
        assert not rel[-1].startswith("test_")


def test_stdlib_files_exclusions_and_full_split() -> None:
    files = data.stdlib_files()
    root = data.stdlib_root()
    rels = {p.relative_to(root).as_posix() for p in files}
    assert "os.py" in rels and "json/decoder.py" in rels
    assert not any(r.startswith(("test/", "idlelib/", "lib2to3/", "site-packages/")) for r in rels)
    assert "pydoc_data/topics.py" not in rels  # huge generated file
    split = data.split_files(files, root, val_fraction=0.02)
    assert len(split.train) + len(split.validation) == len(files)
    assert 0.005 < len(split.validation) / len(files) < 0.06  # about 2 %
    # The split depends on paths only, not on the order they are given in.
    assert data.split_files(list(reversed(files)), root, 0.02) == split


def test_heldout_signatures(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "import os\n\n"
        "def add(a, b=1):\n"
        '    """Add two numbers."""\n'
        "    c = a + b\n"
        "    return c\n\n"
        "class K:\n"
        "    def method(self, x):\n"
        "        y = x * 2\n"
        "        return y\n\n"
        "def one_liner(): return 1\n\n"
        "def long_header(\n    a,\n):\n    x = a\n    return x\n"
    )
    sigs = data.heldout_signatures([src], n=10)
    assert [(s.name, s.line, s.prompt) for s in sigs] == [
        ("add", 3, "def add(a, b=1):\n"), ("method", 9, "def method(self, x):\n")]
    assert sigs[0].reference == '    """Add two numbers."""\n    c = a + b\n    return c\n'
    assert sigs[1].reference == "    y = x * 2\n    return y\n"
    with_doc = data.heldout_signatures([src], n=10, include_docstring=True)
    assert with_doc[0].prompt == 'def add(a, b=1):\n    """Add two numbers."""\n'
    assert with_doc[0].reference == "    c = a + b\n    return c\n"
    for s in sigs:  # prompt + reference is valid Python again
        ast.parse(s.prompt + s.reference)


def test_heldout_signatures_from_stdlib_validation() -> None:
    val = data.stdlib_corpus().validation
    sigs = data.heldout_signatures(val, n=6, seed=0)
    assert len(sigs) == 6 and sigs == data.heldout_signatures(val, n=6, seed=0)
    assert sigs != data.heldout_signatures(val, n=6, seed=1)
    for s in sigs:
        assert s.path in val and s.prompt.startswith(("def ", "async def ")) and s.prompt.endswith(":\n")
        ast.parse(s.prompt + "    pass\n")


# --------------------------------------------------------------------------------- token cache
def test_tokenize_files_layout_and_cache_reuse(tree: Path, tmp_path: Path) -> None:
    tok = CountingTokenizer()
    cache = tmp_path / "cache"
    tf = data.tokenize_files(tree, tok, cache, name="train")
    files = data.resolve_sources(tree)
    texts = [f.read_text() for f in files]
    assert tf.created and tf.dtype == "uint16" and tf.num_documents == 3
    assert tf.tokens().tolist() == expected_tokens(tok, texts)  # <s> doc </s> <s> doc </s> ...
    assert tok.calls == 3
    assert sorted(p.name for p in cache.iterdir()) == [f"train-{tf.key}.bin", f"train-{tf.key}.json"]
    mtime = tf.path.stat().st_mtime_ns

    again = data.tokenize_files(tree, tok, cache, name="train")
    assert not again.created and tok.calls == 3  # nothing re-tokenised
    assert again.path == tf.path and tf.path.stat().st_mtime_ns == mtime
    assert data.load_token_file(tf.path).num_tokens == tf.num_tokens

    # Changing a source changes the key; the stale file of that name is removed.
    (tree / "a.py").write_text("def a():\n    return 2  # changed\n")
    changed = data.tokenize_files(tree, tok, cache, name="train")
    assert changed.created and changed.key != tf.key and tok.calls == 6
    names = sorted(p.name for p in cache.iterdir())
    assert names == [f"train-{changed.key}.bin", f"train-{changed.key}.json"]


def test_tokenize_files_uint32_for_large_vocab(tree: Path, tmp_path: Path) -> None:
    tf = data.tokenize_files(tree / "a.py", CountingTokenizer(vocab=70_000), tmp_path)
    assert tf.dtype == "uint32" and tf.path.stat().st_size == 4 * tf.num_tokens


def test_tokenize_files_failure_leaves_nothing(tree: Path, tmp_path: Path) -> None:
    class Broken(ByteTokenizer):
        def encode_batch(
            self, texts: Sequence[str], add_bos: bool = False, add_eos: bool = False
        ) -> list[list[int]]:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        data.tokenize_files(tree, Broken(), tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_chunked_encoding_matches_whole_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from salesai.tokenizer import Tokenizer

    text = "".join(f"def f{i}(x):\n    return x + {i}  # ünï 🙂\n\n" for i in range(200))
    (tmp_path / "doc.py").write_text(text)
    tok = Tokenizer.train(iter([text]), vocab_size=400, num_threads=1, verbose=False)
    monkeypatch.setattr(data_tokens, "_ENCODE_CHUNK_CHARS", 50)
    tf = data.tokenize_files(tmp_path / "doc.py", tok, tmp_path / "cache")
    assert tf.tokens().tolist() == tok.encode(text, add_bos=True, add_eos=True)


# ------------------------------------------------------------------------------------- inspect
@pytest.fixture
def jsonl(tmp_path: Path) -> Path:
    (tmp_path / "cat.png").write_bytes(b"\x89PNG")
    f = tmp_path / "d.jsonl"
    f.write_text(
        '{"metadata": {"modalities": ["text", "image"], "name": "demo"}}\n'  # 1
        '{"text": "a cat", "image": "cat.png"}\n'  # 2
        '{"text": "a dog", "image": "dog.png"}\n'  # 3: missing image
        "\n"  # 4: blank, ignored
        '{"text": ""}\n'  # 5: empty record
        '{"text": "bad json"\n'  # 6: malformed
        '{"text": "héllo wörld"}\n'  # 7
    )
    return f


def test_inspect_reports_problems_with_lines(jsonl: Path) -> None:
    report = inspect_data(jsonl, tokenizer=ByteTokenizer())
    assert [(p.line, p.kind) for p in report.problems] == [(3, "missing_image"), (5, "empty_record"),
                                                          (6, "malformed_json")]
    assert "dog.png" in report.problems[0].message
    assert report.records == 4 and report.empty_records == 1 and report.media == {"image": 2, "audio": 0}
    assert report.modalities == ["text", "image"] and report.modalities_source == "metadata"
    assert report.metadata == {"modalities": ["text", "image"], "name": "demo"}
    texts = ["a cat", "a dog", "héllo wörld"]
    assert report.characters == sum(map(len, texts)) and report.words == 6
    assert report.tokens == sum(len(t.encode("utf-8")) for t in texts)


def test_inspect_detects_modalities_without_metadata(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "x", "audio": "a.wav"}\n')
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    report = inspect_data(f)
    assert report.modalities == ["text", "audio"] and report.modalities_source == "detected"
    assert report.problems == [] and report.tokens is None


def test_cli_data_inspect(jsonl: Path) -> None:
    result = run_cli(["data", "inspect", str(jsonl), "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert [(p["line"], p["kind"]) for p in out["problems"]] == [(3, "missing_image"), (5, "empty_record"),
                                                                (6, "malformed_json")]
    assert out["records"] == 4 and out["modalities"] == ["text", "image"]
    table = run_cli(["data", "inspect", str(jsonl)])
    assert table.exit_code == 0 and "missing_image" in table.stdout and "malformed_json" in table.stdout
    missing = run_cli(["data", "inspect", os.fspath(jsonl.parent / "nope.jsonl")])
    assert missing.exit_code == 2 and "nope.jsonl: no such file or folder" in missing.stderr


# ------------------------------------------------------------------- the stdlib, end to end
def test_stdlib_pipeline_end_to_end(tmp_path: Path) -> None:
    from salesai.tokenizer import Tokenizer

    split = data.stdlib_corpus(max_bytes=300_000)
    tok = Tokenizer.train(split.train, vocab_size=1000, num_threads=1, verbose=False)
    assert len(tok) == 1000
    train = data.tokenize_files(split.train, tok, tmp_path / "cache", name="train")
    val = data.tokenize_files(split.validation, tok, tmp_path / "cache", name="validation")
    assert train.num_documents == len(split.train) and val.num_documents == len(split.validation)
    assert train.tokens()[0] == tok.bos_id and train.tokens()[-1] == tok.eos_id
    first = split.train[0].read_text(encoding="utf-8")
    n = len(tok.encode(first)) + 2
    assert tok.decode(train.tokens()[:n]) == first  # lossless
    seqs = TokenSequences(train.tokens(), 128)
    order = SampleOrder(len(seqs), seed=0)
    batch = seqs.batch([order(i) for i in range(4)])  # (4, 128)
    assert batch.shape == (4, 128) and int(batch.max()) < len(tok)
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()) == [
        "train", "train", "validation", "validation"]
