"""Episodic novelty: the episodic intrinsic reward of Never Give Up (Badia et al. 2020, Alg. 1).

For each new observation embedding f(x_t), with M the embeddings seen so far in this episode:

    d_k^2      squared Euclidean distances to the k nearest neighbours of f(x_t) in M
    d_m^2      running mean of every d_k^2 computed so far (kept across episodes)
    d_n        max(d_k^2 / d_m^2 - cluster_distance, 0)
    K          eps / (d_n + eps)                      (inverse kernel, one per neighbour)
    s          sqrt(sum K) + c
    r_int      0 if s > s_max else 1 / s

then f(x_t) joins M. M is cleared at each episode start. Defaults are the paper's: k 10,
eps 1e-4, c 0.001, s_max 8, cluster distance 0.008.

What it is not: NGU's learned inverse-dynamics embedding and its RND life-long modulation.
Here the embedding is the observation itself (flattened), or a fixed random projection of
it to `embedding_dim` when it is wider than that (images), so the bonus works on any
observation without training a second network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class NoveltyConfig:
    k: int = 10  # neighbours
    eps: float = 1e-4  # kernel epsilon
    c: float = 0.001  # pseudo-count constant
    s_max: float = 8.0  # similarity above which the bonus is 0
    cluster_distance: float = 0.008  # xi: normalised distances below it count as the same state
    embedding_dim: int = 64  # observations wider than this are randomly projected to it


class EpisodicNovelty:
    """The NGU episodic bonus over one episode's memory of embeddings."""

    def __init__(self, obs_size: int, config: NoveltyConfig | None = None, seed: int = 0) -> None:
        self.config = config or NoveltyConfig()
        self.projection: np.ndarray | None = None
        if obs_size > self.config.embedding_dim:  # fixed Gaussian random projection
            rng = np.random.default_rng(seed)
            self.projection = rng.normal(size=(obs_size, self.config.embedding_dim)) / np.sqrt(
                self.config.embedding_dim)
        self.memory: list[np.ndarray] = []
        self.mean_sq_distance = 0.0  # d_m^2, running mean
        self.count = 0  # distances averaged into d_m^2

    def embed(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float64).reshape(-1)  # (obs_size,)
        return x @ self.projection if self.projection is not None else x

    def reset(self, obs: np.ndarray | None = None) -> None:
        """Start an episode: clear the memory (and remember its first observation, if given)."""
        self.memory = [] if obs is None else [self.embed(obs)]

    def bonus(self, obs: np.ndarray) -> float:
        """The intrinsic reward of `obs`, then add it to the memory."""
        cfg, e = self.config, self.embed(obs)
        if not self.memory:
            self.memory.append(e)
            return 0.0
        mem = np.stack(self.memory)  # (M, D)
        sq = ((mem - e) ** 2).sum(axis=1)  # (M,)
        k = min(cfg.k, len(sq))
        nearest = np.partition(sq, k - 1)[:k]  # (k,) the k smallest squared distances
        for d in nearest:  # running mean of d_k^2, one distance at a time
            self.count += 1
            self.mean_sq_distance += (float(d) - self.mean_sq_distance) / self.count
        self.memory.append(e)
        normalised = nearest / self.mean_sq_distance if self.mean_sq_distance > 0 else np.zeros(k)
        normalised = np.maximum(normalised - cfg.cluster_distance, 0.0)
        kernel = cfg.eps / (normalised + cfg.eps)  # (k,)
        s = float(np.sqrt(kernel.sum())) + cfg.c
        return 0.0 if s > cfg.s_max else 1.0 / s

    def state(self) -> dict[str, float]:
        """Scalars to save (the memory is per episode; checkpoints are taken between episodes)."""
        return {"mean_sq_distance": self.mean_sq_distance, "count": self.count}

    def load_state(self, state: dict[str, float]) -> None:
        self.mean_sq_distance, self.count = float(state["mean_sq_distance"]), int(state["count"])
