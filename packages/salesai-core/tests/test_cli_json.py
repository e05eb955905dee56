"""`--json` schemas stay as docs/cli.md documents them; a run directory works wherever a checkpoint
does; a truncated weights file is refused by `info` as by loading."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from salesai.testing import run_cli

REPO = Path(__file__).resolve().parents[3]
CLI_MD = REPO / "docs" / "cli.md"


def documented_keys(command: str) -> set[str]:
    """The keys in the table under '### `salesai COMMAND --json`' of docs/cli.md."""
    text = CLI_MD.read_text(encoding="utf-8")
    section = text.split(f"### `salesai {command} --json`", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("json")
    data = tmp / "data.txt"
    data.write_text("".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(400)))
    config = tmp / "c.yaml"
    config.write_text("preset: tiny\ntraining:\n  batch_size: 4\n  seq_len: 32\n  eval_every: 0\n"
                      "  eval_steps: 1\n  save_every: 0\n  precision: fp32\n")
    out = tmp / "run"
    r = run_cli(["train", "--config", str(config), "--data", str(data), "--out", str(out),
                 "--max-steps", "3", "--vocab-size", "300", "--threads", "1", "--json"])
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert set(summary) == documented_keys("train")
    eval_keys = {"kind", "step", "val_loss", "val_perplexity", "val_tokens", "expert_usage"}
    assert set(summary["eval"]) == eval_keys
    (out / "data.txt").write_text(data.read_text())
    return out


pytestmark = pytest.mark.skipif(not CLI_MD.is_file(), reason="runs from a repository checkout")


def test_eval_json_schema_and_run_dir(run_dir: Path) -> None:
    r = run_cli(["eval", str(run_dir), "--data", str(run_dir / "data.txt"), "--seq-len", "32",
                 "--max-batches", "1", "--json"])
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)
    assert set(result) == documented_keys("eval")
    assert result["checkpoint"].endswith("step-000003")
    assert "using its latest checkpoint step-000003" in r.stderr


def test_info_json_schema_on_a_run_dir(run_dir: Path) -> None:
    r = run_cli(["info", str(run_dir), "--json"])
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert set(info) == documented_keys("info")
    assert info["kind"] == "checkpoint" and info["weights_file"].endswith("step-000003/model.safetensors")


def test_plugins_json_schema() -> None:
    r = run_cli(["plugins", "--json"])
    assert r.exit_code == 0
    assert all(set(p) == documented_keys("plugins") for p in json.loads(r.stdout))


def test_generate_and_export_accept_a_run_dir(run_dir: Path, tmp_path: Path) -> None:
    r = run_cli(["generate", str(run_dir), "def f", "-n", "3", "-t", "0", "--threads", "1"])
    assert r.exit_code == 0, r.stderr
    assert "using its latest checkpoint step-000003" in r.stderr
    latest_file = run_cli(["generate", str(run_dir / "latest"), "def f", "-n", "3", "-t", "0"])
    assert latest_file.exit_code == 0, latest_file.stderr
    assert latest_file.stdout == r.stdout
    e = run_cli(["export", str(run_dir), "--format", "safetensors", "--out", str(tmp_path / "x")])
    assert e.exit_code == 0, e.stderr
    assert (tmp_path / "x" / "model.safetensors").is_file()


def test_a_directory_that_is_neither_says_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for args in (["info", str(tmp_path / "empty")], ["generate", str(tmp_path / "empty"), "x"]):
        r = run_cli(args)
        assert r.exit_code == 2
        assert "no checkpoint found (expected config.json + model.safetensors, or a run directory" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_info_refuses_a_truncated_weights_file(run_dir: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(run_dir / "step-000003", ckpt)
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3])
    r = run_cli(["info", str(ckpt)])
    assert r.exit_code == 2 and r.stdout == ""
    assert f"{weights}: not a readable safetensors file (truncated: " in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_train_prints_a_readable_summary_without_json(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("".join(f"def g{i}(x):\n    return x * {i}\n\n" for i in range(300)))
    config = tmp_path / "c.yaml"
    config.write_text("preset: tiny\ntraining:\n  batch_size: 2\n  seq_len: 32\n  eval_every: 0\n"
                      "  eval_steps: 1\n  save_every: 0\n  precision: fp32\n")
    r = run_cli(["train", "--config", str(config), "--data", str(data), "--out", str(tmp_path / "run"),
                 "--max-steps", "2", "--vocab-size", "300", "--threads", "1"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("trained 2 steps (") and "tokens/s, fp32)" in lines[0]
    assert lines[1].startswith("validation loss ") and ", perplexity " in lines[1]
    assert lines[2] == f"checkpoint: {tmp_path / 'run' / 'step-000002'}"
    assert lines[3] == f"metrics: {tmp_path / 'run' / 'metrics.jsonl'}"
