"""pytest plugin (entry point `pytest11`): the salesai fixtures, available to plugin authors.

- `salesai_plugin`: a function `register(plugin, **kwargs) -> PluginInfo` that registers
  plugin objects until the end of the test (see `salesai.testing.register_plugin`);
- `byte_tokenizer`: a `salesai.testing.ByteTokenizer`.

Loaded by every pytest run in an environment with salesai-core, so it imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from salesai.testing.host import register_plugin
from salesai.testing.tokenizer import ByteTokenizer


@pytest.fixture
def salesai_plugin() -> Iterator[Callable[..., Any]]:
    """Register plugin objects for one test: `salesai_plugin(obj, name=..., check=True)`."""
    with ExitStack() as stack:

        def register(plugin: object, **kwargs: Any) -> Any:
            return stack.enter_context(register_plugin(plugin, **kwargs))

        yield register


@pytest.fixture
def byte_tokenizer() -> ByteTokenizer:
    """A byte-level tokenizer with the `salesai.Tokenizer` interface (267 ids)."""
    return ByteTokenizer()
