"""Every registered expert, encoder, exporter, reward and agent passes the salesai.testing conformance checks.

Parametrised over the registries (timm style): a component is tested by being registered,
whichever distribution provides it. In the core's own test session that is the built-ins;
with plugins installed, theirs too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from salesai.plugins import registry
from salesai.testing import (
    ByteTokenizer,
    check_agent,
    check_encoder,
    check_expert,
    check_exporter,
    check_reward,
)

torch.set_num_threads(1)


def _names(kind: str) -> list[str]:
    return registry(kind).names()


@pytest.mark.parametrize("name", _names("experts"))
def test_expert_conforms(name: str) -> None:
    check_expert(registry("experts").get(name))


@pytest.mark.parametrize("name", _names("encoders"))
def test_encoder_conforms(name: str) -> None:
    check_encoder(registry("encoders").get(name))


@pytest.fixture(scope="module")
def tiny_model_and_tokenizer() -> tuple[torch.nn.Module, ByteTokenizer]:
    if importlib.util.find_spec("salesai.model.transformer") is None:
        pytest.skip("salesai.model.transformer (SalesAIModel) is not written yet")
    from salesai.model.config import ModelConfig
    from salesai.model.transformer import SalesAIModel

    tokenizer = ByteTokenizer()
    torch.manual_seed(0)
    model = SalesAIModel(ModelConfig.from_name("tiny", vocab_size=len(tokenizer)))
    return model.eval(), tokenizer


@pytest.mark.parametrize("name", _names("exporters"))
def test_exporter_conforms(
    name: str, tiny_model_and_tokenizer: tuple[torch.nn.Module, ByteTokenizer], tmp_path: Path
) -> None:
    model, tokenizer = tiny_model_and_tokenizer
    check_exporter(registry("exporters").get(name), model, tokenizer, tmp_path)


@pytest.mark.parametrize("name", _names("rewards"))
def test_reward_conforms(name: str) -> None:
    entry = registry("rewards").entry(name)
    check_reward(entry.factory, **entry.metadata.get("test_options", {}))


@pytest.mark.parametrize("name", _names("agents"))
def test_agent_conforms(name: str) -> None:
    pytest.importorskip("gymnasium", reason="the agent check runs a Gymnasium env")
    check_agent(registry("agents").get(name))
