"""A text environment: an instruction in varied wording names the button to press.

Each episode is one step. The observation is a sentence such as "please press the blue
button" or "the one you want is green, nothing else", built from several templates and
filler words; the 4 actions are red, green, blue, yellow; reward 1 for the named colour,
else 0. Chance is 25%; an agent must read the colour out of the text, wherever the wording
puts it. Made for the language-model torso of `dqn` (`-o lm=CHECKPOINT`), as the model
card's `DQNAgent(model, tokenizer, n_actions)` example.
"""

from __future__ import annotations

import string
from typing import Any

COLOURS = ("red", "green", "blue", "yellow")
TEMPLATES = (
    "press the {c} button",
    "please press the {c} button",
    "the one you want is {c}, nothing else",
    "{c} is the right choice today",
    "go for {c}",
    "choose {c} and you win",
    "i would pick {c} if i were you",
    "hit {c} now",
)
FILLERS = ("", "ok ", "hey, ", "listen: ", "quick: ")


def _base() -> Any:
    import gymnasium

    return gymnasium.Env


class InstructionEnv(_base()):  # type: ignore[misc]
    """One-step episodes: read the colour in the instruction, press that button."""

    def __init__(self, max_length: int = 64) -> None:
        from gymnasium import spaces

        charset = string.ascii_lowercase + string.digits + " ,.:!?'"
        self.observation_space = spaces.Text(max_length=max_length, min_length=1, charset=charset)
        self.action_space = spaces.Discrete(len(COLOURS))
        self.target = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        rng = self.np_random
        self.target = int(rng.integers(len(COLOURS)))
        filler = FILLERS[int(rng.integers(len(FILLERS)))]
        text = filler + TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(c=COLOURS[self.target])
        return text, {"target": self.target}

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict]:
        reward = float(int(action) == self.target)
        return "done", reward, True, False, {"target": self.target}
