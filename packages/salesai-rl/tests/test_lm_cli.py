"""`salesai rl grpo / dpo / rewards / make-task` end to end, in process, on a tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from salesai import ModelConfig, SalesAIModel
from salesai.model import save_checkpoint
from salesai.testing import ByteTokenizer, run_cli

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig.from_name("tiny", vocab_size=267, hidden_dim=32, intermediate_dim=32, max_seq_len=64)
    path = tmp_path_factory.mktemp("lm") / "ckpt"
    save_checkpoint(path, SalesAIModel(cfg), ByteTokenizer())
    return path


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lm") / "task"
    result = run_cli(["rl", "make-task", "arithmetic", "--out", str(out), "--train", "40", "--eval", "8",
                      "--max-operand", "9", "--ops", "+", "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["train"], doc["eval"]) == (40, 8)
    return out


def test_rewards_lists_the_builtins() -> None:
    result = run_cli(["rl", "rewards", "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"exact-match", "regex", "python-syntax", "length-penalty"} <= set(rows)
    assert rows["regex"]["provider"] == "salesai-core" and "pattern" in rows["regex"]["options"]


def test_make_task_files(task: Path) -> None:
    prompts = [json.loads(x) for x in (task / "prompts.jsonl").read_text().splitlines()]
    held_out = [json.loads(x) for x in (task / "eval.jsonl").read_text().splitlines()]
    sft = [json.loads(x) for x in (task / "sft.jsonl").read_text().splitlines()]
    prefs = [json.loads(x) for x in (task / "prefs.jsonl").read_text().splitlines()]
    assert len(prompts) == len(sft) == len(prefs) == 40 and len(held_out) == 8
    a, b = prompts[0]["prompt"][:-1].split("+")
    assert int(prompts[0]["answer"]) == int(a) + int(b)
    assert sft[0]["text"] == prompts[0]["prompt"] + prompts[0]["answer"]
    assert not {p["prompt"] for p in held_out} & {p["prompt"] for p in prompts}
    assert all(p["chosen"] != p["rejected"] for p in prefs)
    assert run_cli(["rl", "make-task", "sudoku", "--out", str(task)]).exit_code == 2


def test_grpo_runs_resumes_and_writes_loadable_checkpoints(ckpt: Path, task: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["rl", "grpo", str(ckpt), "--prompts", str(task / "prompts.jsonl"), "--reward", "exact-match",
            "--reward", "length-penalty:0.1", "--reward-option", "length-penalty.target=3", "--out", str(out),
            "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "3", "--beta", "0.05",
            "--eval-prompts", str(task / "eval.jsonl"), "--lr", "1e-3", "--json"]
    result = run_cli([*args, "--steps", "2"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 2 and summary["eval_end"]["n"] == 8
    assert summary["last"]["kl"] >= 0 and Path(summary["checkpoint"]).name == "step-000002"
    again = run_cli([*args, "--steps", "3", "--resume"])
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["start_step"] == 2
    steps = [json.loads(x).get("step") for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 2, 2, 3, 3]  # eval at start, steps, eval at end; resumed run: same again
    model = SalesAIModel.from_pretrained(out / "step-000003")
    assert model.config.vocab_size == 267
    refused = run_cli([*args, "--steps", "3"])
    assert refused.exit_code == 2 and "already holds a run" in refused.stderr


@pytest.mark.parametrize(("content", "extra", "message"), [
    ('{"prompt": "1+1=", "answer": "2"}\nnot json\n', [], "prompts.jsonl:2: not valid JSON"),
    ('{"question": "1+1="}\n', [], "prompts.jsonl:1: expected a string 'prompt' field (missing)"),
    ("", [], "prompts.jsonl: no records"),
    ('{"prompt": "1+1="}\n', ["--reward", "nope"], "unknown reward 'nope'; known: exact-match"),
    ('{"prompt": "1+1="}\n', ["--group-size", "1"], "group_size=1"),
])
def test_grpo_bad_inputs_exit_2_with_one_line(ckpt: Path, tmp_path: Path, content: str, extra: list[str],
                                              message: str) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(content)
    reward = [] if "--reward" in extra else ["--reward", "exact-match"]
    result = run_cli(["rl", "grpo", str(ckpt), "--prompts", str(prompts), *reward, *extra,
                      "--out", str(tmp_path / "run"), "--steps", "1"])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_grpo_reward_needing_a_missing_field(ckpt: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "1+1="}\n')
    result = run_cli(["rl", "grpo", str(ckpt), "--prompts", str(prompts), "--reward", "exact-match",
                      "--out", str(tmp_path / "run"), "--steps", "1", "--group-size", "2",
                      "--max-new-tokens", "2"])
    assert result.exit_code == 2
    assert "reward 'exact-match' raised SalesAIError" in result.stderr and f"{prompts}:1" in result.stderr


def test_dpo_runs(ckpt: Path, task: Path, tmp_path: Path) -> None:
    result = run_cli(["rl", "dpo", str(ckpt), "--data", str(task / "prefs.jsonl"),
                      "--out", str(tmp_path / "dpo"),
                      "--steps", "2", "--batch-size", "4", "--lr", "1e-3", "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kind"] == "dpo" and summary["steps"] == 2
    logged = {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"}
    assert logged <= set(summary["last"])
    bad = tmp_path / "prefs.jsonl"
    bad.write_text('{"prompt": "1+1=", "chosen": "2"}\n')
    refused = run_cli(["rl", "dpo", str(ckpt), "--data", str(bad), "--out", str(tmp_path / "dpo2")])
    assert refused.exit_code == 2 and "expected a string 'rejected' field" in refused.stderr
