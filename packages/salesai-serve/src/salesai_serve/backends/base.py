"""The backend interface the engine drives: a batch of rows, each a sequence with its own KV cache.

A backend holds the rows of the running batch in a stable order (row i = the engine's i-th
running sequence). The engine calls:

- `add(ids) -> logits (V,)`: prefill one new prompt alone and append it as the last row;
- `add_many(prompts) -> [logits (V,)]` (optional): prefill several text prompts in one forward
  (left-padded, masked) and append them as rows in order; all or nothing (on an error no row
  is added, and the engine falls back to `add` one by one so a bad prompt fails alone);
- `decode(tokens) -> logits (rows, V)`: one forward for every row, one new token each;
- `keep(indices)`: drop every other row (finished or cancelled), order preserved;
- `sampler(params, prompt_ids)`: a per-request sampler for this backend's logits.

Rows share one time axis: a new row is left-padded to the current length (or the others
are, when its prompt is longer); each row has its own positions and a key mask, so padding
never changes a row's maths. When the axis reaches the context length, rows are compacted
(their real positions moved right-aligned). A lone row with no padding computes exactly
what `SalesAIModel.generate` / `OrtGenerator` compute, so greedy output is identical.

Multimodal prompts: a backend whose `modalities` name more than text implements
`prepare_media(modality, raw_bytes) -> (item, positions)` (decode + preprocess; raises on
unreadable bytes, which the HTTP layer answers with a 400) and `add(ids, media={modality:
[items]})`, where each placeholder id of `ids` (`<image>`, `<audio>`) is replaced by its item's
`positions` embeddings, as `SalesAIModel.generate(ids, media=...)` does. Both backends implement
it (ONNX Runtime through the export's `encoder_<m>.onnx` graphs and `inputs_embeds`, torch-free).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SamplingParams:
    """Per-request generation settings (OpenAI names; top_k / repetition_penalty are extras)."""

    max_tokens: int = 16
    temperature: float = 1.0  # 0 = greedy
    top_p: float | None = None  # None or 1.0 = off
    top_k: int | None = None  # None or 0 = off
    repetition_penalty: float = 1.0  # CTRL penalty, 1.0 = off
    seed: int | None = None
    stop: list[str] = field(default_factory=list)  # stop strings, never included in the text
    ignore_eos: bool = False  # keep going after the end-of-sequence token
    logprobs: int | None = None  # None = off; k >= 0: report each token's logprob and the top k


class Sampler(Protocol):
    """Picks the next token of one row from its logits (V,); raises FloatingPointError on NaN/inf.
    `logprobs(logits, token, k)`: (log-softmax of the raw logits at `token`, top k (id, logprob))."""

    def __call__(self, logits: Any) -> int: ...

    def logprobs(self, logits: Any, token: int, k: int) -> tuple[float, list[tuple[int, float]]]: ...


class Backend(ABC):
    """A model runtime holding the running batch; see the module docstring."""

    name: str  # "pytorch", "onnxruntime", "onnxruntime-int8", "onnxruntime-q8", "onnxruntime-q4"
    max_seq_len: int  # context length (prompt + completion)
    vocab_size: int
    eos_id: int
    add_bos: bool  # prompts start with <s>, as `salesai generate` does
    tokenizer: Any  # encode(text, add_bos) / decode(ids) / token_to_id / bos_id / eos_id
    modalities: tuple[str, ...] = ("text",)

    @property
    @abstractmethod
    def rows(self) -> int:
        """Rows in the running batch."""

    @abstractmethod
    def add(self, ids: Sequence[int], media: dict[str, Any] | None = None) -> Any:
        """Prefill `ids` (with `media` for its placeholders) as a new last row; return its logits (V,)."""

    def add_many(self, prompts: Sequence[Sequence[int]]) -> list[Any]:
        """Prefill several text prompts together (see the module docstring); this default adds them one
        at a time, and the engine only calls an `add_many` a backend class overrides."""
        return [self.add(ids) for ids in prompts]

    def prepare_media(self, modality: str, data: bytes) -> tuple[Any, int]:
        """Decode one media item for `add`: (item, prompt positions it fills); see the module docstring."""
        raise ValueError(f"{modality} input is not supported by the {self.name} backend")

    @abstractmethod
    def decode(self, tokens: Sequence[int]) -> Any:
        """Feed one token per row; return next-token logits (rows, V)."""

    @abstractmethod
    def keep(self, indices: Sequence[int]) -> None:
        """Keep only rows `indices` (ascending), in that order."""

    @abstractmethod
    def sampler(self, params: SamplingParams, prompt_ids: Sequence[int], index: int = 0) -> Sampler:
        """A sampler for one sequence; `index` (choice number) offsets the seed."""

    def reset(self) -> None:
        """Drop every row (after a failed forward)."""
        self.keep([])

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "context_length": self.max_seq_len, "modalities": list(self.modalities)}


__all__ = ["Backend", "Sampler", "SamplingParams"]
