"""Rewards: parsing `--reward` / `--reward-option`, registry lookup, weighted combination, errors."""

from __future__ import annotations

import math
from typing import Any

import pytest

import salesai
from salesai.errors import SalesAIError
from salesai.plugins import registry
from salesai.testing import check_reward, register_plugin
from salesai_rl.lm.rewards import build_rewards, parse_rewards, score

RECORDS = [
    {"prompt": "1+1=", "answer": "2", "_line": 1},
    {"prompt": "2+2=", "answer": "4", "_line": 2},
    {"prompt": "def f():", "answer": None, "_line": 3},
]


def test_parse_weights_and_options() -> None:
    specs = parse_rewards(["exact-match", "length-penalty:0.1", "regex:-2"],
                          ["length-penalty.target=3", 'regex.pattern=^\\d+$', "regex.mode=fullmatch"])
    expected = [("exact-match", 1.0), ("length-penalty", 0.1), ("regex", -2.0)]
    assert [(s.name, s.weight) for s in specs] == expected
    assert specs[1].options == {"target": 3}  # JSON where it parses
    assert specs[2].options == {"pattern": "^\\d+$", "mode": "fullmatch"}


@pytest.mark.parametrize(("rewards", "options", "message"), [
    ([], [], "at least one reward"),
    (["exact-match:x"], [], "NAME:WEIGHT with a number"),
    (["exact-match", "exact-match"], [], "given twice"),
    (["exact-match"], ["target=3"], "NAME.KEY=VALUE"),
    (["exact-match"], ["regex.pattern=a"], "no --reward 'regex'"),
])
def test_parse_errors(rewards: list[str], options: list[str], message: str) -> None:
    with pytest.raises(SalesAIError, match=message):
        parse_rewards(rewards, options)


def test_unknown_reward_lists_the_known_ones() -> None:
    with pytest.raises(SalesAIError, match=r"unknown reward 'exact'; known: exact-match \(salesai-core\)"):
        build_rewards(parse_rewards(["exact"]))


def test_bad_option_of_a_builtin() -> None:
    with pytest.raises(SalesAIError, match="reward 'length-penalty': unknown option"):
        build_rewards(parse_rewards(["length-penalty"], ["length-penalty.size=3"]))
    with pytest.raises(SalesAIError, match="'pattern' is required"):
        build_rewards(parse_rewards(["regex"]))


def test_builtin_values() -> None:
    get = registry("rewards").get
    assert get("exact-match")()(["q"] * 3, [" 2 ", "5", "x"], answer=["2", "4", None]) == [1.0, 0.0, None]
    assert get("exact-match")(first_line=True)(["q"], ["2\n3+3=6"], answer=["2"]) == [1.0]
    assert get("regex")(pattern=r"^\d+$")(["q", "q"], ["12", "1a"]) == [1.0, 0.0]
    assert get("python-syntax")()(["def f(x):", "def g("], ["\n    return x\n", "):"]) == [1.0, 0.0]
    assert get("length-penalty")(target=4)(["q"] * 3, ["abc", "abcdef", "a" * 20]) == [0.0, -0.5, -1.0]
    with pytest.raises(SalesAIError, match="no 'answer' field"):
        get("exact-match")()(["q"], ["1"])


def test_python_syntax_function_only_cuts_at_the_function_end() -> None:
    reward = registry("rewards").get("python-syntax")(function_only=True)
    prompt = "def f(x):\n"
    assert reward([prompt] * 3, ["    return x\nprint(1", "    return (x\n", ""]) == [1.0, 0.0, 0.0]


def test_held_out_signatures_prompt_set() -> None:
    from salesai_rl.lm.data import load_prompts

    records = load_prompts("held-out-signatures:3")
    assert len(records) == 3
    assert all("def " in r["prompt"] and r["prompt"].rstrip().endswith(('"""', ":")) for r in records)
    with pytest.raises(SalesAIError, match="held-out-signatures:N with N > 0"):
        load_prompts("held-out-signatures:x")


def test_weighted_combination_skips_none() -> None:
    specs = build_rewards(parse_rewards(["exact-match", "length-penalty:0.5"], ["length-penalty.target=1"]))
    totals, means = score(specs, RECORDS, ["2", "44", "pass"])
    assert totals[0] == pytest.approx(1.0)
    assert totals[1] == pytest.approx(0.0 + 0.5 * -1.0)
    assert totals[2] == pytest.approx(0.5 * -1.0)  # exact-match had no opinion (answer None)
    assert means == {"exact-match": pytest.approx(0.5), "length-penalty": pytest.approx(-2 / 3)}


def test_all_none_is_unscorable() -> None:
    totals, _ = score(build_rewards(parse_rewards(["exact-match"])), RECORDS[2:], ["x"])
    assert math.isnan(totals[0])


class Flaky:
    """A third-party reward plugin that raises on one record, and one that returns garbage."""

    @staticmethod
    @salesai.hookimpl
    def register_rewards(register: Any) -> None:
        register("fails-on-4", lambda **o: lambda p, c, **f: [1 / (a != "4") for a in f["answer"]])
        register("wrong-length", lambda **o: lambda p, c, **f: [1.0])
        register("bool-score", lambda **o: lambda p, c, **f: [True for _ in c])


def test_a_raising_reward_names_itself_and_the_record() -> None:
    with register_plugin(Flaky(), name="flaky"):
        specs = build_rewards(parse_rewards(["fails-on-4"]))
        message = r"reward 'fails-on-4' raised ZeroDivisionError: .* on tasks.jsonl:2 \(prompt '2\+2='\)"
        with pytest.raises(SalesAIError, match=message):
            score(specs, RECORDS[:2], ["2", "4"], source="tasks.jsonl")
        with pytest.raises(SalesAIError, match="reward 'wrong-length' returned 1 values for 2 completions"):
            score(build_rewards(parse_rewards(["wrong-length"])), RECORDS[:2], ["2", "4"])
        with pytest.raises(SalesAIError, match="returned True on prompts:1"):
            score(build_rewards(parse_rewards(["bool-score"])), RECORDS[:2], ["2", "4"])


def test_check_reward_catches_a_broken_reward() -> None:
    with pytest.raises(AssertionError, match="check_reward: returned 1 scores for 4 completions"):
        check_reward(lambda **o: lambda p, c, **f: [1.0])
    with pytest.raises(AssertionError, match="unknown option"):
        check_reward(lambda **o: lambda p, c, **f: [1.0] * len(c))
