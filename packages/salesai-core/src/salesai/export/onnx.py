"""The `onnx` exporter: a decoder graph with an explicit KV cache, verified, optionally int8.

What: `export_onnx(model, tokenizer, out_dir, ...)` writes an export directory

    decoder.onnx        token ids (+ injected embeddings) + mask + positions + past K/V
                        -> logits + present K/V, dynamic batch / sequence / past axes
    decoder.int8.onnx   (with quantize="int8") ONNX Runtime dynamic int8 quantisation
    decoder.q8.onnx     (with quantize="q8") 8-bit weights in blocks of 32, one MoE operator per
                        layer (`salesai.export.onnx_blockwise`); decoder.q4.onnx the same at 4 bits;
                        several at once: quantize="int8,q8"
    encoder_<m>.onnx    per modality m of a multimodal model: preprocessed inputs (K, ...) ->
                        projected embeddings (K, N, hidden_dim), encoder + projector, dynamic K
                        (and encoder_<m>.int8.onnx with quantize="int8")
    tokenizer.model     the SentencePiece model, copied
    manifest.json       every graph's inputs/outputs (dtypes, symbolic shapes), special token
                        ids, model config, cache layout, opset, quantisation, verification

Graph inputs: `input_ids (B, T) int64`, `inputs_embeds (B, T, D) float32`, `embeds_mask
(B, T) bool` (where true, the given embedding replaces the token's: LLaVA placeholder
replacement, so one graph serves text and multimodal prefixes), `attention_mask (B, P+T)
int64` (1 = real token, covers past + current), `position_ids (B, T) int64`, `logits_to_keep
() int64` (k: logits of the last k positions only, 0 = all; a prefill needs 1), and per layer
`past_key_i` / `past_value_i (B, n_kv, P, head_dim)`; P may be 0. Outputs `logits (B, k, V)`
and `present_key_i` / `present_value_i (B, n_kv, P+T, head_dim)`. MoE routing (softmax,
top-k, a static loop over all experts) is inside the graph; `SalesAIModel` switches to that
export-safe path itself while tracing.

The directory appears atomically: everything is written to a temporary sibling and renamed
at the end, so a failure (including failed verification) leaves nothing half-written.
References: `torch.onnx.export`; ONNX Runtime `quantize_dynamic`; the
onnxruntime-genai / Optimum decoder input naming (`past_key_values` as explicit tensors).

What it is not: no fused attention / GQA contrib ops, no fp16; ORT generation lives in
`salesai.ort_runtime` (numpy only).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salesai.atomic import atomic_dir
from salesai.errors import SalesAIError
from salesai.ort_runtime import MANIFEST_FILENAME

# Which torch exporter writes the graph -- the one place this is decided. "torchscript" (the
# legacy tracer, dynamo=False) exports the tiny model in ~0.3 s and `base` in ~7 s, and emits
# every nn.Linear as MatMul, which ONNX Runtime's dynamic int8 quantisation covers. "dynamo"
# (torch.export) takes ~8 s / ~30 s, emits 2-D Linears as Gemm (not quantised dynamically)
# and decoded at the same speed in ONNX Runtime. Both pass verification with torch 2.13.
EXPORTER = "torchscript"
DEFAULT_OPSET = {"torchscript": 17, "dynamo": 18}
OPSET_RANGE = {"torchscript": (14, 20), "dynamo": (18, 23)}
VERIFY_TOLERANCE = 1e-4  # max |logit diff| allowed between PyTorch and ONNX Runtime (fp32)
QUANTIZE_CHOICES = ("int8", "q8", "q4")  # q8 / q4: block-wise, see salesai.export.onnx_blockwise
# int8 settings (see docs/export.md for the measurements behind them).
INT8_PER_CHANNEL = True
INT8_WEIGHT_TYPE = "QInt8"

DECODER_FILE = "decoder.onnx"
# ONNX files are protobufs, limited to 2 GB: above this many bytes of weights, tensors go to one
# external file beside the graph (`decoder.onnx.data`), as ONNX's external-data format allows.
EXTERNAL_DATA_BYTES = 1_500_000_000
DECODER_INT8_FILE = "decoder.int8.onnx"
TOKENIZER_FILE = "tokenizer.model"

# Symbolic axis names used in the graphs and the manifest.
AXES = {
    "batch": "number of sequences",
    "sequence": "new tokens in this call (prompt length for prefill, 1 for a decode step)",
    "past_sequence": "cached positions (0 on the first call)",
    "total_sequence": "past_sequence + sequence",
    "kept_sequence": "positions whose logits are returned: min(logits_to_keep, sequence), sequence when 0",
}


class DecoderGraph(nn.Module):
    """The exported function: flat tensors in, flat tensors out, around `model.decoder_forward`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        for attr in ("embed", "decoder_forward"):
            if not callable(getattr(model, attr, None)):
                raise SalesAIError(f"{type(model).__name__}: has no `{attr}` method; the onnx exporter "
                                   "needs a SalesAIModel (explicit-KV export path)")
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T) int64
        inputs_embeds: torch.Tensor,  # (B, T, D)
        embeds_mask: torch.Tensor,  # (B, T) bool
        attention_mask: torch.Tensor,  # (B, P + T) int64
        position_ids: torch.Tensor,  # (B, T) int64
        logits_to_keep: torch.Tensor,  # () int64: logits of the last k positions, 0 = all
        *past: torch.Tensor,  # key_0, value_0, key_1, ... each (B, n_kv, P, hd)
    ) -> tuple[torch.Tensor, ...]:
        tokens = self.model.embed(input_ids)  # type: ignore[operator]  # (B, T, D)
        x = torch.where(embeds_mask.unsqueeze(-1), inputs_embeds.to(tokens.dtype), tokens)  # (B, T, D)
        logits, keys, values = self.model.decoder_forward(  # type: ignore[operator]
            x, attention_mask, position_ids, list(past[0::2]), list(past[1::2]), logits_to_keep=logits_to_keep
        )
        out = [logits]
        for k, v in zip(keys, values, strict=True):
            out += [k, v]
        return tuple(out)


def input_names(num_layers: int) -> list[str]:
    past = [n for i in range(num_layers) for n in (f"past_key_{i}", f"past_value_{i}")]
    return ["input_ids", "inputs_embeds", "embeds_mask", "attention_mask", "position_ids", "logits_to_keep",
            *past]


def output_names(num_layers: int) -> list[str]:
    return ["logits", *(n for i in range(num_layers) for n in (f"present_key_{i}", f"present_value_{i}"))]


def example_inputs(cfg: Any, batch: int = 2, seq: int = 3, past: int = 4) -> tuple[torch.Tensor, ...]:
    """Trace-time inputs. Sizes differ from every verification case, so nothing shape-specific hides."""
    kv = (batch, cfg.num_kv_heads, past, cfg.head_dim)
    return (
        torch.randint(0, cfg.vocab_size, (batch, seq)),
        torch.zeros(batch, seq, cfg.hidden_dim),
        torch.zeros(batch, seq, dtype=torch.bool),
        torch.ones(batch, past + seq, dtype=torch.int64),
        torch.arange(past, past + seq).expand(batch, seq).contiguous(),
        torch.tensor(2, dtype=torch.int64),  # logits_to_keep: neither 0 nor 1 nor seq
        *(torch.zeros(kv) for _ in range(2 * cfg.num_layers)),
    )


def export_decoder(graph: DecoderGraph, cfg: Any, path: Path, opset: int, exporter: str = EXPORTER) -> None:
    """Write `graph` to `path` with dynamic batch / sequence / past axes."""
    ins, outs = input_names(cfg.num_layers), output_names(cfg.num_layers)
    args = example_inputs(cfg)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings and the legacy exporter's deprecation notice
        if exporter == "torchscript":
            axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in ins[:3]}
            axes["position_ids"] = {0: "batch", 1: "sequence"}
            axes["attention_mask"] = {0: "batch", 1: "total_sequence"}
            axes.update({n: {0: "batch", 2: "past_sequence"} for n in ins[6:]})
            axes["logits"] = {0: "batch", 1: "kept_sequence"}
            axes.update({n: {0: "batch", 2: "total_sequence"} for n in outs[1:]})
            torch.onnx.export(graph, args, str(path), dynamo=False, input_names=ins, output_names=outs,
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
        elif exporter == "dynamo":
            from torch.export import Dim

            b, s, p = Dim("batch"), Dim("sequence"), Dim("past_sequence", min=0)
            bs = {0: b, 1: s}
            shapes = {"input_ids": bs, "inputs_embeds": bs, "embeds_mask": bs,
                      "attention_mask": {0: b, 1: Dim.AUTO}, "position_ids": bs, "logits_to_keep": None,
                      "past": tuple({0: b, 2: p} for _ in range(2 * cfg.num_layers))}
            torch.onnx.export(graph, args, str(path), dynamo=True, dynamic_shapes=shapes, input_names=ins,
                              output_names=outs, opset_version=opset, external_data=False, optimize=True)
        else:
            raise SalesAIError(f"exporter={exporter!r}: expected 'torchscript' or 'dynamo'")


def graph_io(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs of an ONNX graph: name, numpy dtype name, shape (ints or axis names)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)

    def describe(v: Any) -> dict[str, Any]:
        t = v.type.tensor_type
        shape = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
        return {"name": v.name, "dtype": str(helper.tensor_dtype_to_np_dtype(t.elem_type)), "shape": shape}

    return {"inputs": [describe(v) for v in model.graph.input],
            "outputs": [describe(v) for v in model.graph.output]}


def externalize(path: Path) -> str:
    """Move every initializer of `path` into one `<file>.data` beside it; remove stray tensor files.

    The TorchScript exporter writes one file per tensor for models over 2 GB; this gathers them.
    Returns the data file's name."""
    import onnx

    model = onnx.load(str(path))  # reads any external tensors too
    data = path.name + ".data"
    keep = {path.name, data}
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data, size_threshold=1024)
    for stray in path.parent.iterdir():
        if stray.name not in keep and stray.is_file() and stray.suffix != ".onnx":
            stray.unlink()
    return data


def quantize_int8(src: Path, dst: Path, external: bool = False) -> None:
    """ONNX Runtime dynamic quantisation: int8 weights for every MatMul/Gather, activations at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)  # its root-logger advice to run shape pre-processing
        try:
            quantize_dynamic(str(src), str(dst), per_channel=INT8_PER_CHANNEL,
                             weight_type=getattr(QuantType, INT8_WEIGHT_TYPE),
                             op_types_to_quantize=["MatMul", "Gather"], use_external_data_format=external)
        finally:
            logging.disable(logging.NOTSET)


def _tokenizer_info(tokenizer: Any, cfg: Any) -> dict[str, Any]:
    special = {"pad": cfg.pad_token_id, "bos": cfg.bos_token_id, "eos": cfg.eos_token_id, "unk": 1}
    placeholders: dict[str, int] = {}
    if cfg.image_token_id is not None:
        placeholders["<image>"] = cfg.image_token_id
    if cfg.audio_token_id is not None:
        placeholders["<audio>"] = cfg.audio_token_id
    info: dict[str, Any] = {"file": None, "vocab_size": cfg.vocab_size, "add_bos": True}
    if tokenizer is not None:
        special = {"pad": tokenizer.pad_id, "bos": tokenizer.bos_id, "eos": tokenizer.eos_id,
                   "unk": tokenizer.unk_id}
        for token in ("<image>", "<audio>"):
            with contextlib.suppress(KeyError):
                placeholders.setdefault(token, int(tokenizer.token_to_id(token)))
        info.update(file=TOKENIZER_FILE, vocab_size=len(tokenizer),
                    all_special_tokens=dict(getattr(tokenizer, "special_tokens", {})))
    info["special_tokens"] = special
    info["placeholders"] = placeholders
    return info


def _prepare_target(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise SalesAIError(f"{out_dir}: exists and is not a directory; expected a new export directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise SalesAIError(f"{out_dir}: directory exists and is not empty; pass --force to replace it")


def export_onnx(
    model: nn.Module,
    tokenizer: Any,
    out_dir: str | Path,
    opset: int | None = None,
    quantize: str | None = None,
    verify: bool = True,
    force: bool = False,
    exporter: str = EXPORTER,
    threads: int = 1,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> Path:
    """Export `model` (+ `tokenizer`) to `out_dir` as described in the module docstring; return `out_dir`.

    `opset`: ONNX opset (default 17); `quantize`: None, "int8", "q8", "q4" or several joined by
    commas ("int8,q8"); `verify`: compare with PyTorch
    (fails above 1e-4 in fp32); `force`: replace a non-empty `out_dir`; `threads`: ORT threads
    for verification; `progress`: called with a short message before each stage.
    """
    if options:
        raise SalesAIError(f"onnx exporter: unknown option(s) {', '.join(sorted(options))}; known: "
                           "opset, quantize, verify, force, exporter, threads")
    if exporter not in OPSET_RANGE:
        raise SalesAIError(f"exporter={exporter!r}: expected one of {', '.join(OPSET_RANGE)}")
    lo, hi = OPSET_RANGE[exporter]
    opset = DEFAULT_OPSET[exporter] if opset is None else int(opset)
    if not lo <= opset <= hi:
        raise SalesAIError(f"--opset {opset}: expected {lo}..{hi} for the {exporter} exporter")
    variants = quantize_variants(quantize)
    out_dir = Path(out_dir)
    _prepare_target(out_dir, force)
    cfg: Any = model.config
    say = progress or (lambda _msg: None)

    was_training = model.training
    try:
        with atomic_dir(out_dir) as tmp:
            timings: dict[str, float] = {}
            first = next(model.parameters())
            on_cpu_fp32 = first.dtype == torch.float32 and first.device.type == "cpu"
            src = model if on_cpu_fp32 else copy.deepcopy(model).float().cpu()  # export runs on CPU in fp32
            src.eval()
            graph = DecoderGraph(src).eval()

            say(f"exporting decoder ({exporter}, opset {opset})")
            t0 = time.perf_counter()
            export_decoder(graph, cfg, tmp / DECODER_FILE, opset, exporter)
            external = sum(p.numel() * 4 for p in src.parameters()) > EXTERNAL_DATA_BYTES
            graphs: dict[str, Any] = {"decoder": {"file": DECODER_FILE, "dtype": "float32"}}
            if external or len(list(tmp.iterdir())) > 1:
                graphs["decoder"]["external_data"] = externalize(tmp / DECODER_FILE)
                external = True
            timings["export_s"] = round(time.perf_counter() - t0, 3)
            _check(tmp / DECODER_FILE)
            graphs["decoder"].update(graph_io(tmp / DECODER_FILE))
            if getattr(src, "encoders", None):
                say("exporting modality encoders")
            encoders = _export_encoders(src, tmp, opset)

            verification: dict[str, Any] = {"performed": False}
            if verify:
                from salesai.export.onnx_verify import verify_decoder

                say("verifying against PyTorch with ONNX Runtime")
                t0 = time.perf_counter()
                result = verify_decoder(graph, cfg, tmp / DECODER_FILE, threads=threads)
                timings["verify_s"] = round(time.perf_counter() - t0, 3)
                if encoders:  # a multimodal prefill: ORT encoder graphs + decoder vs PyTorch forward
                    from salesai.export.onnx_verify import verify_multimodal

                    mm = verify_multimodal(src, tmp, encoders, threads=threads)
                    result["multimodal_prefill"] = mm
                    result["max_abs_logit_diff"] = max(result["max_abs_logit_diff"], mm["max_abs_logit_diff"])
                verification = {"performed": True, "tolerance": VERIFY_TOLERANCE, **result,
                                "passed": result["max_abs_logit_diff"] <= VERIFY_TOLERANCE}
                if not verification["passed"]:
                    raise SalesAIError(
                        f"ONNX verification failed: max |logit diff| {result['max_abs_logit_diff']:.3g} "
                        f"between PyTorch and ONNX Runtime exceeds {VERIFY_TOLERANCE:g} (nothing was written)"
                    )

            quantization: dict[str, Any] | None = None
            if "int8" in variants:
                from salesai.export.onnx_verify import int8_weight_share, verify_decoder

                say("quantising to int8 (ONNX Runtime dynamic quantisation)")
                t0 = time.perf_counter()
                quantize_int8(tmp / DECODER_FILE, tmp / DECODER_INT8_FILE, external=external)
                timings["quantize_s"] = round(time.perf_counter() - t0, 3)
                _check(tmp / DECODER_INT8_FILE)
                graphs["decoder_int8"] = {"file": DECODER_INT8_FILE, "dtype": "float32 (int8 weights)",
                                          **graph_io(tmp / DECODER_INT8_FILE)}
                if (tmp / (DECODER_INT8_FILE + ".data")).is_file():
                    graphs["decoder_int8"]["external_data"] = DECODER_INT8_FILE + ".data"
                quantization = {
                    "method": "onnxruntime.quantization.quantize_dynamic",
                    "weight_type": INT8_WEIGHT_TYPE, "per_channel": INT8_PER_CHANNEL,
                    "op_types": ["MatMul", "Gather"], "file": DECODER_INT8_FILE,
                    "fp32_bytes": (tmp / DECODER_FILE).stat().st_size,
                    "int8_bytes": (tmp / DECODER_INT8_FILE).stat().st_size,
                    "weights": int8_weight_share(tmp / DECODER_FILE, tmp / DECODER_INT8_FILE),
                }
                for modality, entry in encoders.items():  # int8 covers the encoder weights too
                    int8_file = tmp / encoder_file(modality, int8=True)
                    quantize_int8(tmp / entry["file"], int8_file)
                    _check(int8_file)
                    entry["int8_file"] = int8_file.name
                    quantization.setdefault("encoders", {})[modality] = {
                        "file": int8_file.name, "fp32_bytes": (tmp / entry["file"]).stat().st_size,
                        "int8_bytes": int8_file.stat().st_size,
                        "weights": int8_weight_share(tmp / entry["file"], int8_file)}
                if verify:  # reported, never failing: int8 changes the numbers by design
                    result = verify_decoder(graph, cfg, tmp / DECODER_INT8_FILE, threads=threads)
                    quantization["verification"] = {"max_abs_logit_diff": result["max_abs_logit_diff"],
                                                     "cases": result["cases"]}
                    if encoders:
                        from salesai.export.onnx_verify import verify_multimodal

                        mm = verify_multimodal(src, tmp, encoders, threads=threads, int8=True)
                        quantization["verification"]["multimodal_prefill"] = mm

            quantizations: dict[str, Any] = {"int8": quantization} if quantization else {}
            for variant in (v for v in variants if v != "int8"):
                from salesai.export.onnx_blockwise import export_blockwise

                say(f"quantising to {variant} (block-wise weights, one MoE operator per layer)")
                t0 = time.perf_counter()
                graphs[f"decoder_{variant}"], quantizations[variant] = export_blockwise(
                    src, graph, tmp, variant, opset, verify, threads, external)
                timings[f"quantize_{variant}_s"] = round(time.perf_counter() - t0, 3)
            (tmp / "decoder.fused.tmp.onnx").unlink(missing_ok=True)  # onnx_blockwise.FUSED_FILE

            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            if quantization is None and quantizations:
                quantization = next(iter(quantizations.values()))
            manifest = _manifest(cfg, tokenizer, graphs, encoders, exporter, opset, quantization,
                                 verification, timings)
            manifest["quantizations"] = quantizations
            (tmp / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    finally:
        model.train(was_training)
    return out_dir


def quantize_variants(quantize: Any) -> list[str]:
    """None / "int8" / "q8,int8" / ["q8", "q4"] -> the list of quantised decoders to write."""
    if quantize is None or quantize == "":
        return []
    items = quantize.split(",") if isinstance(quantize, str) else list(quantize)
    names = [str(i).strip() for i in items if str(i).strip()]
    bad = [n for n in names if n not in QUANTIZE_CHOICES]
    if bad or not names:
        raise SalesAIError(f"--quantize {quantize!r}: expected one of {', '.join(QUANTIZE_CHOICES)} "
                           "(or several joined by commas)")
    return list(dict.fromkeys(names))


def _check(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise SalesAIError(f"{path.name}: ONNX checker failed: {str(exc).splitlines()[0]}") from None


class EncoderGraph(nn.Module):
    """One modality's encoder and projector: preprocessed inputs (K, ...) -> embeddings (K, N, D)."""

    def __init__(self, encoder: nn.Module, projector: nn.Module) -> None:
        super().__init__()
        self.encoder, self.projector = encoder, projector

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(inputs))


def encoder_file(modality: str, int8: bool = False) -> str:
    return f"encoder_{modality}.int8.onnx" if int8 else f"encoder_{modality}.onnx"


def _export_encoders(model: nn.Module, out: Path, opset: int) -> dict[str, Any]:
    """Each modality encoder (with its projector) as its own graph; the manifest's `encoders` entries."""
    encoders = getattr(model, "encoders", None)
    if not encoders:
        return {}
    cfg: Any = model.config
    entries: dict[str, Any] = {}
    for modality, encoder in encoders.items():
        projectors: Any = model.projectors
        graph = EncoderGraph(encoder, projectors[modality]).eval()
        example = encoder.example_input()
        example = torch.cat([example, example], dim=0)  # trace with 2 items: the batch axis stays symbolic
        path = out / encoder_file(modality)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            tokens = graph(example).shape[1]
            torch.onnx.export(graph, (example,), str(path), dynamo=False, input_names=["inputs"],
                              output_names=["embeddings"], opset_version=opset, do_constant_folding=True,
                              dynamic_axes={"inputs": {0: "items"}, "embeddings": {0: "items", 1: "tokens"}})
        _check(path)
        entries[modality] = {
            "file": path.name, "type": cfg.encoders[modality]["type"],
            "placeholder": f"<{modality}>", "placeholder_id": cfg.placeholder_id(modality),
            "tokens_per_input": int(tokens), "options": cfg.encoder_options(modality),
            "projector": cfg.encoders[modality].get("projector", "mlp2x_gelu"),
            "preprocess_spec": encoder.preprocess_spec(), **graph_io(path),
        }
    return entries


def _manifest(cfg: Any, tokenizer: Any, graphs: dict[str, Any], encoders: dict[str, Any], exporter: str,
              opset: int, quantization: dict[str, Any] | None, verification: dict[str, Any],
              timings: dict[str, float]) -> dict[str, Any]:
    import onnx
    import onnxruntime

    from salesai import __version__

    tok = _tokenizer_info(tokenizer, cfg)
    return {
        "format": "salesai-onnx",
        "format_version": 1,
        "salesai_version": __version__,
        "exporter": {"name": exporter, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
        "opset": opset,
        "graphs": graphs,
        "encoders": encoders,
        "axes": AXES,
        "decoder": {
            "num_layers": cfg.num_layers, "num_kv_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim,
            "hidden_dim": cfg.hidden_dim, "vocab_size": cfg.vocab_size, "max_seq_len": cfg.max_seq_len,
            "past_inputs": "past_key_{i} / past_value_{i}, i = 0..num_layers-1, (batch, num_kv_heads, "
                           "past_sequence, head_dim) float32; zero-length on the first call",
            "present_outputs": "present_key_{i} / present_value_{i}: feed back as the next call's past",
            "attention_mask": "int64 (batch, total_sequence): 1 = real token, 0 = left padding",
            "position_ids": "int64 (batch, sequence): max(cumsum(attention_mask) - 1, 0), current positions",
            "logits_to_keep": "int64 scalar k: logits only for the last k positions, (batch, k, vocab); "
                              "0 = every position; generation passes 1 (a prefill computes one row)",
            "inputs_embeds": "float32 (batch, sequence, hidden_dim): used where embeds_mask is true "
                             "(placeholder replacement); zeros with an all-false mask for text",
            "multimodal": "expand each placeholder token to the N outputs of encoder_<m>.onnx for its "
                          "input (N copies of the placeholder id), feed those embeddings as inputs_embeds "
                          "with embeds_mask true there (encoders.<m>.preprocess_spec says how inputs "
                          "are prepared)",
        },
        "special_tokens": tok["special_tokens"],
        "placeholders": tok["placeholders"],
        "tokenizer": tok,
        "generation": {"stop_token_ids": [tok["special_tokens"]["eos"]], "add_bos": True,
                       "padding_side": "left"},
        "model_config": cfg.to_dict(),
        "quantization": quantization,
        "verification": verification,
        "timings": timings,
    }


__all__ = ["EXPORTER", "DecoderGraph", "EncoderGraph", "encoder_file", "export_decoder", "export_onnx",
           "graph_io", "quantize_int8"]
