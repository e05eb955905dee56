"""Q-networks: a torso (MLP for vectors, small CNN for images) and a plain or dueling head.

`LMTorso` reads text: the mean-pooled final hidden state of a salesai language model over
the observation's tokens, frozen or fine-tuned. The dueling head (Wang et al. 2016)
computes Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a'), `dueling_aggregate` below, so V and A
stay identifiable. Imported by the agents inside
their methods (this module imports torch at the top).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def dueling_aggregate(value: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Q = V + A - mean(A): value (B, 1), advantages (B, A) -> (B, A)."""
    return value + advantages - advantages.mean(dim=1, keepdim=True)


class MLPTorso(nn.Module):
    """Two hidden ReLU layers over a flattened vector observation."""

    def __init__(self, obs_size: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_size, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # (B, *obs_shape)
        return self.net(obs.flatten(1).float())  # (B, hidden)


class CNNTorso(nn.Module):
    """A small conv net for (C, H, W) images; uint8 pixels are scaled to [0, 1]."""

    def __init__(self, channels: int, hidden: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),  # (B, 64 * 4 * 4) whatever the image size
            nn.Linear(64 * 16, hidden), nn.ReLU(),
        )
        self.out_dim = hidden

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return self.net(obs.float() / self.scale)  # (B, hidden)


class LMTorso(nn.Module):
    """A salesai language model's final hidden states, mean-pooled over non-pad tokens.

    (B, T) token ids -> (B, D).
    """

    def __init__(self, lm: Any, pad_id: int, finetune: bool) -> None:
        super().__init__()
        self.lm: Any = lm
        self.pad_id, self.finetune = pad_id, finetune
        self.out_dim = int(lm.config.hidden_dim)
        if not finetune:
            lm.requires_grad_(False)
            lm.eval()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) int64, right-padded
        ids = ids.long()
        mask = ids != self.pad_id  # (B, T)
        mask[:, 0] = True  # never an all-pad row
        captured: list[torch.Tensor] = []
        last = self.lm.layers[-1]  # its output[0] is the residual stream (B, T, D)
        handle = last.register_forward_hook(lambda m, i, o: captured.append(o[0]))
        try:
            with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
                self.lm(input_ids=ids, attention_mask=mask.long(), logits_to_keep=1)
                h = self.lm.norm(captured[0])  # (B, T, D)
        finally:
            handle.remove()
        weights = mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
        return (h * weights).sum(1) / weights.sum(1)  # (B, D)


class QNetwork(nn.Module):
    """Torso + head mapping a batch of observations to Q-values (B, n_actions)."""

    def __init__(self, torso: MLPTorso | CNNTorso | LMTorso, n_actions: int, dueling: bool) -> None:
        super().__init__()
        self.torso, self.dueling = torso, dueling
        width = int(torso.out_dim)
        if dueling:
            self.value = nn.Linear(width, 1)
            self.advantage = nn.Linear(width, n_actions)
        else:
            self.head = nn.Linear(width, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.torso(obs)  # (B, width)
        if self.dueling:
            return dueling_aggregate(self.value(h), self.advantage(h))  # (B, n_actions)
        return self.head(h)  # (B, n_actions)


def build_q_network(obs_shape: tuple[int, ...], n_actions: int, *, torso: str, hidden: int,
                    dueling: bool, pixel_scale: float = 255.0, lm: nn.Module | None = None,
                    pad_id: int = 0, finetune: bool = False) -> QNetwork:
    """An MLP Q-network for vectors, a CNN one for (C, H, W) images, an LM one for token ids."""
    body: MLPTorso | CNNTorso | LMTorso
    if torso == "lm":
        assert lm is not None, "torso 'lm' needs the language model"
        body = LMTorso(lm, pad_id, finetune)
    elif torso == "cnn":
        body = CNNTorso(obs_shape[0], hidden, pixel_scale)
    else:
        size = 1
        for d in obs_shape:
            size *= d
        body = MLPTorso(size, hidden)
    return QNetwork(body, n_actions, dueling)
