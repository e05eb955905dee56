"""Built-in LM RL rewards: `exact-match`, `regex`, `python-syntax`, `length-penalty`.

A reward factory takes options and returns the reward, a batched callable
`reward(prompts, completions, **fields) -> list[float | None]`: one score per completion,
`fields` being the other columns of the prompt records (one list entry per completion, as
TRL passes dataset columns), None where the reward has nothing to say about a completion.
Used by `salesai rl grpo --reward NAME` (salesai-rl); checked by `salesai.testing.check_reward`.
Pure Python: nothing here imports torch.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from typing import Any

from salesai.errors import SalesAIError
from salesai.hookspecs import Register, hookimpl

Reward = Callable[..., list[float | None]]


def _check_options(name: str, given: dict[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        known = ", ".join(allowed) or "none"
        raise SalesAIError(f"reward {name!r}: unknown option(s) {', '.join(unknown)}; known: {known}")


def _column(name: str, fields: dict[str, Any], key: str, n: int) -> list[Any]:
    if key not in fields:
        have = ", ".join(sorted(fields)) or "none"
        raise SalesAIError(f"reward {name!r}: the records have no {key!r} field (fields: {have})")
    values = list(fields[key])
    if len(values) != n:
        raise SalesAIError(f"reward {name!r}: field {key!r} has {len(values)} values for {n} completions")
    return values


def exact_match(**options: Any) -> Reward:
    """1.0 where the completion equals the record's answer (both stripped), else 0.0.

    Options: `field` (default "answer"), `first_line` (compare only the completion's first
    line, default false), `ignore_case` (default false). A record whose answer is None gets None.
    """
    _check_options("exact-match", options, ("field", "first_line", "ignore_case"))
    field = str(options.get("field", "answer"))
    first_line = bool(options.get("first_line", False))
    ignore_case = bool(options.get("ignore_case", False))

    def norm(text: str) -> str:
        text = text.strip()
        if first_line:
            text = text.split("\n", 1)[0].strip()
        return text.lower() if ignore_case else text

    def reward(prompts: Sequence[str], completions: Sequence[str], **fields: Any) -> list[float | None]:
        answers = _column("exact-match", fields, field, len(completions))
        pairs = zip(completions, answers, strict=True)
        return [None if a is None else float(norm(c) == norm(str(a))) for c, a in pairs]

    return reward


def regex(**options: Any) -> Reward:
    """1.0 where the completion matches `pattern` (required), else 0.0.

    Options: `pattern` (a Python regular expression), `mode` ("search", the default, or "fullmatch").
    """
    _check_options("regex", options, ("pattern", "mode"))
    if "pattern" not in options:
        raise SalesAIError("reward 'regex': the option 'pattern' is required (a regular expression)")
    mode = str(options.get("mode", "search"))
    if mode not in ("search", "fullmatch"):
        raise SalesAIError(f"reward 'regex': mode {mode!r}; expected search or fullmatch")
    try:
        compiled = re.compile(str(options["pattern"]))
    except re.error as exc:
        raise SalesAIError(f"reward 'regex': pattern {options['pattern']!r} is invalid ({exc})") from None
    match = compiled.search if mode == "search" else compiled.fullmatch

    def reward(prompts: Sequence[str], completions: Sequence[str], **fields: Any) -> list[float | None]:
        return [float(match(c) is not None) for c in completions]

    return reward


def python_syntax(**options: Any) -> Reward:
    """1.0 where the prompt + completion parses as Python (`ast.parse`), else 0.0.

    Options: `with_prompt` (parse prompt + completion, the default, or the completion alone);
    `function_only` (default false): the prompt is a `def` header, and only the function is
    kept, up to its first dedented line (as `salesai quickstart` scores its samples); an empty
    body scores 0.
    """
    _check_options("python-syntax", options, ("with_prompt", "function_only"))
    with_prompt = bool(options.get("with_prompt", True))
    function_only = bool(options.get("function_only", False))

    def parses(source: str) -> bool:
        try:
            ast.parse(source)
        except (SyntaxError, ValueError):  # ValueError: null bytes
            return False
        return True

    def function(prompt: str, completion: str) -> float:
        from salesai.quickstart import cut_function

        code = cut_function(prompt, completion, finished=False)
        body = code[len(prompt):] if code.startswith(prompt) else completion
        return float(bool(body.strip()) and parses(code))

    def reward(prompts: Sequence[str], completions: Sequence[str], **fields: Any) -> list[float | None]:
        pairs = zip(prompts, completions, strict=True)
        if function_only:
            return [function(p, c) for p, c in pairs]
        return [float(parses(p + c if with_prompt else c)) for p, c in pairs]

    return reward


def length_penalty(**options: Any) -> Reward:
    """-min(1, max(0, len - target) / target) per completion, in characters: 0 up to `target`.

    Options: `target` (characters allowed without penalty, default 200). Meant to be combined
    with another reward at a small weight.
    """
    _check_options("length-penalty", options, ("target",))
    target = int(options.get("target", 200))
    if target <= 0:
        raise SalesAIError(f"reward 'length-penalty': target {target}; expected a positive character count")

    def reward(prompts: Sequence[str], completions: Sequence[str], **fields: Any) -> list[float | None]:
        return [-min(1.0, max(0, len(c) - target) / target) for c in completions]

    return reward


@hookimpl
def register_rewards(register: Register) -> None:
    register("exact-match", exact_match, description="1 if the completion equals the record's answer",
             options={"field": "answer", "first_line": "false", "ignore_case": "false"})
    register("regex", regex, description="1 if the completion matches a regular expression",
             options={"pattern": "required", "mode": "search | fullmatch"}, test_options={"pattern": r"\d+"})
    register("python-syntax", python_syntax, description="1 if prompt + completion parses as Python",
             options={"with_prompt": "true", "function_only": "false"})
    register("length-penalty", length_penalty, description="0 up to `target` characters, down to -1 beyond",
             options={"target": "200"})
