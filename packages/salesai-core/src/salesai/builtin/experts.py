"""Built-in expert types: `swiglu` (default) and `gelu`."""

from __future__ import annotations

from typing import Any

from salesai.hookspecs import Register, hookimpl


def swiglu(hidden_dim: int, intermediate_dim: int) -> Any:
    """SwiGLU feed-forward (Llama/Mixtral): w2(silu(w1 x) * w3 x)."""
    from salesai.model.experts import SwiGLUExpert

    return SwiGLUExpert(hidden_dim, intermediate_dim)


def gelu(hidden_dim: int, intermediate_dim: int) -> Any:
    """Two-layer GELU MLP: w2(gelu(w1 x))."""
    from salesai.model.experts import GeluExpert

    return GeluExpert(hidden_dim, intermediate_dim)


@hookimpl
def register_experts(register: Register) -> None:
    register("swiglu", swiglu, description="SwiGLU feed-forward (Llama/Mixtral layout)")
    register("gelu", gelu, description="GELU MLP")
