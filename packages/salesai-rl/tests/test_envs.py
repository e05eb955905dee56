"""make_env by id or module:Class, and the env checker naming what is wrong."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest

from salesai.errors import SalesAIError
from salesai_rl.envs import ChainEnv, check_env, make_env


class NoInfoReset(ChainEnv):
    def reset(self, *, seed: Any = None, options: Any = None) -> Any:  # old Gym API: obs only
        return super().reset(seed=seed)[0]


class FourValueStep(ChainEnv):
    def step(self, action: Any) -> Any:
        obs, r, term, trunc, info = super().step(action)
        return obs, r, term or trunc, info


class WrongShape(ChainEnv):
    def step(self, action: Any) -> Any:
        obs, r, term, trunc, info = super().step(action)
        return obs[:-1], r, term, trunc, info


class StringReward(ChainEnv):
    def step(self, action: Any) -> Any:
        obs, _, term, trunc, info = super().step(action)
        return obs, "1", term, trunc, info


class NoSpaces(gymnasium.Env):
    pass


def test_make_env_by_id_and_path() -> None:
    env = make_env("CartPole-v1")
    assert env.observation_space.shape == (4,) and env.action_space.n == 2
    chain = make_env("salesai_rl.envs:ChainEnv", n=4)
    assert isinstance(chain, ChainEnv) and chain.observation_space.shape == (4,)
    check_env(chain)
    check_env(env, "CartPole-v1")


@pytest.mark.parametrize(("spec", "message"), [
    ("NoSuchEnv-v0", "--env 'NoSuchEnv-v0': not a registered Gymnasium id"),
    ("no_such_module_xyz:Env", "--env 'no_such_module_xyz:Env': cannot import module 'no_such_module_xyz'"),
    ("salesai_rl.envs:Nope", "--env 'salesai_rl.envs:Nope': module 'salesai_rl.envs' has no callable 'Nope'"),
    ("salesai_rl.envs:check_env", "--env 'salesai_rl.envs:check_env': building it failed: TypeError"),
])
def test_bad_env_specs_are_named(spec: str, message: str) -> None:
    with pytest.raises(SalesAIError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_env(spec)


@pytest.mark.parametrize(("env", "message"), [
    (NoInfoReset(), r"environment NoInfoReset: reset\(\) returned ndarray, expected a tuple"),
    (FourValueStep(), r"step\(\) must return 5 values .*; got 4"),
    (WrongShape(), r"the observation from step\(\) \(shape \(5,\), dtype float32\) is not in"),
    (StringReward(), r"step\(\) returned a reward of type str, expected a number"),
    (NoSpaces(), r"environment NoSpaces: observation_space is None, expected a gymnasium.spaces.Space"),
])
def test_checker_names_the_broken_promise(env: Any, message: str) -> None:
    with pytest.raises(SalesAIError, match=message):
        check_env(env)


def test_chain_env_dynamics() -> None:
    env = ChainEnv(n=3, max_steps=4)
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [1, 0, 0]
    assert env.step(1)[1:4] == (0.0, False, False)
    obs, reward, terminated, truncated, _ = env.step(1)
    assert (obs.tolist(), reward, terminated, truncated) == ([0, 0, 1], 1.0, True, False)
    env.reset()
    for _ in range(3):
        env.step(0)
    assert env.step(0)[2:4] == (False, True)  # truncated after max_steps
    assert np.array_equal(env.reset()[0], np.array([1, 0, 0], np.float32))
