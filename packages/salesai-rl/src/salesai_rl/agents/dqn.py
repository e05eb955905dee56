"""DQN (Mnih et al. 2015) with each Rainbow part a switch (Hessel et al. 2018).

Switches (options): `double` (van Hasselt et al. 2016: the online net picks the next action,
the target net values it), `dueling` (Wang et al. 2016), `prioritized` (Schaul et al. 2016,
proportional over a sum-tree; alpha 0.6, beta annealed 0.4 -> 1), `n_step` returns
(stopping at termination and truncation, bootstrapping after truncation only), and
`novelty="episodic"` (Never Give Up's episodic bonus added to the reward). Not here: the
distributional (C51) head and noisy nets. Defaults: what the CartPole ablation of
bench/rl.py chose (n-step returns on, the other parts off, one update every 4 env steps).

Observations: vectors (MLP torso), images (C, H, W) or (H, W, C) (small CNN torso),
`Discrete` observations (one-hot), text (`Text` spaces: the torso is a salesai
language-model checkpoint, `lm=PATH`, its pooled final hidden state, frozen unless
`lm_finetune`). Actions: `Discrete` only. The update step is
`DQNAgent.learn`, readable top to bottom; the target maths is `td_targets`, a pure
function. torch is imported inside methods so registering the agent costs nothing.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salesai.errors import SalesAIError
from salesai_rl.agents.base import resolve_options

if TYPE_CHECKING:
    import numpy as np
    import torch

FORMAT = 1  # version of the saved layout


@dataclass
class DQNConfig:
    # network
    hidden: int = 256  # width of the torso's hidden layers
    torso: str = "auto"  # auto (cnn for 3-d observations, else mlp), mlp or cnn
    dueling: bool = False  # dueling value/advantage head (off: the ablation in bench/rl.py)
    # learning
    lr: float = 1e-3  # Adam learning rate
    gamma: float = 0.99  # discount
    batch_size: int = 64
    learning_starts: int = 1000  # steps of pure exploration before the first update
    train_every: int = 4  # env steps between updates (bench/rl.py: 1 is not better, and 4x slower)
    gradient_steps: int = 1  # updates each time
    target_update: int = 500  # env steps between target-network updates
    tau: float = 1.0  # target update mix (1.0: copy)
    max_grad_norm: float = 10.0
    double: bool = False  # double-Q targets (off: the ablation)
    n_step: int = 3  # n-step returns (on: the one part that helps in the ablation)
    # replay
    buffer_size: int = 50_000
    prioritized: bool = False  # proportional prioritized replay (off: the ablation)
    per_alpha: float = 0.6
    per_beta: float = 0.4  # annealed linearly to 1 over total_steps
    # exploration
    total_steps: int = 100_000  # horizon of the epsilon and beta schedules (the run sets it to --steps)
    eps_start: float = 1.0
    eps_end: float = 0.05
    exploration_fraction: float = 0.1  # share of total_steps over which epsilon decays
    # episodic novelty
    novelty: str = "none"  # none or episodic
    novelty_beta: float = 0.1  # weight of the intrinsic reward
    novelty_k: int = 10
    # text observations
    lm: str = ""  # salesai checkpoint whose pooled hidden state reads Text observations
    lm_finetune: bool = False  # train the language model too (else frozen)
    text_length: int = 32  # tokens kept per observation


def td_targets(rewards: torch.Tensor, discounts: torch.Tensor, next_q_online: torch.Tensor,
               next_q_target: torch.Tensor, double: bool) -> torch.Tensor:
    """y = r + discount * Q_target(s', a*), a* = argmax Q_online (double) or argmax Q_target.

    rewards, discounts: (B,); next_q_online, next_q_target: (B, A) -> (B,).
    """
    if double:
        best = next_q_online.argmax(dim=1, keepdim=True)  # (B, 1)
        next_value = next_q_target.gather(1, best).squeeze(1)  # (B,)
    else:
        next_value = next_q_target.max(dim=1).values  # (B,)
    return rewards + discounts * next_value


def _obs_layout(space: Any, cfg: DQNConfig) -> tuple[str, tuple[int, ...], Any]:
    """(kind, stored shape, dtype) for an observation space; refuses what DQN cannot read."""
    import numpy as np
    from gymnasium import spaces

    torso = cfg.torso
    if isinstance(space, spaces.Discrete):
        return "onehot", (int(space.n),), np.float32
    if isinstance(space, spaces.Text):
        if not cfg.lm:
            raise SalesAIError("agent 'dqn' reads Text observations through a language model: "
                               "pass -o lm=CHECKPOINT (a salesai checkpoint directory)")
        return "text", (cfg.text_length,), np.int64
    if not isinstance(space, spaces.Box):
        raise SalesAIError(
            f"agent 'dqn' reads Box, Discrete or Text observations; this env has {space}")
    shape = tuple(int(d) for d in space.shape)
    if len(shape) == 3 or torso == "cnn":
        if len(shape) != 3:
            raise SalesAIError(
                f"agent 'dqn': torso=cnn needs (C, H, W) or (H, W, C) images, got shape {shape}")
        channels_last = shape[2] in (1, 3, 4) and shape[0] not in (1, 3, 4)
        chw = (shape[2], shape[0], shape[1]) if channels_last else shape
        return ("hwc" if channels_last else "chw"), chw, space.dtype
    return "vector", shape, np.float32


class DQNAgent:
    """DQN with Rainbow switches; see the module docstring and `DQNConfig` for the options."""

    name = "dqn"

    @classmethod
    def default_options(cls) -> dict[str, Any]:
        return asdict(DQNConfig())

    def __init__(self, observation_space: Any, action_space: Any, *, seed: int = 0, **options: Any) -> None:
        import numpy as np
        import torch
        from gymnasium import spaces

        from salesai_rl.agents.networks import build_q_network
        from salesai_rl.buffers import NStepAccumulator, PrioritizedReplayBuffer, ReplayBuffer
        from salesai_rl.novelty import EpisodicNovelty, NoveltyConfig

        cfg = DQNConfig(**resolve_options(self.name, self.default_options(), options))
        if not isinstance(action_space, spaces.Discrete):
            raise SalesAIError(f"agent 'dqn' needs a Discrete action space; this env has {action_space}")
        if cfg.torso not in ("auto", "mlp", "cnn"):
            raise SalesAIError(
                f"option 'torso' of agent 'dqn' expects auto, mlp or cnn, got {cfg.torso!r}")
        if cfg.novelty not in ("none", "episodic"):
            raise SalesAIError(
                f"option 'novelty' of agent 'dqn' expects none or episodic, got {cfg.novelty!r}")
        for name in ("n_step", "batch_size", "buffer_size", "train_every", "target_update", "hidden"):
            if getattr(cfg, name) < 1:
                raise SalesAIError(f"option {name!r} of agent 'dqn' must be >= 1, got {getattr(cfg, name)}")
        self.config, self.seed = cfg, seed
        self.observation_space, self.action_space = observation_space, action_space
        self.n_actions = int(action_space.n)
        self.obs_kind, self.obs_shape, obs_dtype = _obs_layout(observation_space, cfg)
        torso = {"chw": "cnn", "hwc": "cnn", "text": "lm"}.get(self.obs_kind, "mlp")
        scale = 255.0 if np.dtype(obs_dtype) == np.uint8 else 1.0
        self.tokenizer: Any = None
        lm_kwargs: dict[str, Any] = {}
        if torso == "lm":
            lm_kwargs = self._load_lm(cfg)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.q = build_q_network(self.obs_shape, self.n_actions, torso=torso, hidden=cfg.hidden,
                                     dueling=cfg.dueling, pixel_scale=scale, **lm_kwargs)
            if torso == "lm":
                lm_kwargs["lm"] = copy.deepcopy(lm_kwargs["lm"])
            self.target = build_q_network(self.obs_shape, self.n_actions, torso=torso, hidden=cfg.hidden,
                                          dueling=cfg.dueling, pixel_scale=scale, **lm_kwargs)
        self.target.load_state_dict(self.q.state_dict())
        self.trainable = [p for p in self.q.parameters() if p.requires_grad]
        # fused: one kernel for all parameters (the cheapest Adam step on CPU for small nets)
        self.optimizer = torch.optim.Adam(self.trainable, lr=cfg.lr, fused=True)
        self.prioritized = cfg.prioritized
        buffer_cls = PrioritizedReplayBuffer if cfg.prioritized else ReplayBuffer
        kwargs = {"alpha": cfg.per_alpha} if cfg.prioritized else {}
        self.buffer = buffer_cls(cfg.buffer_size, self.obs_shape, obs_dtype, **kwargs)
        self.nstep = NStepAccumulator(cfg.n_step, cfg.gamma)
        self.novelty = None
        if cfg.novelty == "episodic":
            size = int(np.prod(self.obs_shape))
            self.novelty = EpisodicNovelty(size, NoveltyConfig(k=cfg.novelty_k), seed=seed)
        self.rng = np.random.default_rng(seed)
        self.steps = 0  # env steps observed
        self.updates = 0  # gradient steps taken
        self.new_episode = True

    def _load_lm(self, cfg: DQNConfig) -> dict[str, Any]:
        """The language model and tokenizer of checkpoint `cfg.lm`, for the text torso."""
        from salesai.model import load_checkpoint

        model, tokenizer = load_checkpoint(cfg.lm)
        if tokenizer is None:
            raise SalesAIError(f"option 'lm' of agent 'dqn': checkpoint {cfg.lm} has no tokenizer.model")
        self.tokenizer = tokenizer
        return {"lm": model, "pad_id": int(tokenizer.pad_id), "finetune": cfg.lm_finetune}

    # -- acting ---------------------------------------------------------------------------
    def preprocess(self, obs: Any) -> np.ndarray:
        """An observation as stored and fed to the network (one-hot, CHW, float32 vector, token ids)."""
        import numpy as np

        if self.obs_kind == "text":
            ids = self.tokenizer.encode(str(obs))[: self.obs_shape[0]]
            out = np.full(self.obs_shape, int(self.tokenizer.pad_id), dtype=np.int64)
            out[: len(ids)] = ids
            return out
        if self.obs_kind == "onehot":
            out = np.zeros(self.obs_shape, dtype=np.float32)
            out[int(obs)] = 1.0
            return out
        arr = np.asarray(obs)
        if self.obs_kind == "hwc":
            return np.ascontiguousarray(arr.transpose(2, 0, 1))
        return arr.astype(np.float32, copy=False) if self.obs_kind == "vector" else arr

    def epsilon(self) -> float:
        cfg = self.config
        span = max(1.0, cfg.exploration_fraction * cfg.total_steps)
        frac = min(1.0, self.steps / span)
        return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)

    def beta(self) -> float:
        frac = min(1.0, self.steps / max(1, self.config.total_steps))
        return self.config.per_beta + frac * (1.0 - self.config.per_beta)

    def q_values(self, obs: Any) -> np.ndarray:
        """Q(obs, .) for one observation: (n_actions,)."""
        import torch

        x = torch.as_tensor(self.preprocess(obs)).unsqueeze(0)  # (1, *obs_shape)
        with torch.no_grad():
            return self.q(x)[0].numpy()

    def act(self, observation: Any, explore: bool = True) -> int:
        """epsilon-greedy when exploring, greedy (deterministic, lowest index on ties) otherwise."""
        if explore and self.rng.random() < self.epsilon():
            return int(self.rng.integers(self.n_actions))
        return int(self.q_values(observation).argmax())

    # -- learning -------------------------------------------------------------------------
    def observe(self, obs: Any, action: Any, reward: float, next_obs: Any,
                terminated: bool, truncated: bool) -> dict[str, float]:
        """Store the step (n-step, novelty bonus), learn when due, update the target net."""
        cfg = self.config
        o, o2 = self.preprocess(obs), self.preprocess(next_obs)
        metrics: dict[str, float] = {}
        if self.novelty is not None:
            if self.new_episode:
                self.novelty.reset(o)
            bonus = self.novelty.bonus(o2)
            reward = float(reward) + cfg.novelty_beta * bonus
            metrics["novelty_bonus"] = bonus
        self.new_episode = bool(terminated or truncated)
        done = (bool(terminated), bool(truncated))
        for transition in self.nstep.push(o, int(action), float(reward), o2, *done):
            self.buffer.add(transition)
        self.steps += 1
        if self.steps >= cfg.learning_starts and self.steps % cfg.train_every == 0 and len(self.buffer) > 0:
            for _ in range(cfg.gradient_steps):
                metrics.update(self.learn())
        if self.steps % cfg.target_update == 0:
            self.update_target()
        metrics["epsilon"] = self.epsilon()
        return metrics

    def learn(self) -> dict[str, float]:
        """One gradient step on a sampled batch (CleanRL-style, top to bottom)."""
        import torch
        import torch.nn.functional as F

        cfg = self.config
        batch = self.buffer.sample(cfg.batch_size, self.rng, beta=self.beta())
        obs = torch.from_numpy(batch.obs)  # (B, *obs_shape)
        next_obs = torch.from_numpy(batch.next_obs)  # (B, *obs_shape)
        actions = torch.from_numpy(batch.actions)  # (B,)
        rewards = torch.from_numpy(batch.rewards)  # (B,)
        discounts = torch.from_numpy(batch.discounts)  # (B,) gamma**n, 0 after termination
        with torch.no_grad():  # s' only picks (double) and values the next action: no graph
            next_q_target = self.target(next_obs)  # (B, A)
            next_online = self.q(next_obs) if cfg.double else next_q_target  # (B, A)
            targets = td_targets(rewards, discounts, next_online, next_q_target, cfg.double)  # (B,)
        q = self.q(obs).gather(1, actions.unsqueeze(1)).squeeze(1)  # (B,)
        losses = F.smooth_l1_loss(q, targets, reduction="none")  # (B,)
        if self.prioritized:  # importance weights (B,); all 1 for uniform replay
            losses = torch.from_numpy(batch.weights) * losses
        loss = losses.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, cfg.max_grad_norm, foreach=True)
        self.optimizer.step()
        if self.prioritized:
            self.buffer.update_priorities(batch.indices, (targets - q.detach()).numpy())
        self.updates += 1
        return {"loss": loss.item(), "q": q.detach().mean().item()}

    def update_target(self) -> None:
        import torch

        tau = self.config.tau
        with torch.no_grad():
            for t, p in zip(self.target.parameters(), self.q.parameters(), strict=True):
                t.mul_(1.0 - tau).add_(p, alpha=tau)

    # -- saving ---------------------------------------------------------------------------
    def _tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """Network tensors by name, each storage once (tied weights: `ties` maps a name to the kept one)."""
        tensors = {f"q.{k}": v for k, v in self.q.state_dict().items()}
        tensors.update({f"target.{k}": v for k, v in self.target.state_dict().items()})
        out: dict[str, torch.Tensor] = {}
        seen: dict[tuple[int, int], str] = {}
        ties: dict[str, str] = {}
        for name, value in tensors.items():
            key = (value.untyped_storage().data_ptr(), value.storage_offset())
            if key in seen:
                ties[name] = seen[key]
                continue
            seen[key] = name
            out[name] = value.detach().contiguous()
        return out, ties

    def save(self, directory: str | Path, include_buffer: bool = True) -> None:
        """Write agent.json, model.safetensors, optimizer.safetensors (and buffer.safetensors)."""
        import numpy as np
        from safetensors.numpy import save_file as save_numpy
        from safetensors.torch import save_file

        from salesai.train import save_optimizer

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors, ties = self._tensors()
        save_file(tensors, str(out / "model.safetensors"))
        optim_meta = save_optimizer(self.optimizer, out / "optimizer.safetensors")
        meta: dict[str, Any] = {
            "format": FORMAT, "agent": self.name, "seed": self.seed, "options": asdict(self.config),
            "obs_shape": list(self.obs_shape), "n_actions": self.n_actions,
            "steps": self.steps, "updates": self.updates, "rng": self.rng.bit_generator.state,
            "optimizer": optim_meta, "novelty": self.novelty.state() if self.novelty else None,
            "buffer": None, "ties": ties,
        }
        if include_buffer:
            arrays, scalars = self.buffer.state_dict()
            contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
            save_numpy(contiguous, str(out / "buffer.safetensors"))
            meta["buffer"] = scalars
        (out / "agent.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: str | Path, observation_space: Any, action_space: Any) -> DQNAgent:
        """The agent saved in `directory`; the spaces must match the saved ones."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file as load_numpy
        from safetensors.torch import load_file

        from salesai.train import load_optimizer

        path = Path(directory)
        try:
            meta = json.loads((path / "agent.json").read_text())
            options, seed = meta["options"], int(meta["seed"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SalesAIError(
                f"checkpoint {path}: unreadable agent.json ({type(exc).__name__}: {exc})") from None
        if meta.get("agent") != cls.name:
            raise SalesAIError(f"checkpoint {path}: holds agent {meta.get('agent')!r}, not {cls.name!r}")
        agent = cls(observation_space, action_space, seed=seed, **options)
        if list(agent.obs_shape) != meta["obs_shape"] or agent.n_actions != meta["n_actions"]:
            raise SalesAIError(
                f"checkpoint {path}: saved for observations {meta['obs_shape']} and "
                f"{meta['n_actions']} actions; "
                f"this env has {list(agent.obs_shape)} and {agent.n_actions}")
        try:
            tensors = load_file(str(path / "model.safetensors"))
            for name, kept in meta.get("ties", {}).items():
                tensors[name] = tensors[kept]
            agent.q.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("q.")})
            agent.target.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("target.")})
            load_optimizer(agent.optimizer, path / "optimizer.safetensors", meta["optimizer"])
            if meta.get("buffer") is not None:
                agent.buffer.load_state_dict(load_numpy(str(path / "buffer.safetensors")), meta["buffer"])
        except (OSError, RuntimeError, ValueError, KeyError, SafetensorError, SalesAIError) as exc:
            raise SalesAIError(
                f"checkpoint {path}: corrupt or mismatched file ({type(exc).__name__}: {exc})") from None
        agent.steps, agent.updates = int(meta["steps"]), int(meta["updates"])
        agent.rng.bit_generator.state = meta["rng"]
        if agent.novelty is not None and meta.get("novelty"):
            agent.novelty.load_state(meta["novelty"])
        return agent
