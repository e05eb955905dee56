"""`salesai rl meta`: the sine protocol from the command line (JSON, table, bad input)."""

from __future__ import annotations

import json

import pytest

from salesai.testing import run_cli
from salesai_rl.meta import MetaConfig, evaluate, meta_train


def test_meta_json_matches_the_python_api() -> None:
    result = run_cli(["rl", "meta", "-m", "fomaml", "-m", "joint", "--iterations", "3", "--tasks", "20",
                      "--seed", "2", "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["protocol"], out["k"], out["held_out_tasks"], out["iterations"]) == ("sine", 10, 20, 3)
    fomaml, joint = out["results"]
    assert [fomaml["method"], joint["method"]] == ["fomaml", "joint"]
    trained = meta_train(MetaConfig(method="fomaml", iterations=3, seed=2))
    expected = evaluate(trained, n_tasks=20, seed=2 + 12345)
    assert fomaml["mse_1_step"] == pytest.approx(expected[1], rel=1e-6)
    assert fomaml["mse_10_steps"] == pytest.approx(expected[10], rel=1e-6)
    assert fomaml["vs_joint_1_step"] == pytest.approx(fomaml["mse_1_step"] / joint["mse_1_step"])
    assert fomaml["vs_joint_10_steps"] == pytest.approx(fomaml["mse_10_steps"] / joint["mse_10_steps"])
    assert "vs_joint_1_step" not in joint
    assert "meta-training fomaml: 3 meta-steps" in result.stderr


def test_meta_table_lists_each_method_once() -> None:
    result = run_cli(["rl", "meta", "-m", "reptile", "-m", "reptile", "--iterations", "2", "--tasks", "5"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("reptile") == 1 and "MSE" in result.stdout and "2 meta-steps" in result.stdout
    assert "x │" not in result.stdout  # no baseline asked: no ratios


@pytest.mark.parametrize(("args", "message"), [
    (["-m", "protonet"], "--method 'protonet': expected one of maml, fomaml, reptile, joint"),
    (["--iterations", "0"], "--iterations 0: expected at least 1"),
    (["--tasks", "0"], "--tasks 0: expected at least 1"),
])
def test_meta_bad_input_is_one_line(args: list[str], message: str) -> None:
    result = run_cli(["rl", "meta", *args])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
