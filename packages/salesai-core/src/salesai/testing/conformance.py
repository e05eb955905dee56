"""Conformance checks: the contract every registered expert, encoder, exporter, reward and agent must meet.

Each check builds the component from its factory, exercises the public contract of
`docs/plugins/hooks.md` on tiny inputs, and raises `AssertionError` naming the first
broken promise. The core runs them parametrised over its registries (timm style), so a
plugin component is tested merely by being installed; plugin authors call them directly:

    from salesai.testing import check_expert
    def test_relu2(): check_expert(relu2)

Each check runs under `torch.random.fork_rng`, so it leaves the global RNG as it found it.
What they are not: quality tests. A component that passes is well-formed, not good.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from salesai.testing.samples import sample_png_bytes, sample_wav_bytes

# Inputs for `check_encoder` when the caller passes no sample, by modality.
DEFAULT_SAMPLES: dict[str, tuple[Callable[[], bytes], str]] = {
    "image": (sample_png_bytes, ".png"),
    "audio": (sample_wav_bytes, ".wav"),
}

# The option every exporter must refuse.
GARBAGE_OPTION = "not_an_option_of_any_exporter"


def _require(condition: object, check: str, message: str) -> None:
    if not condition:
        raise AssertionError(f"{check}: {message}")


def _check_gradients(check: str, module: Any, loss: Any, inputs: Any = None) -> None:
    """Backpropagate `loss`; every trainable parameter (and `inputs`, if given) gets a finite gradient."""
    import torch

    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    _require(params, check, "the module has no trainable parameters")
    module.zero_grad(set_to_none=True)
    loss.backward()
    missing = [n for n, p in params if p.grad is None]
    _require(not missing, check, f"no gradient reaches parameter(s) {', '.join(missing[:5])}")
    bad = [n for n, p in params if p.grad is not None and not torch.isfinite(p.grad).all()]
    _require(not bad, check, f"non-finite gradient in parameter(s) {', '.join(bad[:5])}")
    _require(
        any(p.grad is not None and p.grad.abs().sum() > 0 for _, p in params),
        check,
        "every parameter gradient is zero",
    )
    if inputs is not None:
        _require(
            inputs.grad is not None and inputs.grad.abs().sum() > 0, check, "no gradient reaches the input"
        )
    module.zero_grad(set_to_none=True)


def check_expert(
    factory: Callable[..., Any], hidden_dim: int = 16, intermediate_dim: int = 24, *, seed: int = 0
) -> Any:
    """Check an expert type: `factory(hidden_dim, intermediate_dim) -> nn.Module`, (N, D) -> (N, D).

    Checks: an `nn.Module`; output shape and dtype for N = 0, 1 and 7 tokens; finite values;
    gradients reach every trainable parameter and the input; deterministic in eval mode;
    rows independent (a token's output does not depend on which other tokens share the
    batch, which MoE routing relies on). Returns the module.
    """
    import torch

    check = "check_expert"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = factory(hidden_dim, intermediate_dim)
        _require(
            isinstance(module, torch.nn.Module),
            check,
            f"factory returned {type(module).__name__}, not nn.Module",
        )
        for n in (0, 1, 7):
            x = torch.randn(n, hidden_dim)
            y = module(x)
            _require(isinstance(y, torch.Tensor), check, f"forward returned {type(y).__name__}, not a tensor")
            _require(
                tuple(y.shape) == (n, hidden_dim),
                check,
                f"input ({n}, {hidden_dim}) gave output {tuple(y.shape)}, expected ({n}, {hidden_dim})",
            )
            _require(y.dtype == x.dtype, check, f"output dtype {y.dtype} differs from input dtype {x.dtype}")
            _require(torch.isfinite(y).all(), check, f"non-finite output for {n} token(s)")

        module.train()
        x = torch.randn(7, hidden_dim, requires_grad=True)
        y = module(x)
        _check_gradients(check, module, (y * torch.randn_like(y)).sum(), inputs=x)

        module.eval()
        with torch.no_grad():
            x = torch.randn(7, hidden_dim)
            first, second = module(x), module(x)
            _require(torch.equal(first, second), check, "two eval-mode calls on the same input differ")
            alone = module(x[:3])
        try:
            torch.testing.assert_close(alone, first[:3])
        except AssertionError as exc:
            raise AssertionError(
                f"{check}: a token's output depends on the other tokens in the batch\n{exc}"
            ) from None
    return module


def check_encoder(
    factory: Callable[..., Any],
    sample: bytes | str | Path | None = None,
    *,
    batch_size: int = 2,
    seed: int = 0,
    **options: Any,
) -> Any:
    """Check a modality encoder: `factory(**options) -> nn.Module` (the contract of docs/plugins/hooks.md).

    `sample` is one input file (path or bytes) for `preprocess`; without it, a built-in
    sample is used for the "image" (PNG) and "audio" (WAV) modalities. Checks:
    `preprocess` accepts bytes, `str` and `Path` alike and returns one item as a tensor
    (no batch axis); forward on `batch_size` stacked items gives (B, N, output_dim), finite;
    identical items give identical rows; deterministic in eval mode; gradients reach every
    trainable parameter; `example_input()` is a batch forward accepts; `preprocess_spec()` is a
    JSON-serialisable dict naming its modality. Returns the encoder.
    """
    import json

    import torch

    check = "check_encoder"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = factory(**options)
        _require(
            isinstance(encoder, torch.nn.Module),
            check,
            f"factory returned {type(encoder).__name__}, not nn.Module",
        )
        modality = getattr(encoder, "modality", None)
        _require(
            isinstance(modality, str) and modality,
            check,
            f"`modality` must be a non-empty str, got {modality!r}",
        )
        output_dim = getattr(encoder, "output_dim", None)
        _require(
            isinstance(output_dim, int) and output_dim > 0,
            check,
            f"`output_dim` must be a positive int, got {output_dim!r}",
        )
        for method in ("preprocess", "example_input", "preprocess_spec"):
            _require(callable(getattr(encoder, method, None)), check, f"`{method}` is missing")
        spec = encoder.preprocess_spec()
        _require(isinstance(spec, dict), check, f"preprocess_spec() gave {type(spec).__name__}, not a dict")
        try:
            json.dumps(spec)
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"{check}: preprocess_spec() is not JSON-serialisable: {exc}") from None

        if sample is None:
            _require(
                modality in DEFAULT_SAMPLES,
                check,
                f"no built-in sample for modality {modality!r}: pass sample=<path or bytes>",
            )
            make, suffix = DEFAULT_SAMPLES[str(modality)]
            data = make()
        elif isinstance(sample, bytes):
            data, suffix = sample, ""
        else:
            data, suffix = Path(sample).read_bytes(), Path(sample).suffix

        item = encoder.preprocess(data)
        _require(
            isinstance(item, torch.Tensor), check, f"preprocess returned {type(item).__name__}, not a tensor"
        )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"sample{suffix}"
            path.write_bytes(data)
            for source in (path, str(path)):
                again = encoder.preprocess(source)
                _require(
                    isinstance(again, torch.Tensor)
                    and again.shape == item.shape
                    and torch.equal(again, item),
                    check,
                    f"preprocess({type(source).__name__}) differs from preprocess(bytes) for the same file",
                )

        batch = torch.stack([item] * batch_size)  # (B, ...)
        encoder.eval()
        with torch.no_grad():
            out = encoder(batch)
            again = encoder(batch)
        _require(isinstance(out, torch.Tensor), check, f"forward returned {type(out).__name__}, not a tensor")
        _require(
            out.dim() == 3
            and out.shape[0] == batch_size
            and out.shape[1] >= 1
            and out.shape[2] == output_dim,
            check,
            f"input {tuple(batch.shape)} gave output {tuple(out.shape)}, "
            f"expected ({batch_size}, N, {output_dim})",
        )
        _require(torch.isfinite(out).all(), check, "non-finite output")
        _require(torch.equal(out, again), check, "two eval-mode calls on the same input differ")
        torch.testing.assert_close(
            out[0], out[-1], msg=lambda m: f"{check}: identical items gave different rows\n{m}"
        )

        example = encoder.example_input()
        _require(isinstance(example, torch.Tensor), check, "example_input() must return a tensor batch")
        with torch.no_grad():
            out = encoder(example)
        _require(
            out.dim() == 3 and out.shape[0] == example.shape[0] and out.shape[2] == output_dim,
            check,
            f"example_input() {tuple(example.shape)} gave output {tuple(out.shape)}, "
            f"expected ({example.shape[0]}, N, {output_dim})",
        )

        encoder.train()
        out = encoder(batch)
        _check_gradients(check, encoder, (out * torch.randn_like(out)).sum())
    return encoder


def check_exporter(
    factory: Callable[..., Any], model: Any, tokenizer: Any, tmp_path: str | Path, **options: Any
) -> Path:
    """Check an exporter: `factory(model, tokenizer, out_dir, **options) -> Path`.

    Checks: returns a `pathlib.Path` that exists and lies inside `out_dir` (or is it);
    leaves the model's weights and train/eval mode untouched; refuses an unknown option
    with `SalesAIError` (a `TypeError` from a keyword-only signature is accepted too).
    `tmp_path` is a scratch directory (pytest's fixture of that name fits). Returns the path.
    """
    import torch

    check = "check_exporter"
    tmp = Path(tmp_path)
    out_dir = tmp / "export"
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    training = model.training

    result = factory(model, tokenizer, out_dir, **options)
    _require(isinstance(result, Path), check, f"returned {type(result).__name__}, expected a pathlib.Path")
    _require(result.exists(), check, f"returned {result}, which does not exist")
    inside = result.resolve() == out_dir.resolve() or out_dir.resolve() in result.resolve().parents
    _require(inside, check, f"returned {result}, which is outside out_dir {out_dir}")

    after = model.state_dict()
    _require(set(after) == set(before), check, "the model's parameter names changed")
    changed = [k for k, v in before.items() if not torch.equal(v, after[k].detach())]
    _require(not changed, check, f"the model's weights changed: {', '.join(changed[:5])}")
    _require(model.training == training, check, f"the model's training flag changed to {model.training}")

    try:
        factory(model, tokenizer, tmp / "export-refused", **options, **{GARBAGE_OPTION: 1})
    except (TypeError, ValueError):  # SalesAIError is a ValueError
        pass
    else:
        raise AssertionError(f"{check}: an unknown option {GARBAGE_OPTION}=1 was accepted silently")
    model.train(training)
    return result


# Prompt records for `check_reward`: (prompt, completion, answer), plus an unrelated extra field.
REWARD_SAMPLES = (
    ("12+7=", "19", "19"),
    ("3*4=", "11", "12"),
    ("def f(x):", "\n    return x\n", "x"),
    ("", "", ""),
)


def check_reward(factory: Callable[..., Any], **options: Any) -> Any:
    """Check an LM RL reward: `factory(**options) -> reward`, where
    `reward(prompts, completions, **fields) -> list[float | None]`.

    Checks: the reward is callable; on a batch of 4 records (fields `answer` and an unrelated
    `source`, which it must accept and may ignore) it returns a list of 4 entries, each a
    finite float (an int is accepted) or None, not every one None; the same call gives the
    same list; an empty batch gives []; it leaves its inputs unchanged; the factory refuses
    an unknown option (`SalesAIError`, or `TypeError` from a keyword-only signature).
    Returns the reward.
    """
    import math

    check = "check_reward"
    reward = factory(**options)
    _require(callable(reward), check, f"factory returned {type(reward).__name__}, which is not callable")
    prompts = [p for p, _, _ in REWARD_SAMPLES]
    completions = [c for _, c, _ in REWARD_SAMPLES]
    fields = {"answer": [a for _, _, a in REWARD_SAMPLES], "source": ["check_reward"] * len(REWARD_SAMPLES)}
    before = (list(prompts), list(completions), {k: list(v) for k, v in fields.items()})
    scores = reward(prompts, completions, **fields)
    _require(isinstance(scores, list), check, f"returned {type(scores).__name__}, expected a list")
    n = len(prompts)
    _require(len(scores) == n, check, f"returned {len(scores)} scores for {n} completions")
    for i, score in enumerate(scores):
        ok = score is None or (
            isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score)
        )
        _require(ok, check, f"score {i} is {score!r}, expected a finite float or None")
    _require(any(s is not None for s in scores), check, "every score is None")
    _require(reward(prompts, completions, **fields) == scores, check, "two calls on the same batch differ")
    _require((prompts, completions, fields) == before, check, "the reward changed its inputs")
    empty = reward([], [], **{k: [] for k in fields})
    _require(empty == [], check, f"an empty batch gave {empty!r}, expected []")
    try:
        factory(**options, **{GARBAGE_OPTION: 1})
    except (TypeError, ValueError):  # SalesAIError is a ValueError
        pass
    else:
        raise AssertionError(f"{check}: an unknown option {GARBAGE_OPTION}=1 was accepted silently")
    return reward


def _tiny_env() -> Any:
    """A 4-state chain with one-hot observations and 2 actions (reward 1 at the right end)."""
    import gymnasium
    import numpy as np

    class Chain(gymnasium.Env):
        def __init__(self) -> None:
            self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
            self.action_space = gymnasium.spaces.Discrete(2)
            self.state = self.t = 0

        def _obs(self) -> Any:
            return np.eye(4, dtype=np.float32)[self.state]

        def reset(self, *, seed: Any = None, options: Any = None) -> Any:
            super().reset(seed=seed)
            self.state = self.t = 0
            return self._obs(), {}

        def step(self, action: Any) -> Any:
            self.t += 1
            self.state = min(self.state + 1, 3) if int(action) == 1 else max(self.state - 1, 0)
            done = self.state == 3
            return self._obs(), float(done), done, not done and self.t >= 8, {}

    return Chain()


def check_agent(factory: Callable[..., Any], steps: int = 64, **options: Any) -> Any:
    """Check an RL agent (the salesai-rl interface): `factory(observation_space, action_space,
    seed=0, **options)` with `default_options()`, `act`, `observe`, `save` and `load`.

    On a 4-state chain env (Box(4) one-hot observations, Discrete(2) actions), for `steps`
    steps: `default_options()` is a JSON-serialisable dict; every action is in the action
    space; `observe` returns a dict of finite floats; greedy `act(obs, explore=False)` is
    deterministic; two agents built with the same seed act identically; an unknown option
    raises (`SalesAIError`/`ValueError` or `TypeError`); `save(dir)` writes only `.json` and
    `.safetensors` files (nothing pickled) and `load(dir, observation_space, action_space)`
    (a classmethod of the agent's class) acts greedily like the saved agent. Returns the agent.
    """
    import json
    import math

    import numpy as np

    check = "check_agent"
    defaults: Any = getattr(factory, "default_options", None)
    _require(callable(defaults), check, "the agent class has no default_options() classmethod")
    opts = defaults()
    _require(isinstance(opts, dict), check, f"default_options() gave {type(opts).__name__}, expected dict")
    try:
        json.dumps(opts)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{check}: default_options() is not JSON-serialisable ({exc})") from None
    env = _tiny_env()
    space, actions = env.observation_space, env.action_space
    agent = factory(space, actions, seed=0, **options)
    twin = factory(space, actions, seed=0, **options)
    for name in ("act", "observe", "save"):
        _require(callable(getattr(agent, name, None)), check, f"the agent has no {name}() method")
    _require(callable(getattr(type(agent), "load", None)), check, "the agent class has no load() classmethod")
    obs, _ = env.reset(seed=0)
    for step in range(steps):
        action = agent.act(obs)
        _require(actions.contains(action), check, f"act() returned {action!r}, not in the action space")
        same = twin.act(obs) == action
        _require(same, check, f"two agents with seed 0 chose different actions at step {step}")
        nxt, reward, terminated, truncated, _ = env.step(action)
        info = agent.observe(obs, action, reward, nxt, terminated, truncated)
        twin.observe(obs, action, reward, nxt, terminated, truncated)
        _require(isinstance(info, dict), check, f"observe() returned {type(info).__name__}, expected a dict")
        bad = [k for k, v in info.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]
        _require(not bad, check, f"observe() returned non-finite or non-numeric metric(s) {bad}")
        obs = env.reset()[0] if terminated or truncated else nxt
    probes = [np.eye(4, dtype=np.float32)[i] for i in range(4)]
    greedy = [agent.act(p, explore=False) for p in probes]
    again = [agent.act(p, explore=False) for p in probes]
    _require(greedy == again, check, "greedy act() is not deterministic")
    try:
        factory(space, actions, seed=0, **options, **{GARBAGE_OPTION: 1})
    except (TypeError, ValueError):  # SalesAIError is a ValueError
        pass
    else:
        raise AssertionError(f"{check}: an unknown option {GARBAGE_OPTION}=1 was accepted silently")
    with tempfile.TemporaryDirectory() as tmp:
        agent.save(Path(tmp) / "agent")
        files = [p for p in (Path(tmp) / "agent").rglob("*") if p.is_file()]
        _require(files, check, "save() wrote no files")
        other = [p.name for p in files if p.suffix not in (".json", ".safetensors")]
        _require(not other, check, f"save() wrote {other}: only .json and .safetensors files are allowed")
        loaded = type(agent).load(Path(tmp) / "agent", space, actions)
    reloaded = [loaded.act(p, explore=False) for p in probes]
    _require(reloaded == greedy, check, f"the loaded agent acts {reloaded}, the saved one {greedy}")
    return agent
