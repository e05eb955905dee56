"""Tests for the example plugin, written as a plugin author would, with salesai.testing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import salesai_example
from salesai.errors import SalesAIError
from salesai.plugins import registry
from salesai.testing import ByteTokenizer, check_expert, check_exporter, run_cli
from salesai_example.plugin import relu2, summary


def test_installed_and_registered() -> None:
    result = run_cli(["plugins", "--json"])
    (info,) = [i for i in json.loads(result.stdout) if i["distribution"] == "salesai-example"]
    assert info["version"] == salesai_example.__version__
    assert info["registered"] == {"experts": ["relu2"], "exporters": ["summary"], "commands": ["hello"]}
    assert info["error"] is None


def test_relu2_expert_conforms() -> None:
    assert registry("experts").get("relu2") is relu2
    expert = check_expert(relu2, hidden_dim=8, intermediate_dim=32)
    x = torch.tensor([[1.0, -1.0] + [0.0] * 6])
    expected = expert.w2(torch.relu(expert.w1(x)) ** 2)
    torch.testing.assert_close(expert(x), expected)


def test_summary_exporter_conforms(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Embedding(267, 4), nn.Linear(4, 267, bias=False))
    path = check_exporter(summary, model, ByteTokenizer(), tmp_path)
    doc = json.loads(path.read_text())
    assert path.name == "summary.json"
    assert doc["total_parameters"] == doc["trainable_parameters"] == 2 * 267 * 4
    assert doc["modules"] == {"0": 267 * 4, "1": 267 * 4}
    assert doc["vocab_size"] == 267


def test_summary_exporter_refuses_bad_options(tmp_path: Path) -> None:
    with pytest.raises(
        SalesAIError, match="unknown option\\(s\\) for the summary exporter: compress; expected: indent"
    ):
        summary(nn.Linear(2, 2), ByteTokenizer(), tmp_path, compress=True)
    with pytest.raises(SalesAIError, match="indent=-1"):
        summary(nn.Linear(2, 2), ByteTokenizer(), tmp_path, indent=-1)


def test_hello_command() -> None:
    result = run_cli(["hello", "plugin author"])
    assert result.exit_code == 0
    assert result.stdout.startswith("Hello, plugin author! Expert types available: ")
    assert "relu2" in result.stdout
    doc = json.loads(run_cli(["hello", "--json"]).stdout)
    assert doc["greeting"] == "Hello, world!" and "relu2" in doc["experts"]
