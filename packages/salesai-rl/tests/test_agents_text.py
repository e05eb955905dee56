"""Text observations: a salesai language-model checkpoint as the Q-network's torso."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from salesai import ModelConfig, SalesAIModel, Tokenizer
from salesai.errors import SalesAIError
from salesai.model import save_checkpoint
from salesai_rl.agents import DQNAgent
from salesai_rl.envs.text import COLOURS, FILLERS, TEMPLATES, InstructionEnv

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def lm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    texts = [f + t.format(c=c) for t in TEMPLATES for c in COLOURS for f in FILLERS] * 3
    tokenizer = Tokenizer.train(iter(texts), vocab_size=300, verbose=False)
    torch.manual_seed(0)
    model = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(tokenizer), num_layers=1))
    return save_checkpoint(tmp_path_factory.mktemp("lm") / "ckpt", model, tokenizer)


def test_instruction_env_names_a_colour() -> None:
    env = InstructionEnv()
    seen = set()
    for seed in range(40):
        text, info = env.reset(seed=seed)
        assert COLOURS[info["target"]] in text and env.observation_space.contains(text)
        seen.add(text)
        assert env.step(info["target"])[1:3] == (1.0, True)
    assert len(seen) > 20  # varied wording


def test_text_torso_reads_the_instruction(lm_checkpoint: Path, tmp_path: Path) -> None:
    env = InstructionEnv()
    agent = DQNAgent(env.observation_space, env.action_space, seed=0, lm=str(lm_checkpoint), hidden=16,
                     learning_starts=20, batch_size=16, target_update=20, total_steps=150,
                     exploration_fraction=0.5, lr=3e-3, n_step=1, gamma=0.0, text_length=12)
    ids = agent.preprocess("go red")
    assert ids.shape == (12,) and ids.dtype == np.int64 and ids[-1] == agent.tokenizer.pad_id
    assert agent.q_values("press the red button").shape == (4,)
    frozen = {k: v.clone() for k, v in agent.q.torso.lm.state_dict().items()}
    obs, _ = env.reset(seed=0)
    for _ in range(150):
        action = agent.act(obs)
        nxt, reward, terminated, truncated, _ = env.step(action)
        agent.observe(obs, action, reward, nxt, terminated, truncated)
        obs, _ = env.reset()
    assert all(torch.equal(v, agent.q.torso.lm.state_dict()[k]) for k, v in frozen.items())  # frozen LM
    agent.save(tmp_path / "a")
    loaded = DQNAgent.load(tmp_path / "a", env.observation_space, env.action_space)
    for text in ("hit blue now", "go for green"):
        np.testing.assert_array_equal(loaded.q_values(text), agent.q_values(text))


def test_text_agent_needs_a_checkpoint_with_a_tokenizer(tmp_path: Path) -> None:
    env = InstructionEnv()
    with pytest.raises(SalesAIError, match="pass -o lm=CHECKPOINT"):
        DQNAgent(env.observation_space, env.action_space)
    with pytest.raises(SalesAIError):
        DQNAgent(env.observation_space, env.action_space, lm=str(tmp_path / "missing"))
