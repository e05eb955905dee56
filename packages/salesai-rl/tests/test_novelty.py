"""The NGU episodic bonus against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from salesai_rl.novelty import EpisodicNovelty, NoveltyConfig


def test_bonus_by_hand() -> None:
    nov = EpisodicNovelty(1, NoveltyConfig(k=2, eps=0.5, c=0.0, cluster_distance=0.0))
    nov.reset(np.array([0.0]))
    # one neighbour at squared distance 1; running mean 1 -> normalised 1 -> K = 0.5 / 1.5
    assert nov.bonus(np.array([1.0])) == pytest.approx(1 / math.sqrt(1 / 3))
    # neighbours at 4 and 9; running mean of (1, 4, 9) = 14/3 -> normalised 6/7 and 27/14
    kernel = 0.5 / (6 / 7 + 0.5) + 0.5 / (27 / 14 + 0.5)
    assert nov.bonus(np.array([3.0])) == pytest.approx(1 / math.sqrt(kernel))
    assert nov.mean_sq_distance == pytest.approx(14 / 3) and len(nov.memory) == 3


def test_cluster_distance_and_constant() -> None:
    cfg = NoveltyConfig(k=1, eps=1e-4, c=0.001, cluster_distance=0.008)
    nov = EpisodicNovelty(2, cfg)
    nov.reset(np.zeros(2))
    nov.bonus(np.array([1.0, 0.0]))  # mean of d^2 becomes 1
    # next: nearest at d^2 = 0.002 (normalised 0.002/((1+0.002)/2) ~ 0.004) below xi -> treated as 0 -> K = 1
    assert nov.bonus(np.array([1.0, math.sqrt(0.002)])) == pytest.approx(1 / (1 + 0.001))


def test_familiar_states_get_no_bonus_and_memory_clears_each_episode() -> None:
    nov = EpisodicNovelty(1, NoveltyConfig(k=100))
    nov.reset(np.array([0.0]))
    bonuses = [nov.bonus(np.array([0.0])) for _ in range(70)]
    assert bonuses[0] == pytest.approx(1 / (1 + 0.001))  # one identical neighbour, K = 1
    assert bonuses[-1] == 0.0  # sqrt(70) + c > s_max = 8
    nov.reset(np.array([0.0]))
    assert len(nov.memory) == 1
    assert nov.bonus(np.array([0.0])) == pytest.approx(1 / (1 + 0.001))


def test_wide_observations_are_projected() -> None:
    nov = EpisodicNovelty(300, NoveltyConfig(embedding_dim=16), seed=0)
    assert nov.embed(np.ones((10, 30))).shape == (16,)
    state = nov.state()
    other = EpisodicNovelty(300, NoveltyConfig(embedding_dim=16), seed=0)
    other.load_state(state)
    np.testing.assert_array_equal(other.embed(np.ones(300)), nov.embed(np.ones(300)))
