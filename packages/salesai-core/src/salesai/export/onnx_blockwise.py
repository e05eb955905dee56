"""Block-wise 8-bit / 4-bit decoders for ONNX Runtime: one MoE operator per layer, MatMulNBits.

What: the `q8` and `q4` quantisations of `salesai export --format onnx --quantize ...`.
1. `fused_moe_graph(model)`: while it is active, every MoE layer of SwiGLU experts exports as
   ONE `com.microsoft.MoE` node (router softmax, top-k, renormalisation and the k experts in
   one kernel) instead of the static loop over all experts (~100 small nodes per layer, which
   dominate a batch-1 decode step in ONNX Runtime). Its expert weights are stacked as the
   CPU kernel wants them: fc1 (E, 2 * I, D) with gate and up rows interleaved, fc2 (E, D, I).
   That fp32 graph is verified against PyTorch as strictly as `decoder.onnx`.
2. `quantize_blockwise(src, dst, bits)`: each MoE node becomes `com.microsoft.QMoE` with the
   expert weights quantised symmetrically in blocks of 32 along the input dimension (one fp32
   scale per block, as llama.cpp's q8_0 / q4_0), and every other MatMul except the routers
   (attention projections, output head) becomes `MatMulNBits` with the same blocks (ONNX
   Runtime's `MatMulNBitsQuantizer`). `accuracy_level=4` lets both kernels quantise the
   activations to int8 per block and use int8 dot products (VNNI), as q8_0 does. The routers
   stay fp32 so that quantisation does not flip expert choices on its own; the embedding
   Gather stays fp32 (one row is read per token).

References: ONNX Runtime contrib operators `MoE`, `QMoE`, `MatMulNBits` and
`onnxruntime.quantization.matmul_nbits_quantizer`; the onnxruntime-genai model builder, which
writes Mixtral-style models the same way; llama.cpp `ggml-quants.c` (`quantize_row_q8_0`).

What it is not: no GroupQueryAttention / fused RMSNorm rewrite (attention is still the traced
subgraph), no fp16 KV cache; experts other than SwiGLU (e.g. `gelu`) keep the static loop.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

BLOCK_SIZE = 32  # weights per scale, along the input (reduction) dimension; llama.cpp q8_0 uses 32
ACCURACY_LEVEL = 4  # int8 activations per block, int8 dot products (fp32 activations: 0, ~10x slower)
BLOCKWISE_CHOICES = {"q8": 8, "q4": 4}
MOE_DOMAIN = "com.microsoft"


_LIVE: dict[int, Any] = {}  # id -> MoE module being exported (cleared when fused_moe_graph ends)


class _MoEOp(torch.autograd.Function):
    """The routed experts of `moe` on PyTorch's side; one MoE node in ONNX (nothing inside is traced)."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, logits: torch.Tensor, fc1: torch.Tensor, fc1_bias: torch.Tensor,
                fc2: torch.Tensor, k: int, key: int) -> torch.Tensor:
        tracing: Any = torch._C
        state = tracing._get_tracing_state()
        tracing._set_tracing_state(None)  # the node is the MoE operator: record nothing inside
        try:
            _, weights, indices = _route(logits, k)
            return _LIVE[key]._dispatch_static(h, weights.to(h.dtype), indices)  # (N, D)
        finally:
            tracing._set_tracing_state(state)

    @staticmethod
    def symbolic(g: Any, h: Any, logits: Any, fc1: Any, fc1_bias: Any, fc2: Any, k: int, key: int) -> Any:
        out = g.op(f"{MOE_DOMAIN}::MoE", h, logits, fc1, fc1_bias, fc2, k_i=k, activation_type_s="swiglu",
                   swiglu_fusion_i=1, activation_alpha_f=1.0, activation_beta_f=0.0,
                   normalize_routing_weights_i=1)
        out.setType(h.type())  # (N, D) like the input: the exporter's shape inference knows no MoE
        return out


class FusedMoE(nn.Module):
    """Stands in for a `MoE` of SwiGLU experts while exporting: same output, one MoE node in the graph."""

    def __init__(self, moe: nn.Module) -> None:
        super().__init__()
        self.moe = moe
        experts: Any = moe.experts
        w1 = torch.stack([e.w1.weight for e in experts])  # (E, I, D) gate
        w3 = torch.stack([e.w3.weight for e in experts])  # (E, I, D) up
        e, i, d = w1.shape
        self.register_buffer("fc1", torch.stack((w1, w3), dim=2).reshape(e, 2 * i, d).detach().clone())
        fc2 = torch.stack([ex.w2.weight for ex in experts])  # (E, D, I)
        self.register_buffer("fc2", fc2.detach().clone())
        self.register_buffer("fc1_bias", torch.zeros(e, 2 * i))

    def forward(self, x: torch.Tensor, token_mask: Any = None, compute_aux: bool = False,
                static: bool = False) -> tuple[torch.Tensor, None, None]:
        moe: Any = self.moe
        shape = x.shape
        h = x.reshape(-1, shape[-1])  # (N, D)
        logits = moe.gate(h)  # (N, E) the router stays an ordinary MatMul
        _LIVE[id(moe)] = moe  # the tracer takes ints, not modules, as non-tensor arguments
        y = _MoEOp.apply(h, logits, self.fc1, self.fc1_bias, self.fc2, int(moe.top_k), id(moe))  # (N, D)
        if moe.shared_expert is not None:
            y = y + moe.shared_expert(h)
        return y.reshape(shape), None, None


def _route(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from salesai.model.moe import route

    return route(logits, k)


def can_fuse(model: nn.Module) -> bool:
    """True when every MoE layer has SwiGLU experts (what ONNX Runtime's CPU MoE kernel computes)."""
    from salesai.model.experts import SwiGLUExpert
    from salesai.model.moe import MoE

    moes = [m for m in model.modules() if isinstance(m, MoE)]
    return bool(moes) and all(isinstance(e, SwiGLUExpert) for m in moes for e in m.experts)


@contextlib.contextmanager
def fused_moe_graph(model: nn.Module) -> Iterator[int]:
    """Within the block, MoE layers export as `com.microsoft.MoE` nodes; yields how many were replaced."""
    layers: Any = getattr(model, "layers", [])
    swapped: list[tuple[Any, nn.Module]] = []
    if can_fuse(model):
        for layer in layers:
            if getattr(layer, "is_moe", False):
                swapped.append((layer, layer.mlp))
                layer.mlp = FusedMoE(layer.mlp)
    try:
        yield len(swapped)
    finally:
        for layer, moe in swapped:
            layer.mlp = moe
            _LIVE.pop(id(moe), None)


# ------------------------------------------------------------------------------- quantisation
def quantize_blocks(w: np.ndarray, bits: int, block: int = BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric block quantisation of w (..., N, K) along K.

    Returns (packed uint8 (..., N, K * bits / 8), fp32 scales (..., N, K / block)).

    Stored as unsigned with the implicit zero point 2**(bits-1) (ONNX Runtime's convention);
    4-bit values are packed two per byte, low nibble first.
    """
    *lead, n, k = w.shape
    if k % block:
        raise ValueError(f"input dimension {k} is not a multiple of the block size {block}")
    blocks = w.reshape(*lead, n, k // block, block).astype(np.float32)
    qmax = 2 ** (bits - 1) - 1
    scale = np.abs(blocks).max(-1) / qmax  # (..., N, K/block)
    safe = np.where(scale == 0, 1.0, scale)
    q = np.clip(np.rint(blocks / safe[..., None]), -qmax - 1, qmax).astype(np.int16) + 2 ** (bits - 1)
    q = q.reshape(*lead, n, k).astype(np.uint8)
    if bits == 4:
        q = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    return q, scale.astype(np.float32)


def _moe_to_qmoe(model: Any, bits: int, block: int, accuracy_level: int) -> int:
    """Rewrite every com.microsoft.MoE node of `model` (an onnx ModelProto) into QMoE, in place."""
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    count = 0
    for node in model.graph.node:
        if node.op_type != "MoE" or node.domain != MOE_DOMAIN:
            continue
        x, logits, fc1_name, _, fc2_name = list(node.input)[:5]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        new_inputs = [x, logits]
        for name in (fc1_name, fc2_name):
            q, scale = quantize_blocks(numpy_helper.to_array(inits[name]), bits, block)
            model.graph.initializer.remove(inits[name])
            model.graph.initializer.extend([numpy_helper.from_array(q, name + f"_q{bits}"),
                                            numpy_helper.from_array(scale, name + "_scales")])
            new_inputs += [name + f"_q{bits}", name + "_scales", ""]  # weights, scales, no bias
        del node.input[:]
        node.input.extend(new_inputs[:-1])
        del node.attribute[:]
        node.op_type = "QMoE"
        node.attribute.extend([
            helper.make_attribute("k", int(attrs["k"])),
            helper.make_attribute("activation_type", "swiglu"),
            helper.make_attribute("swiglu_fusion", 1),
            helper.make_attribute("activation_alpha", 1.0),
            helper.make_attribute("activation_beta", 0.0),
            helper.make_attribute("normalize_routing_weights", 1),
            helper.make_attribute("expert_weight_bits", bits),
            helper.make_attribute("block_size", block),
            helper.make_attribute("accuracy_level", accuracy_level),
        ])
        count += 1
    used = {name for n in model.graph.node for name in n.input}
    for t in [t for t in model.graph.initializer if t.name not in used]:  # the zero fc1 biases
        model.graph.initializer.remove(t)
    return count


def quantize_blockwise(src: Path, dst: Path, bits: int, block: int = BLOCK_SIZE,
                       accuracy_level: int = ACCURACY_LEVEL) -> dict[str, Any]:
    """`src` (a decoder graph, fused MoE or not) -> `dst` with block-wise `bits`-bit weights; a summary."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    model = onnx.load(str(src))
    moe_nodes = _moe_to_qmoe(model, bits, block, accuracy_level)
    routers = [n.name for n in model.graph.node if n.op_type == "MatMul" and "/mlp/gate/" in n.name]
    config = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, accuracy_level=accuracy_level,
                                          bits=bits, op_types_to_quantize=("MatMul",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)  # the quantiser logs every node at INFO/WARNING
        try:
            quantizer = MatMulNBitsQuantizer(model, bits=bits, block_size=block, is_symmetric=True,
                                             accuracy_level=accuracy_level, nodes_to_exclude=routers,
                                             algo_config=config)
            quantizer.process()
        finally:
            logging.disable(logging.NOTSET)
    # onnx.save, not the quantiser's own save: its topological sort rejects QMoE's empty optional inputs
    onnx.save_model(quantizer.model.model, str(dst))
    out = onnx.load(str(dst), load_external_data=False)
    ops = [n.op_type for n in out.graph.node]
    return {
        "method": "block-wise symmetric weights (com.microsoft QMoE + MatMulNBits)",
        "bits": bits, "block_size": block, "symmetric": True, "accuracy_level": accuracy_level,
        "moe_nodes": moe_nodes, "matmulnbits_nodes": ops.count("MatMulNBits"),
        "fp32_matmuls_left": ops.count("MatMul"), "kept_fp32": "routers (mlp.gate), embedding",
    }




FUSED_FILE = "decoder.fused.tmp.onnx"  # the fp32 graph with MoE operators; removed once quantised
_FUSED_CHECKS: dict[str, float] = {}  # fused graph path -> its verified max |logit diff| (this process)


def export_blockwise(src: nn.Module, graph: nn.Module, out: Path, variant: str, opset: int, verify: bool,
                     threads: int, external: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write `decoder.<variant>.onnx` into `out` (the export being built); (manifest graph entry, summary).

    The fused fp32 graph is exported once per export (FUSED_FILE, reused by q8 and q4; the caller
    removes it) and, with `verify`, must match PyTorch within the fp32 tolerance; the quantised
    graph's difference from PyTorch is reported, never failing (quantisation changes numbers).
    """
    from salesai.errors import SalesAIError
    from salesai.export import onnx as exp
    from salesai.export.onnx_verify import verify_decoder

    if variant not in BLOCKWISE_CHOICES:
        raise SalesAIError(f"--quantize {variant!r}: expected one of {', '.join(BLOCKWISE_CHOICES)}")
    if external:
        raise SalesAIError(f"--quantize {variant}: models over 1.5 GB of fp32 weights are not supported yet "
                           "by the block-wise path (use --quantize int8)")
    cfg: Any = getattr(src, "config", None)
    fused = out / FUSED_FILE
    fused_check: dict[str, Any] | None = None
    if can_fuse(src):
        if not fused.is_file():
            with fused_moe_graph(src):
                exp.export_decoder(exp.DecoderGraph(src).eval(), cfg, fused, opset)
            if verify:
                diff = verify_decoder(graph, cfg, fused, threads=threads)["max_abs_logit_diff"]
                if diff > exp.VERIFY_TOLERANCE:
                    raise SalesAIError(
                        f"ONNX verification of the fused-MoE graph failed: max |logit diff| {diff:.3g} "
                        f"exceeds {exp.VERIFY_TOLERANCE:g} (nothing was written)")
                _FUSED_CHECKS[str(fused)] = diff
        base = fused
        if str(fused) in _FUSED_CHECKS:
            fused_check = {"fused_fp32_max_abs_logit_diff": _FUSED_CHECKS[str(fused)]}
    else:
        base = out / exp.DECODER_FILE  # no MoE operator for these experts: MatMulNBits on the plain graph
    dst = out / f"decoder.{variant}.onnx"
    info = quantize_blockwise(base, dst, BLOCKWISE_CHOICES[variant])
    exp._check(dst)
    info.update(file=dst.name, fp32_bytes=(out / exp.DECODER_FILE).stat().st_size, bytes=dst.stat().st_size)
    if fused_check:
        info.update(fused_check)
    if verify:  # reported, never failing
        result = verify_decoder(graph, cfg, dst, threads=threads)
        info["verification"] = {"max_abs_logit_diff": result["max_abs_logit_diff"], "cases": result["cases"]}
    bits = BLOCKWISE_CHOICES[variant]
    entry = {"file": dst.name, "dtype": f"float32 ({bits}-bit block weights)", **exp.graph_io(dst)}
    return entry, info


__all__ = ["BLOCKWISE_CHOICES", "BLOCK_SIZE", "FUSED_FILE", "FusedMoE", "can_fuse", "export_blockwise",
           "fused_moe_graph", "quantize_blocks", "quantize_blockwise"]
