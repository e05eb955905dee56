"""DQN: target maths by hand, dueling aggregation, options, spaces, learning a chain, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from salesai.errors import SalesAIError
from salesai_rl.agents.dqn import DQNAgent, td_targets
from salesai_rl.agents.networks import dueling_aggregate
from salesai_rl.envs import ChainEnv

torch.set_num_threads(1)

FAST = dict(hidden=32, learning_starts=50, batch_size=16, buffer_size=500, target_update=50,
            total_steps=400, exploration_fraction=0.5, lr=5e-3, gamma=0.9, train_every=1)
ALL_ON = dict(double=True, dueling=True, prioritized=True, n_step=3)


def test_double_q_target_by_hand() -> None:
    rewards = torch.tensor([1.0, 0.5])
    discounts = torch.tensor([0.9, 0.0])  # second transition terminated
    online = torch.tensor([[1.0, 3.0], [5.0, 0.0]])
    target = torch.tensor([[10.0, 2.0], [7.0, 8.0]])
    # double: online argmax = [1, 0] -> target values [2, 7]
    y = td_targets(rewards, discounts, online, target, double=True)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 2.0, 0.5]))
    # vanilla: max over target = [10, 8]
    y = td_targets(rewards, discounts, online, target, double=False)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 10.0, 0.5]))


def test_dueling_aggregation() -> None:
    value = torch.tensor([[2.0], [-1.0]])
    adv = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])
    q = dueling_aggregate(value, adv)
    assert q.tolist() == [[1.0, 2.0, 3.0], [-2.0, -2.0, 1.0]]
    torch.testing.assert_close(q.mean(dim=1, keepdim=True), value)  # V is the mean of Q


def test_unknown_and_mistyped_options_are_named() -> None:
    obs, act = spaces.Box(-1, 1, (3,)), spaces.Discrete(2)
    unknown = r"unknown option\(s\) for agent 'dqn': learning_rate; known: .*lr"
    with pytest.raises(SalesAIError, match=unknown):
        DQNAgent(obs, act, learning_rate=0.1)
    with pytest.raises(SalesAIError, match=r"option 'lr' of agent 'dqn' expects float, got 'fast'"):
        DQNAgent(obs, act, lr="fast")
    with pytest.raises(SalesAIError, match=r"option 'dueling' of agent 'dqn' expects bool, got 'maybe'"):
        DQNAgent(obs, act, dueling="maybe")
    agent = DQNAgent(obs, act, lr="0.01", dueling="false", n_step="1")
    assert (agent.config.lr, agent.config.dueling, agent.config.n_step) == (0.01, False, 1)


def test_spaces_the_agent_cannot_handle_are_named() -> None:
    with pytest.raises(SalesAIError, match="needs a Discrete action space; this env has Box"):
        DQNAgent(spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)))
    with pytest.raises(SalesAIError, match="reads Box, Discrete or Text observations; this env has Multi"):
        DQNAgent(spaces.MultiBinary(3), spaces.Discrete(2))
    with pytest.raises(SalesAIError, match="reads Text observations through a language model: pass -o lm="):
        DQNAgent(spaces.Text(5), spaces.Discrete(2))


def test_image_and_discrete_observations() -> None:
    img = spaces.Box(0, 255, (12, 12, 3), dtype=np.uint8)  # channels last -> CHW
    agent = DQNAgent(img, spaces.Discrete(4), hidden=16)
    assert agent.obs_shape == (3, 12, 12)
    assert agent.q_values(np.zeros((12, 12, 3), np.uint8)).shape == (4,)
    onehot = DQNAgent(spaces.Discrete(5), spaces.Discrete(2), hidden=16)
    assert onehot.preprocess(3).tolist() == [0, 0, 0, 1, 0]


def _train_chain(agent: DQNAgent, env: ChainEnv, steps: int, whole_episodes: bool = False) -> None:
    """`steps` env steps (then, with `whole_episodes`, on to the end of the episode)."""
    obs, _ = env.reset(seed=0)
    done, step = False, 0
    while step < steps or (whole_episodes and not done):
        action = agent.act(obs)
        nxt, r, term, trunc, _ = env.step(action)
        agent.observe(obs, action, r, nxt, term, trunc)
        done, step = term or trunc, step + 1
        obs = env.reset()[0] if done else nxt


def _greedy_return(agent: DQNAgent, env: ChainEnv) -> float:
    obs, _ = env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        obs, r, term, trunc, _ = env.step(agent.act(obs, explore=False))
        total, done = total + r, term or trunc
    return total


@pytest.mark.parametrize("switches", [
    dict(double=False, dueling=False, prioritized=False, n_step=1),  # vanilla DQN
    ALL_ON,
    dict(),  # the defaults: n-step returns only
])
def test_dqn_solves_a_chain(switches: dict) -> None:
    env = ChainEnv(n=6, max_steps=12)
    agent = DQNAgent(env.observation_space, env.action_space, seed=0, **FAST, **switches)
    _train_chain(agent, env, 400)
    assert agent.updates == 400 - FAST["learning_starts"] + 1
    assert _greedy_return(agent, env) == 1.0
    q = agent.q_values(np.eye(6, dtype=np.float32)[0])
    assert q[1] > q[0]  # right is better than left at the start


def test_defaults_are_the_ablations_choice() -> None:
    """bench/rl.py's CartPole ablation: only n-step returns help; 4 env steps per update."""
    defaults = DQNAgent.default_options()
    assert {k: defaults[k] for k in ALL_ON} == dict(double=False, dueling=False, prioritized=False, n_step=3)
    assert (defaults["train_every"], defaults["gradient_steps"]) == (4, 1)


def test_default_update_rate_is_one_update_every_four_steps() -> None:
    env = ChainEnv(n=4, max_steps=8)
    agent = DQNAgent(env.observation_space, env.action_space, hidden=8, learning_starts=8, batch_size=4)
    assert agent.config.train_every == 4 and agent.config.gradient_steps == 1
    _train_chain(agent, env, 60)
    assert agent.updates == len([s for s in range(1, 61) if s >= 8 and s % 4 == 0])  # 14


def test_save_load_round_trip(tmp_path: Path) -> None:
    env = ChainEnv()
    agent = DQNAgent(env.observation_space, env.action_space, seed=3, **FAST, **ALL_ON)
    _train_chain(agent, env, 120, whole_episodes=True)  # checkpoints are taken between episodes
    agent.save(tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["agent.json", "buffer.safetensors", "model.safetensors", "optimizer.safetensors"]
    loaded = DQNAgent.load(tmp_path / "ckpt", env.observation_space, env.action_space)
    assert (loaded.steps, loaded.updates) == (agent.steps, agent.updates)
    assert len(loaded.buffer) == len(agent.buffer)
    for s in range(6):
        np.testing.assert_array_equal(loaded.q_values(np.eye(6, dtype=np.float32)[s]),
                                      agent.q_values(np.eye(6, dtype=np.float32)[s]))
    # both continue identically: same RNG, buffer, priorities and optimizer state
    env_a, env_b = ChainEnv(), ChainEnv()
    _train_chain(agent, env_a, 60)
    _train_chain(loaded, env_b, 60)
    for name, value in agent.q.state_dict().items():
        torch.testing.assert_close(loaded.q.state_dict()[name], value, rtol=0, atol=0)


def test_save_without_buffer_and_bad_checkpoints(tmp_path: Path) -> None:
    env = ChainEnv()
    agent = DQNAgent(env.observation_space, env.action_space, **FAST)
    agent.save(tmp_path / "a", include_buffer=False)
    assert not (tmp_path / "a" / "buffer.safetensors").exists()
    assert len(DQNAgent.load(tmp_path / "a", env.observation_space, env.action_space).buffer) == 0
    with pytest.raises(SalesAIError, match=r"saved for observations \[6\] and 2 actions; this env has \[4\]"):
        DQNAgent.load(tmp_path / "a", spaces.Box(0, 1, (4,)), spaces.Discrete(2))
    (tmp_path / "a" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(SalesAIError, match=r"checkpoint .*a: corrupt or mismatched file"):
        DQNAgent.load(tmp_path / "a", env.observation_space, env.action_space)
    (tmp_path / "a" / "agent.json").write_text("{")
    with pytest.raises(SalesAIError, match=r"checkpoint .*a: unreadable agent.json"):
        DQNAgent.load(tmp_path / "a", env.observation_space, env.action_space)


def test_novelty_option_adds_a_bonus() -> None:
    env = ChainEnv()
    agent = DQNAgent(env.observation_space, env.action_space, novelty="episodic", novelty_beta=0.5,
                     n_step=1, **FAST)
    obs, _ = env.reset(seed=0)
    nxt, r, term, trunc, _ = env.step(1)
    info = agent.observe(obs, 1, r, nxt, term, trunc)
    # the first step: one neighbour (the reset observation), its own running mean -> K = eps/(1-xi+eps)
    kernel = 1e-4 / (1 - 0.008 + 1e-4)
    assert info["novelty_bonus"] == pytest.approx(1 / (kernel**0.5 + 0.001))
    assert agent.buffer.rewards[0] == pytest.approx(r + 0.5 * info["novelty_bonus"])
    with pytest.raises(SalesAIError, match="option 'novelty' of agent 'dqn' expects none or episodic"):
        DQNAgent(env.observation_space, env.action_space, novelty="curious")
