"""Checks of an exported decoder graph: PyTorch-vs-ONNX Runtime parity and int8 coverage.

What: `verify_decoder` runs the same random inputs through the PyTorch export wrapper and an
ONNX Runtime session, in three cases that together cover what generation needs:
  1. prefill, batch 2, one row left-padded, injected embeddings on a few positions, past 0;
  2. a decode step (one token) on each side's own cache from case 1;
  3. a different batch size (3) and a random cache of length 5 with a 2-token chunk;
plus the prefill of case 1 with `logits_to_keep=1`, whose one row of logits must match the
last position's (the graph computes nothing else).
It reports the max absolute logit difference (over real, non-padded positions) and the max
present-cache difference per case. `verify_multimodal` checks a multimodal prefill end to end:
each `encoder_<m>.onnx` against PyTorch's encoder + projector, then two left-padded prompts
with placeholders expanded and filled from the ORT embeddings through the decoder graph,
against `SalesAIModel` splicing the same inputs. `int8_weight_share` measures how many 2-D weight values
of a quantised graph ended up int8. References: ONNX Runtime `InferenceSession`,
`onnxruntime.quantization`.

What it is not: no tolerance policy here; `salesai.export.onnx` decides what fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from salesai.ort_runtime import positions, session_options


def _random_case(
    cfg: Any, gen: torch.Generator, batch: int, seq: int, past: int, pad_rows: dict[int, int],
    embed_positions: list[tuple[int, int]],
) -> dict[str, torch.Tensor]:
    """Feeds for one case: random ids, left padding in `pad_rows` {row: n_pad}, random cache."""
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=gen)
    mask = torch.ones(batch, past + seq, dtype=torch.int64)
    for row, n in pad_rows.items():
        mask[row, past:past + n] = 0
        ids[row, :n] = cfg.pad_token_id
    pos = torch.from_numpy(positions(mask.numpy()))[:, past:]
    embeds = torch.zeros(batch, seq, cfg.hidden_dim)
    emask = torch.zeros(batch, seq, dtype=torch.bool)
    for row, t in embed_positions:
        embeds[row, t] = torch.randn(cfg.hidden_dim, generator=gen) * 0.5
        emask[row, t] = True
    feeds = {"input_ids": ids, "inputs_embeds": embeds, "embeds_mask": emask,
             "attention_mask": mask, "position_ids": pos, "logits_to_keep": torch.tensor(0)}
    shape = (batch, cfg.num_kv_heads, past, cfg.head_dim)
    for i in range(cfg.num_layers):
        feeds[f"past_key_{i}"] = torch.randn(shape, generator=gen)
        feeds[f"past_value_{i}"] = torch.randn(shape, generator=gen)
    return feeds


def _compare(
    ref: list[np.ndarray], got: list[np.ndarray], mask: np.ndarray, seq: int
) -> tuple[float, float]:
    """Max |logit diff| over real query positions and max |present diff| over real key positions."""
    qmask = mask[:, -seq:].astype(bool)  # (B, T)
    logit_diff = float(np.abs(ref[0] - got[0])[qmask].max()) if qmask.any() else 0.0
    kmask = mask.astype(bool)  # (B, S)
    present_diff = 0.0
    for r, g in zip(ref[1:], got[1:], strict=True):  # (B, n_kv, S, hd)
        d = np.abs(r - g).transpose(0, 2, 1, 3)[kmask]  # (real positions, n_kv, hd)
        present_diff = max(present_diff, float(d.max()) if d.size else 0.0)
    return logit_diff, present_diff


def verify_decoder(
    graph: torch.nn.Module, cfg: Any, onnx_path: str | Path, threads: int = 1, seed: int = 0
) -> dict[str, Any]:
    """Parity of `onnx_path` against the PyTorch wrapper `graph` (the module that was exported)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), session_options(threads),
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    gen = torch.Generator().manual_seed(seed)

    def both(feeds: dict[str, torch.Tensor]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        with torch.no_grad():
            ref = [t.numpy() for t in graph(*(feeds[n] for n in names))]
        got = session.run(None, {n: feeds[n].numpy() for n in names})
        return ref, got

    cases: list[dict[str, Any]] = []

    def record(name: str, feeds: dict[str, torch.Tensor], ref: list[np.ndarray],
               got: list[np.ndarray]) -> None:
        batch, seq = feeds["input_ids"].shape
        mask = feeds["attention_mask"].numpy()
        logit_diff, present_diff = _compare(ref, got, mask, seq)
        cases.append({"case": name, "batch": batch, "seq": seq, "past": mask.shape[1] - seq,
                      "max_abs_logit_diff": logit_diff, "max_abs_present_diff": present_diff})

    # 1. prefill with left padding and injected embeddings, empty cache
    prefill = _random_case(cfg, gen, batch=2, seq=7, past=0, pad_rows={1: 3},
                           embed_positions=[(0, 1), (0, 2)])
    ref, got = both(prefill)
    record("prefill", prefill, ref, got)
    # 1b. the same prefill asking for the last position's logits only (what generation does)
    last = session.run(["logits"], {n: (torch.tensor(1) if n == "logits_to_keep" else prefill[n]).numpy()
                                    for n in names})[0]  # (B, 1, V)
    cases.append({"case": "prefill_logits_to_keep_1", "batch": 2, "seq": 7, "past": 0,
                  "logits_shape": list(last.shape),
                  "max_abs_logit_diff": float(np.abs(ref[0][:, -1:] - last).max()) if last.shape[1] == 1
                  else float("inf"), "max_abs_present_diff": 0.0})

    # 2. one decode step, each side continuing from its own cache
    step_ids = torch.randint(0, cfg.vocab_size, (2, 1), generator=gen)
    mask = torch.cat([prefill["attention_mask"], torch.ones(2, 1, dtype=torch.int64)], 1)
    base = {"input_ids": step_ids, "inputs_embeds": torch.zeros(2, 1, cfg.hidden_dim),
            "embeds_mask": torch.zeros(2, 1, dtype=torch.bool), "attention_mask": mask,
            "position_ids": torch.from_numpy(positions(mask.numpy()))[:, -1:],
            "logits_to_keep": torch.tensor(1)}
    past_names = [n for n in names if n.startswith("past_")]
    ref_feeds = {**base, **{n: torch.from_numpy(r) for n, r in zip(past_names, ref[1:], strict=True)}}
    got_feeds = {n: t.numpy() for n, t in base.items()}
    got_feeds.update(zip(past_names, got[1:], strict=True))
    with torch.no_grad():
        ref2 = [t.numpy() for t in graph(*(ref_feeds[n] for n in names))]
    got2 = session.run(None, {n: got_feeds[n] for n in names})
    record("decode", ref_feeds, ref2, got2)

    # 3. another batch size, a random cache and a 2-token chunk
    chunk = _random_case(cfg, gen, batch=3, seq=2, past=5, pad_rows={2: 2}, embed_positions=[])
    ref3, got3 = both(chunk)
    record("chunk", chunk, ref3, got3)

    return {
        "max_abs_logit_diff": max(c["max_abs_logit_diff"] for c in cases),
        "max_abs_present_diff": max(c["max_abs_present_diff"] for c in cases),
        "cases": cases,
    }


def verify_multimodal(model: Any, export_dir: Path, encoders: dict[str, Any], threads: int = 1,
                      int8: bool = False, seed: int = 0) -> dict[str, Any]:
    """Encoder graphs and a multimodal prefill through ONNX Runtime vs PyTorch (see the module docstring)."""
    import onnxruntime as ort

    from salesai.export.onnx import DECODER_FILE, DECODER_INT8_FILE
    from salesai.ort_runtime import expand_placeholders, left_pad

    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    opts = session_options(threads)
    media: dict[str, torch.Tensor] = {}
    ort_embeds: dict[int, np.ndarray] = {}
    encoder_diff = 0.0
    for modality, entry in encoders.items():
        example = model.encoders[modality].example_input()[:1]  # (1, ...)
        items = torch.cat([example, example * 0.5 + 0.1], dim=0)  # (2, ...): two different inputs
        media[modality] = items
        with torch.no_grad():
            ref = model.projectors[modality](model.encoders[modality](items)).numpy()  # (2, N, D)
        file = entry["int8_file"] if int8 else entry["file"]
        sess = ort.InferenceSession(str(export_dir / file), opts, providers=["CPUExecutionProvider"])
        got = sess.run(["embeddings"], {"inputs": items.numpy()})[0]
        encoder_diff = max(encoder_diff, float(np.abs(ref - got).max()))
        ort_embeds[cfg.placeholder_id(modality)] = got
    words = [int(t) for t in torch.randint(11, cfg.vocab_size, (8,), generator=gen)]
    marks = [cfg.placeholder_id(m) for m in encoders]
    rows = [[cfg.bos_token_id, *marks, *words[:3]], [cfg.bos_token_id, words[3], *marks, *words[4:6]]]
    # PyTorch: the model's own splice (left padding), full forward
    ids, mask = left_pad(rows, cfg.pad_token_id)
    with torch.no_grad():
        sp = model.splice_media(torch.from_numpy(ids), media, torch.from_numpy(mask), padding_side="left")
        ref_logits = model(inputs_embeds=sp.inputs_embeds, attention_mask=sp.attention_mask).logits.numpy()
    # ONNX Runtime: expanded ids, embeddings from the encoder graphs, decoder graph prefill
    exp_rows, fills = expand_placeholders(rows, ort_embeds)
    e_ids, e_mask = left_pad(exp_rows, cfg.pad_token_id)
    b, t = e_ids.shape
    embeds = np.zeros((b, t, cfg.hidden_dim), np.float32)
    emask = np.zeros((b, t), np.bool_)
    for r, spots in enumerate(fills):
        pad = t - len(exp_rows[r])
        for pos, block in spots:
            embeds[r, pad + pos : pad + pos + len(block)] = block
            emask[r, pad + pos : pad + pos + len(block)] = True
    dec = ort.InferenceSession(str(export_dir / (DECODER_INT8_FILE if int8 else DECODER_FILE)), opts,
                               providers=["CPUExecutionProvider"])
    feeds: dict[str, np.ndarray] = {"input_ids": e_ids, "inputs_embeds": embeds, "embeds_mask": emask,
                                    "attention_mask": e_mask, "position_ids": positions(e_mask),
                                    "logits_to_keep": np.array(0, np.int64)}
    for i in range(cfg.num_layers):
        for kind in ("key", "value"):
            feeds[f"past_{kind}_{i}"] = np.zeros((b, cfg.num_kv_heads, 0, cfg.head_dim), np.float32)
    got_logits = dec.run(["logits"], feeds)[0]
    real = e_mask.astype(bool)
    logit_diff = float(np.abs(ref_logits - got_logits)[real].max())
    same_ids = bool((sp.input_ids.numpy() == e_ids).all())
    return {"max_abs_logit_diff": logit_diff, "max_abs_encoder_diff": encoder_diff, "batch": b, "seq": t,
            "expanded_ids_match": same_ids}


def int8_weight_share(fp32_path: str | Path, int8_path: str | Path) -> dict[str, Any]:
    """Share of the fp32 graph's 2-D weight values stored as (u)int8 in the quantised graph."""
    import onnx
    from onnx import TensorProto

    def init_sizes(path: str | Path) -> list[tuple[int, int, int]]:
        model = onnx.load(str(path), load_external_data=False)
        out = []
        for t in model.graph.initializer:
            n = int(np.prod(t.dims)) if t.dims else 1
            out.append((t.data_type, len(t.dims), n))
        return out

    fp32 = init_sizes(fp32_path)
    q = init_sizes(int8_path)
    weights_2d = sum(n for dt, nd, n in fp32 if dt == TensorProto.FLOAT and nd == 2)
    int8_2d = sum(n for dt, nd, n in q if dt in (TensorProto.INT8, TensorProto.UINT8) and nd == 2)
    fp32_2d_left = sum(n for dt, nd, n in q if dt == TensorProto.FLOAT and nd == 2)
    return {
        "weights_2d": weights_2d,
        "int8_2d": int8_2d,
        "fp32_2d_left": fp32_2d_left,
        "int8_share": int8_2d / weights_2d if weights_2d else 0.0,
    }


__all__ = ["int8_weight_share", "verify_decoder", "verify_multimodal"]
