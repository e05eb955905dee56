"""Validation of generation options, shared by the PyTorch and ONNX Runtime engines.

Torch-free on purpose: the ONNX Runtime path (`salesai.ort_runtime`) must not import torch.
"""

from __future__ import annotations

from salesai.errors import SalesAIError


def check_sampling(width: int, limit: int, max_new_tokens: int, temperature: float, top_k: int | None,
                   top_p: float | None, repetition_penalty: float) -> None:
    """Raise a one-line SalesAIError for an option out of range.

    width: prompt length (left-padded batch width); limit: the model's max_seq_len.
    """
    if max_new_tokens < 0:
        raise SalesAIError(f"max_new_tokens={max_new_tokens} must be >= 0")
    if width + max_new_tokens > limit:
        raise SalesAIError(f"prompt ({width} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
                           f"model's max_seq_len ({limit})")
    if temperature < 0:
        raise SalesAIError(f"temperature={temperature} must be >= 0 (0 = greedy)")
    if top_k is not None and top_k < 0:
        raise SalesAIError(f"top_k={top_k} must be >= 0 (0 or None = off)")
    if top_p is not None and not 0 < top_p <= 1:
        raise SalesAIError(f"top_p={top_p} must be in (0, 1]")
    if repetition_penalty <= 0:
        raise SalesAIError(f"repetition_penalty={repetition_penalty} must be > 0 (1.0 = off)")
