"""`salesai rl agents/train/eval`: files, repeatable eval, exact resume, bad input, third-party agents."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

import salesai
from salesai.testing import check_agent, register_plugin, run_cli

TINY = ["-o", "hidden=16", "-o", "learning_starts=20", "-o", "batch_size=8", "-o", "buffer_size=300",
        "-o", "target_update=20", "-o", "total_steps=200"]

ENV_MODULE = textwrap.dedent('''
    """Envs a user might write: found by --env rl_user_envs:NAME."""
    from salesai_rl.envs import ChainEnv


    class FixedChain(ChainEnv):
        """4 states; every episode lasts exactly 10 steps; reward 1 for each step at the right end."""

        def __init__(self):
            super().__init__(n=4, max_steps=10)

        def step(self, action):
            self.t += 1
            self.state = min(self.state + 1, self.n - 1) if int(action) == 1 else max(self.state - 1, 0)
            return self._obs(), float(self.state == self.n - 1), False, self.t >= self.max_steps, {}


    class OldApi(ChainEnv):
        def reset(self, *, seed=None, options=None):
            return super().reset(seed=seed)[0]
''')


@pytest.fixture(autouse=True)
def user_envs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rl_user_envs.py").write_text(ENV_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))


def _train(out: Path, *extra: str, steps: int = 200) -> Any:
    args = ["rl", "train", "dqn", "--env", "rl_user_envs:FixedChain", "--steps", str(steps),
            "--out", str(out), "--seed", "1", *TINY, *extra, "--json"]
    return run_cli(args)


def test_agents_lists_dqn_with_its_options() -> None:
    result = run_cli(["rl", "agents", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["dqn"]["provider"] == "salesai-rl"
    assert rows["dqn"]["options"]["per_alpha"] == 0.6 and rows["dqn"]["options"]["n_step"] == 3


def test_plugins_lists_the_agents() -> None:
    result = run_cli(["plugins", "--json"])
    info = next(p for p in json.loads(result.stdout) if p["distribution"] == "salesai-rl")
    assert "dqn" in info["registered"]["agents"] and "rl" in info["registered"]["commands"]


def test_train_then_eval(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _train(out, "--eval-every", "100", "--eval-episodes", "2")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["steps"], summary["episodes"], summary["env"]) == (200, 20, "rl_user_envs:FixedChain")
    assert summary["last_eval"]["episodes"] == 2
    files = sorted(p.name for p in (out / "checkpoint").iterdir())
    assert files == ["agent.json", "buffer.safetensors", "model.safetensors", "optimizer.safetensors",
                     "run_state.json"]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["event"] == "eval"] == [100, 200]
    episodes = [r for r in lines if r["event"] == "episode"]
    assert len(episodes) == 20 and all(r["length"] == 10 and 0 <= r["return"] <= 8 for r in episodes)
    assert episodes[-1]["epsilon"] == pytest.approx(0.05)
    run = json.loads((out / "run.json").read_text())
    assert (run["agent"], run["seed"], run["options"]["hidden"]) == ("dqn", 1, "16")
    first = run_cli(["rl", "eval", str(out), "--episodes", "3", "--json"])
    assert first.exit_code == 0, first.stderr
    result_eval = json.loads(first.stdout)
    assert len(result_eval["returns"]) == 3 and result_eval["mean_length"] == 10
    again = run_cli(["rl", "eval", str(out), "--episodes", "3", "--json"])
    assert again.stdout == first.stdout  # greedy and seeded: repeatable


def test_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    all_on = ["-o", "prioritized=true", "-o", "double=true", "-o", "dueling=true"]  # priorities resume too
    assert _train(whole, "--save-every", "100", *all_on).exit_code == 0
    assert _train(parts, *all_on, steps=100).exit_code == 0  # "interrupted" at step 100 (an episode boundary)
    resumed = _train(parts, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == 200
    a = load_file(str(whole / "checkpoint" / "model.safetensors"))
    b = load_file(str(parts / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    ja, jb = (json.loads((d / "checkpoint" / "agent.json").read_text()) for d in (whole, parts))
    assert (ja["steps"], ja["updates"], ja["rng"]) == (jb["steps"], jb["updates"], jb["rng"])
    assert (whole / "metrics.jsonl").read_text() == (parts / "metrics.jsonl").read_text()


def test_no_save_buffer(tmp_path: Path) -> None:
    assert _train(tmp_path / "r", "--no-save-buffer", steps=50).exit_code == 0
    assert not (tmp_path / "r" / "checkpoint" / "buffer.safetensors").exists()
    assert json.loads((tmp_path / "r" / "checkpoint" / "agent.json").read_text())["buffer"] is None


def _fail(args: list[str]) -> str:
    result = run_cli(args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (["rl", "train", "dqn", "--env", "NoSuchEnv-v0"], "--env 'NoSuchEnv-v0': not a registered Gymnasium id"),
    (["rl", "train", "dqn", "--env", "rl_user_envs:Nope"], "module 'rl_user_envs' has no callable 'Nope'"),
    (["rl", "train", "dqn", "--env", "rl_user_envs:OldApi"], "environment rl_user_envs:OldApi: reset()"),
    (["rl", "train", "ppo", "--env", "CartPole-v1"], "unknown agent 'ppo'; known: dqn (salesai-rl)"),
    (["rl", "train", "dqn", "--env", "CartPole-v1", "-o", "lr=fast"], "option 'lr' of agent 'dqn' expects"),
    (["rl", "train", "dqn", "--env", "CartPole-v1", "-o", "lrate=1"], "unknown option(s) for agent 'dqn'"),
    (["rl", "train", "dqn", "--env", "CartPole-v1", "-o", "lr"], "--option 'lr': expected NAME=VALUE"),
    (["rl", "train", "dqn", "--env", "Pendulum-v1"], "agent 'dqn' needs a Discrete action space"),
    (["rl", "train", "dqn", "--env", "CartPole-v1", "--novelty", "curious"], "expects none or episodic"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    assert message in _fail([*args, "--out", str(tmp_path / "x"), "--steps", "10"])


def test_bad_runs_and_checkpoints_are_named(tmp_path: Path) -> None:
    assert "holds no checkpoint" in _fail(["rl", "train", "dqn", "--env", "CartPole-v1", "--out",
                                           str(tmp_path / "none"), "--resume"])
    assert "not a salesai rl run directory" in _fail(["rl", "eval", str(tmp_path)])
    out = tmp_path / "run"
    assert _train(out, steps=30).exit_code == 0
    assert "already holds a run; pass --resume" in _fail(
        ["rl", "train", "dqn", "--env", "CartPole-v1", "--out", str(out)])
    (out / "checkpoint" / "model.safetensors").write_bytes(b"\x00garbage")
    assert "corrupt or mismatched file" in _fail(["rl", "eval", str(out)])


class AlwaysRight:
    """A third-party agent: always action 1 (the docs' interface, nothing learned)."""

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        return {"action": 1}

    def __init__(self, observation_space: Any, action_space: Any, *, seed: int = 0, action: int = 1) -> None:
        self.action, self.seen = int(action), 0

    def act(self, observation: Any, explore: bool = True) -> int:
        return self.action

    def observe(self, *step: Any) -> dict[str, float]:
        self.seen += 1
        return {"seen": float(self.seen)}

    def save(self, directory: Any, include_buffer: bool = True) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "agent.json").write_text(json.dumps({"action": self.action, "seen": self.seen}))

    @classmethod
    def load(cls, directory: Any, observation_space: Any, action_space: Any) -> AlwaysRight:
        state = json.loads((Path(directory) / "agent.json").read_text())
        agent = cls(observation_space, action_space, action=state["action"])
        agent.seen = state["seen"]
        return agent


class ThirdParty:
    @salesai.hookimpl
    def register_agents(self, register: Any) -> None:
        register("always-right", AlwaysRight, description="action 1, always")


def test_third_party_agent_through_the_hook(tmp_path: Path) -> None:
    with register_plugin(ThirdParty()):
        check_agent(AlwaysRight)
        rows = {r["name"]: r for r in json.loads(run_cli(["rl", "agents", "--json"]).stdout)}
        assert rows["always-right"]["options"] == {"action": 1}
        out = tmp_path / "third"
        result = run_cli(["rl", "train", "always-right", "--env", "rl_user_envs:FixedChain", "--steps", "30",
                          "--out", str(out), "--json"])
        assert result.exit_code == 0, result.stderr
        evaluated = json.loads(run_cli(["rl", "eval", str(out), "--episodes", "2", "--json"]).stdout)
    assert evaluated["returns"] == [8.0, 8.0]  # right end reached at step 3, held for 8 steps
    assert json.loads((out / "checkpoint" / "agent.json").read_text())["seen"] == 30
