"""Replay buffers: sum-tree maths, prioritized sampling and weights, n-step returns."""

from __future__ import annotations

import numpy as np
import pytest

from salesai_rl.buffers import (
    NStepAccumulator,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    SumTree,
    Transition,
)


def _t(i: int) -> Transition:
    return Transition(np.full(2, i, np.float32), i % 3, float(i), np.full(2, i + 1, np.float32), 0.99)


def test_sum_tree_total_and_prefix_search() -> None:
    tree = SumTree(5)  # 8 leaves inside, 5 used
    tree.update(np.arange(5), np.array([1.0, 2.0, 3.0, 0.0, 4.0]))
    assert tree.total == 10.0
    # prefix intervals: [0,1) -> 0, [1,3) -> 1, [3,6) -> 2, leaf 3 is empty, [6,10) -> 4
    found = tree.find(np.array([0.0, 0.99, 1.0, 2.5, 3.0, 5.99, 6.0, 9.99]))
    assert found.tolist() == [0, 0, 1, 1, 2, 2, 4, 4]
    tree.update(np.array([1]), np.array([0.5]))
    assert tree.total == 8.5 and tree[1] == 0.5


def test_sum_tree_sampling_frequencies_match_priorities() -> None:
    rng = np.random.default_rng(0)
    priorities = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 0.4])
    tree = SumTree(len(priorities))
    tree.update(np.arange(len(priorities)), priorities)
    draws = tree.find(rng.random(200_000) * tree.total)
    freq = np.bincount(draws, minlength=len(priorities)) / len(draws)
    np.testing.assert_allclose(freq, priorities / priorities.sum(), atol=0.005)


def test_prioritized_buffer_new_items_get_max_priority_and_weights_by_hand() -> None:
    buf = PrioritizedReplayBuffer(8, (2,), alpha=0.5, eps=0.0)
    for i in range(4):
        buf.add(_t(i))
    np.testing.assert_allclose(buf.tree[np.arange(4)], 1.0)  # max priority starts at 1
    buf.update_priorities(np.array([0, 1, 2, 3]), np.array([4.0, -1.0, 0.25, 9.0]))  # |td|
    assert buf.max_priority == 9.0
    buf.add(_t(4))  # at the running max: 9 ** 0.5
    assert buf.tree[4] == pytest.approx(3.0)
    # p^alpha = [2, 1, 0.5, 3, 3], total 9.5
    probs = buf.probabilities(np.arange(5))
    np.testing.assert_allclose(probs, np.array([2, 1, 0.5, 3, 3]) / 9.5)
    batch = buf.sample(5, np.random.default_rng(0), beta=0.5)
    expected = (5 * probs[batch.indices]) ** -0.5
    np.testing.assert_allclose(batch.weights, expected / expected.max(), rtol=1e-6)
    assert batch.weights.max() == pytest.approx(1.0)
    # stratified: one draw per fifth of the total mass -> leaves in prefix order
    assert list(batch.indices) == sorted(batch.indices)


def test_uniform_buffer_wraps_and_round_trips() -> None:
    buf = ReplayBuffer(3, (2,))
    for i in range(5):
        buf.add(_t(i))
    assert len(buf) == 3 and buf.pos == 2
    assert sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0]
    batch = buf.sample(4, np.random.default_rng(0))
    assert batch.obs.shape == (4, 2) and batch.weights.tolist() == [1.0] * 4
    other = ReplayBuffer(3, (2,))
    other.load_state_dict(*buf.state_dict())
    np.testing.assert_array_equal(other.obs, buf.obs)
    assert (other.pos, other.count) == (buf.pos, buf.count)


def test_prioritized_state_round_trip_keeps_priorities() -> None:
    buf = PrioritizedReplayBuffer(4, (2,))
    for i in range(3):
        buf.add(_t(i))
    buf.update_priorities(np.array([0, 2]), np.array([0.5, 3.0]))
    other = PrioritizedReplayBuffer(4, (2,))
    other.load_state_dict(*buf.state_dict())
    np.testing.assert_allclose(other.tree[np.arange(3)], buf.tree[np.arange(3)])
    assert other.max_priority == buf.max_priority and other.tree.total == pytest.approx(buf.tree.total)


def _run(acc: NStepAccumulator, rewards: list[float], terminated_at_end: bool) -> list[Transition]:
    out = []
    for i, r in enumerate(rewards):
        last = i == len(rewards) - 1
        out += acc.push(np.array([i], np.float32), i, r, np.array([i + 1], np.float32),
                        terminated=last and terminated_at_end, truncated=last and not terminated_at_end)
    return out


def test_n_step_returns_at_termination_do_not_bootstrap() -> None:
    g = 0.5
    out = _run(NStepAccumulator(3, g), [1.0, 2.0, 4.0, 8.0], terminated_at_end=True)
    assert [int(t.obs[0]) for t in out] == [0, 1, 2, 3]
    assert [t.reward for t in out] == [1 + g * 2 + g**2 * 4, 2 + g * 4 + g**2 * 8, 4 + g * 8, 8.0]
    assert [int(t.next_obs[0]) for t in out] == [3, 4, 4, 4]
    assert [t.discount for t in out] == [g**3, 0.0, 0.0, 0.0]


def test_n_step_returns_at_truncation_bootstrap_with_shorter_discounts() -> None:
    g = 0.5
    out = _run(NStepAccumulator(3, g), [1.0, 2.0, 4.0, 8.0], terminated_at_end=False)
    assert [t.reward for t in out] == [1 + g * 2 + g**2 * 4, 2 + g * 4 + g**2 * 8, 4 + g * 8, 8.0]
    assert [int(t.next_obs[0]) for t in out] == [3, 4, 4, 4]
    assert [t.discount for t in out] == [g**3, g**3, g**2, g]


def test_one_step_is_plain_dqn() -> None:
    out = _run(NStepAccumulator(1, 0.9), [1.0, 2.0], terminated_at_end=True)
    assert [(t.reward, t.discount) for t in out] == [(1.0, 0.9), (2.0, 0.0)]


def test_single_leaf_update_matches_the_batched_one() -> None:
    a, b = SumTree(13), SumTree(13)
    rng = np.random.default_rng(1)
    for i, p in enumerate(rng.random(13)):
        a.set_one(i, float(p))
        b.update(np.array([i]), np.array([p]))
    np.testing.assert_allclose(a.nodes, b.nodes)
    assert a.total == pytest.approx(b.total)
