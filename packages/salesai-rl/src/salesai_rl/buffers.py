"""Replay buffers for value-based agents: uniform, prioritized (sum-tree) and n-step returns.

- `SumTree`: a binary tree of priorities over a fixed number of leaves; update and
  prefix-sum search are O(log N), vectorised over a batch with numpy.
- `ReplayBuffer`: a ring buffer of transitions `(obs, action, reward, next_obs, discount)`,
  sampled uniformly. `discount` is what multiplies the bootstrap value: `gamma**n` after
  n steps, 0 after a termination (so truncation still bootstraps).
- `PrioritizedReplayBuffer`: proportional prioritisation (Schaul et al. 2016): P(i) =
  p_i^alpha / sum_k p_k^alpha, stratified sampling (one draw per equal slice of the total),
  new items at the running max priority, importance weights (N P(i))^-beta divided by
  their max in the batch.
- `NStepAccumulator`: turns one-step transitions into n-step ones, stopping at the end of an
  episode: after a termination the remaining steps do not bootstrap, after a truncation
  they bootstrap from the last observation.

State round-trips through `state_dict()` / `load_state_dict()` as numpy arrays plus
JSON-able scalars (saved with safetensors: nothing pickled). Not here: sequence replay
(R2D2) or multi-process buffers.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np


class Transition(NamedTuple):
    """One (possibly n-step) transition, ready for the buffer."""

    obs: np.ndarray
    action: int
    reward: float  # the discounted sum of the n rewards
    next_obs: np.ndarray  # the observation bootstrapped from
    discount: float  # gamma**n, or 0.0 when the episode terminated inside the n steps


class Batch(NamedTuple):
    """A sampled batch: arrays with a leading batch axis B."""

    obs: np.ndarray  # (B, *obs_shape)
    actions: np.ndarray  # (B,) int64
    rewards: np.ndarray  # (B,) float32
    next_obs: np.ndarray  # (B, *obs_shape)
    discounts: np.ndarray  # (B,) float32
    weights: np.ndarray  # (B,) float32 importance weights (all 1 for uniform sampling)
    indices: np.ndarray  # (B,) int64 positions in the buffer, for priority updates


class SumTree:
    """Priorities of `capacity` leaves in a binary tree whose nodes hold the sums of their children.

    Leaves live at `nodes[size + i]` (size = capacity rounded up to a power of two), the root
    at `nodes[1]`. `find(values)` returns, for each value in [0, total), the leaf i with
    prefix(i) <= value < prefix(i) + p_i.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.size = 1 << max(0, (capacity - 1).bit_length())  # leaves, a power of two
        self.nodes = np.zeros(2 * self.size, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.nodes[self.size + np.asarray(index)]

    def update(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set leaves `indices` to `priorities` (>= 0) and refresh their ancestors."""
        idx = np.asarray(indices, dtype=np.int64) + self.size
        self.nodes[idx] = np.asarray(priorities, dtype=np.float64)
        for _ in range(self.size.bit_length() - 1):  # one level at a time, all touched parents at once
            idx = idx // 2  # duplicates write the same sum twice: harmless
            self.nodes[idx] = self.nodes[2 * idx] + self.nodes[2 * idx + 1]

    def set_one(self, index: int, priority: float) -> None:
        """`update` for a single leaf, in plain Python (cheaper than numpy for one index)."""
        nodes, i = self.nodes, index + self.size
        nodes[i] = priority
        i //= 2
        while i >= 1:
            nodes[i] = nodes[2 * i] + nodes[2 * i + 1]
            i //= 2

    def find(self, values: np.ndarray) -> np.ndarray:
        """Leaf indices whose prefix-sum interval contains each value (vectorised descent)."""
        values = np.array(values, dtype=np.float64)  # a copy: it is consumed on the way down
        idx = np.ones(values.shape, dtype=np.int64)
        nodes = self.nodes
        for _ in range(self.size.bit_length() - 1):  # all indices sit at the same depth
            idx *= 2  # left children
            left_sum = nodes[idx]
            go_right = values >= left_sum
            values -= left_sum * go_right
            idx += go_right
        return np.minimum(idx - self.size, self.capacity - 1)


class ReplayBuffer:
    """A ring buffer of transitions sampled uniformly at random."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: Any = np.float32) -> None:
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        self.pos = 0  # next slot to write
        self.count = 0  # filled slots

    def __len__(self) -> int:
        return self.count

    def add(self, t: Transition) -> int:
        """Store one transition; returns the slot it went to."""
        i = self.pos
        self.obs[i], self.next_obs[i] = t.obs, t.next_obs
        self.actions[i], self.rewards[i], self.discounts[i] = t.action, t.reward, t.discount
        self.pos = (self.pos + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)
        return i

    def _batch(self, idx: np.ndarray, weights: np.ndarray) -> Batch:
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                     self.discounts[idx], weights.astype(np.float32), idx)

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = 0.0) -> Batch:
        """A uniform batch (with replacement); `beta` is ignored."""
        idx = rng.integers(0, self.count, size=batch_size)
        return self._batch(idx, np.ones(batch_size, dtype=np.float32))

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Nothing to do for uniform sampling (kept so agents need not tell the buffers apart)."""

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, scalars) of the filled part; enough to continue exactly."""
        n = self.count
        arrays = {"obs": self.obs[:n], "next_obs": self.next_obs[:n], "actions": self.actions[:n],
                  "rewards": self.rewards[:n], "discounts": self.discounts[:n]}
        return arrays, {"pos": self.pos, "count": self.count, "capacity": self.capacity}

    def load_state_dict(self, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
        if scalars["capacity"] != self.capacity:
            raise ValueError(f"buffer capacity {scalars['capacity']} saved, {self.capacity} configured")
        n = int(scalars["count"])
        for name in ("obs", "next_obs", "actions", "rewards", "discounts"):
            getattr(self, name)[:n] = arrays[name]
        self.pos, self.count = int(scalars["pos"]), n


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay over a sum-tree (alpha: how much priorities count)."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: Any = np.float32,
                 alpha: float = 0.6, eps: float = 1e-6) -> None:
        super().__init__(capacity, obs_shape, obs_dtype)
        self.alpha, self.eps = alpha, eps
        self.tree = SumTree(capacity)
        self.max_priority = 1.0  # running max of raw priorities |td| + eps

    def add(self, t: Transition) -> int:
        i = super().add(t)
        self.tree.set_one(i, self.max_priority ** self.alpha)
        return i

    def probabilities(self, indices: np.ndarray) -> np.ndarray:
        """P(i) = p_i^alpha / sum_k p_k^alpha."""
        return self.tree[indices] / self.tree.total

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = 0.4) -> Batch:
        """Stratified proportional sampling with importance weights (N P(i))^-beta / max."""
        total = self.tree.total
        bounds = np.arange(batch_size, dtype=np.float64) * (total / batch_size)
        values = bounds + rng.random(batch_size) * (total / batch_size)  # one per slice
        idx = self.tree.find(np.minimum(values, np.nextafter(total, 0)))
        weights = (self.count * self.probabilities(idx)) ** (-beta)
        return self._batch(idx, weights / weights.max())

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        priorities = np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(indices, priorities ** self.alpha)

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, scalars = super().state_dict()
        arrays["priorities"] = self.tree[np.arange(self.count)]
        scalars["max_priority"] = self.max_priority
        return arrays, scalars

    def load_state_dict(self, arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> None:
        super().load_state_dict(arrays, scalars)
        self.tree = SumTree(self.capacity)
        if self.count:
            self.tree.update(np.arange(self.count), arrays["priorities"])
        self.max_priority = float(scalars["max_priority"])


class NStepAccumulator:
    """Turns one-step transitions into n-step ones; call `push` every step, in order."""

    def __init__(self, n: int, gamma: float) -> None:
        if n < 1:
            raise ValueError(f"n-step must be >= 1, got {n}")
        self.n, self.gamma = n, gamma
        self.pending: deque[tuple[np.ndarray, int, float]] = deque()  # (obs, action, reward)

    def _emit(self, next_obs: np.ndarray, terminated: bool) -> Transition:
        ret = sum(r * self.gamma**i for i, (_, _, r) in enumerate(self.pending))
        obs, action, _ = self.pending[0]
        discount = 0.0 if terminated else self.gamma ** len(self.pending)
        self.pending.popleft()
        return Transition(obs, action, float(ret), next_obs, discount)

    def push(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray,
             terminated: bool, truncated: bool) -> list[Transition]:
        """Add one step; returns the transitions that became complete (0, 1, or up to n at an episode end)."""
        self.pending.append((obs, action, reward))
        out: list[Transition] = []
        if terminated or truncated:  # flush: shorter returns from the last observation
            while self.pending:
                out.append(self._emit(next_obs, terminated))
        elif len(self.pending) == self.n:
            out.append(self._emit(next_obs, False))
        return out

    def reset(self) -> None:
        self.pending.clear()
