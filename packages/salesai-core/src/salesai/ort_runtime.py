"""Generation with ONNX Runtime from a salesai ONNX export, in numpy only (no torch import).

What: `OrtDecoder` wraps the exported `decoder.onnx` (or its int8 variant) in an
`onnxruntime.InferenceSession` and runs one step: token ids (plus optional injected
embeddings) + attention mask + position ids + past keys/values -> logits + present
keys/values. `OrtGenerator` drives it: batches of prompts with left padding, greedy /
temperature / top-k / top-p sampling, repetition penalty, stop tokens, a per-call seed and
streaming, feeding each step's `present_*` back as the next step's `past_*`. The graph's
inputs and outputs are described by the export's `manifest.json` (see `docs/export.md`), so
any ONNX Runtime user can drive it the same way from another language.

Conventions (identical to `SalesAIModel.generate`): prompts are left-padded with `pad_id`,
`attention_mask` is 1 for real tokens and covers past + current positions, and
`position_ids = max(cumsum(attention_mask) - 1, 0)`, so a padded prompt sees the same
positions as an unpadded one. Greedy decoding yields the same token ids as PyTorch.

References: ONNX Runtime Python API (`InferenceSession`, `SessionOptions`); transformers'
logits processors for the repetition penalty (CTRL, Keskar et al. 2019) and nucleus sampling
(Holtzman et al. 2019).

Multimodal exports: `OrtEncoder` runs `encoder_<m>.onnx` (preprocessed inputs -> projected
embeddings); `OrtGenerator.generate(prompts, media={"image": [...]})` reads each file with the
encoder plugin's torch-free `preprocess_numpy` (registry metadata) following the manifest's
`preprocess_spec`, expands every placeholder token to its N embeddings and feeds them through
`inputs_embeds` / `embeds_mask` in the prefill, exactly as `SalesAIModel.generate` splices them.

What it is not: not onnxruntime-genai and not a server; CPU first (any provider can be
passed). The sampler's random numbers come from numpy, so sampled (non-greedy) text differs
from PyTorch's for the same seed; greedy output is identical.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salesai.errors import SalesAIError
from salesai.sampling import check_sampling

MANIFEST_FILENAME = "manifest.json"
VARIANTS = ("fp32", "int8", "q8", "q4")  # q8 / q4: block-wise 8 / 4-bit weights (decoder.q8.onnx, ...)
DEFAULT_THREADS = 2  # this project's reference machine has 2 shared cores


def read_manifest(export_dir: str | Path) -> dict[str, Any]:
    """The export's manifest.json as a dict; a clear error when `export_dir` is not an export."""
    d = Path(export_dir)
    path = d / MANIFEST_FILENAME
    if not path.is_file():
        raise SalesAIError(f"{d}: not an ONNX export (no {MANIFEST_FILENAME}); create one with "
                           "`salesai export CKPT --format onnx --out DIR`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SalesAIError(f"{path}: not valid JSON ({exc})") from None
    if manifest.get("format") != "salesai-onnx":
        raise SalesAIError(f"{path}: expected a salesai ONNX manifest (format 'salesai-onnx')")
    return dict(manifest)


def session_options(threads: int = DEFAULT_THREADS, spinning: bool = False) -> Any:
    """SessionOptions: `threads` intra-op threads (0 = ORT's default), sequential, all graph optimisations.

    `spinning=False` lets idle worker threads sleep instead of busy-waiting between operators.
    On a shared machine (another process on one of 2 cores) spinning threads made batch-1
    decoding ~2x slower than 1 thread; without spinning 2 threads beat 1 again.
    """
    import onnxruntime as ort

    if threads < 0:
        raise SalesAIError(f"threads={threads}: expected an integer >= 1 (or 0 for ONNX Runtime's default)")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return so


class OrtDecoder:
    """One decoder graph in an InferenceSession: `step()` = one forward with an explicit KV cache."""

    def __init__(
        self,
        export_dir: str | Path,
        variant: str = "fp32",
        threads: int = DEFAULT_THREADS,
        providers: Sequence[str] | None = None,
        spinning: bool = False,
    ) -> None:
        import onnxruntime as ort

        self.export_dir = Path(export_dir)
        self.manifest = read_manifest(self.export_dir)
        graphs = self.manifest["graphs"]
        key = "decoder" if variant == "fp32" else f"decoder_{variant}"
        if variant not in VARIANTS:
            raise SalesAIError(f"variant={variant!r}: expected one of {', '.join(VARIANTS)}")
        if key not in graphs:
            raise SalesAIError(f"{self.export_dir}: this export has no {variant} decoder "
                               f"(re-export with --quantize {variant})")
        self.variant = variant
        self.threads = threads
        self.path = self.export_dir / graphs[key]["file"]
        dec = self.manifest["decoder"]
        self.num_layers: int = dec["num_layers"]
        self.num_kv_heads: int = dec["num_kv_heads"]
        self.head_dim: int = dec["head_dim"]
        self.hidden_dim: int = dec["hidden_dim"]
        self.vocab_size: int = dec["vocab_size"]
        self.max_seq_len: int = dec["max_seq_len"]
        self.past_names = [n for i in range(self.num_layers) for n in (f"past_key_{i}", f"past_value_{i}")]
        self.session = ort.InferenceSession(
            str(self.path), session_options(threads, spinning),
            providers=list(providers or ["CPUExecutionProvider"]),
        )
        self.output_names = [o.name for o in self.session.get_outputs()]
        # exports before logits_to_keep (format_version 1 without it) always return every position
        self.has_logits_to_keep = any(i.name == "logits_to_keep" for i in self.session.get_inputs())
        self._zeros_embeds = np.zeros((0, 0, self.hidden_dim), np.float32)

    def empty_past(self, batch: int) -> list[np.ndarray]:
        """Zero-length past keys/values for `batch` rows, in input order (key_0, value_0, key_1, ...)."""
        shape = (batch, self.num_kv_heads, 0, self.head_dim)
        return [np.zeros(shape, np.float32) for _ in self.past_names]

    def step(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        position_ids: np.ndarray,
        past: Sequence[np.ndarray],
        inputs_embeds: np.ndarray | None = None,
        embeds_mask: np.ndarray | None = None,
        logits_to_keep: int = 0,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """One forward: ids (B, T), mask (B, past+T), positions (B, T) -> logits (B, T, V), presents.

        `logits_to_keep` k > 0: logits of the last k positions only, (B, k, V) (older exports
        without that input return all T).
        """
        b, t = input_ids.shape
        if inputs_embeds is None or embeds_mask is None:
            if self._zeros_embeds.shape[:2] != (b, t):
                self._zeros_embeds = np.zeros((b, t, self.hidden_dim), np.float32)
            inputs_embeds = self._zeros_embeds
            embeds_mask = np.zeros((b, t), np.bool_)
        feeds: dict[str, np.ndarray] = {
            "input_ids": np.ascontiguousarray(input_ids, np.int64),
            "inputs_embeds": np.ascontiguousarray(inputs_embeds, np.float32),
            "embeds_mask": np.ascontiguousarray(embeds_mask, np.bool_),
            "attention_mask": np.ascontiguousarray(attention_mask, np.int64),
            "position_ids": np.ascontiguousarray(position_ids, np.int64),
        }
        if self.has_logits_to_keep:
            feeds["logits_to_keep"] = np.array(logits_to_keep, np.int64)
        feeds.update(zip(self.past_names, past, strict=True))
        outs = self.session.run(self.output_names, feeds)
        return outs[0], list(outs[1:])


class OrtEncoder:
    """One modality's `encoder_<m>.onnx` (encoder + projector): inputs (K, ...) -> embeddings (K, N, D)."""

    def __init__(self, export_dir: str | Path, modality: str, manifest: dict[str, Any], variant: str = "fp32",
                 threads: int = DEFAULT_THREADS, spinning: bool = False) -> None:
        import onnxruntime as ort

        entries = manifest.get("encoders") or {}
        if modality not in entries:
            raise SalesAIError(f"{export_dir}: this export has no {modality} encoder "
                               f"(it has: {', '.join(entries) or 'none'})")
        self.modality = modality
        self.entry = dict(entries[modality])
        file = self.entry.get("int8_file") if variant == "int8" else self.entry["file"]
        if not file:
            raise SalesAIError(f"{export_dir}: no int8 {modality} encoder (re-export with --quantize int8)")
        self.placeholder_id = int(self.entry["placeholder_id"])
        self.session = ort.InferenceSession(str(Path(export_dir) / file), session_options(threads, spinning),
                                            providers=["CPUExecutionProvider"])
        self._preprocess: Any = None

    def preprocess(self, source: Any) -> np.ndarray:
        """One input (path, bytes, array) -> the array `preprocess_spec` describes, without torch."""
        if self._preprocess is None:
            self._preprocess = numpy_preprocessor(self.modality, self.entry)
        return np.asarray(self._preprocess(source, self.entry["preprocess_spec"]), dtype=np.float32)

    def encode(self, inputs: np.ndarray) -> np.ndarray:
        """(K, ...) preprocessed inputs -> (K, N, hidden_dim) embeddings."""
        feeds = {"inputs": np.ascontiguousarray(inputs, np.float32)}
        return np.asarray(self.session.run(["embeddings"], feeds)[0])


def numpy_preprocessor(modality: str, entry: dict[str, Any]) -> Any:
    """The encoder plugin's torch-free `preprocess_numpy(source, spec)` from the registry metadata."""
    from salesai.errors import PluginError
    from salesai.plugins import FIRST_PARTY, registry

    name = entry.get("type", "?")
    try:
        fn = registry("encoders").entry(name).metadata.get("preprocess_numpy")
    except PluginError:
        package = FIRST_PARTY.get("encoders", {}).get(name) or FIRST_PARTY.get("encoders", {}).get(modality)
        raise SalesAIError(f"reading {modality} inputs for this export needs the {name!r} encoder's plugin "
                           f"(pip install {package or 'the plugin that registers it'})") from None
    if not callable(fn):
        raise SalesAIError(f"the {name!r} encoder registers no preprocess_numpy: its {modality} inputs "
                           "cannot be read without torch")
    return fn


def expand_placeholders(
    rows: Sequence[Sequence[int]], embeddings: dict[int, np.ndarray], names: dict[int, str] | None = None
) -> tuple[list[list[int]], list[list[tuple[int, np.ndarray]]]]:
    """Each placeholder id -> N copies; returns (rows, per row [(position, (N, D) block)]), reading order."""
    names = names or {}
    for tok, emb in embeddings.items():
        found = sum(list(r).count(tok) for r in rows)
        if found != emb.shape[0]:
            what = names.get(tok, f"token {tok}")
            raise SalesAIError(f"{found} <{what}> placeholder(s) in the prompt(s) but {emb.shape[0]} {what} "
                               "input(s); every input needs exactly one placeholder")
    cursor = dict.fromkeys(embeddings, 0)
    out_rows: list[list[int]] = []
    fills: list[list[tuple[int, np.ndarray]]] = []
    for row in rows:
        new: list[int] = []
        spots: list[tuple[int, np.ndarray]] = []
        for tok in row:
            if tok in embeddings:
                block = embeddings[tok][cursor[tok]]  # (N, D)
                cursor[tok] += 1
                spots.append((len(new), block))
                new.extend([tok] * block.shape[0])
            else:
                new.append(int(tok))
        out_rows.append(new)
        fills.append(spots)
    return out_rows, fills


# ----------------------------------------------------------------------------------- sampling
def apply_repetition_penalty(logits: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """CTRL penalty on tokens already in the row: positive logits / penalty, negative * penalty."""
    if penalty == 1.0:
        return logits
    penalised = np.where(logits > 0, logits / penalty, logits * penalty)
    return np.where(seen, penalised, logits).astype(logits.dtype)


def sample_next(
    logits: np.ndarray,
    rng: np.random.Generator,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> np.ndarray:
    """Next token per row from logits (B, V): argmax when temperature == 0, else filtered sampling."""
    if temperature <= 0:
        return logits.argmax(-1).astype(np.int64)  # (B,)
    scores = logits.astype(np.float64) / temperature
    vocab = scores.shape[-1]
    if top_k is not None and 0 < top_k < vocab:
        kth = np.partition(scores, vocab - top_k, axis=-1)[:, vocab - top_k, None]  # (B, 1)
        scores = np.where(scores < kth, -np.inf, scores)
    if top_p is not None and 0 < top_p < 1:
        order = np.argsort(-scores, axis=-1, kind="stable")  # (B, V) best first
        sorted_scores = np.take_along_axis(scores, order, -1)
        probs = np.exp(sorted_scores - sorted_scores[:, :1])
        probs /= probs.sum(-1, keepdims=True)
        # drop a token when the tokens before it already hold more than top_p of the mass
        drop_sorted = (np.cumsum(probs, -1) - probs) > top_p
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, -1)
        scores = np.where(drop, -np.inf, scores)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    u = rng.random((scores.shape[0], 1))
    return np.minimum((probs.cumsum(-1) < u).sum(-1), vocab - 1).astype(np.int64)  # (B,)


@dataclass
class GenerationStats:
    """Timings of the last generation call (seconds, tokens)."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    decode_steps: int = 0

    @property
    def decode_tokens_per_s(self) -> float:
        return self.decode_steps / self.decode_s if self.decode_s > 0 else 0.0


Prompts = Sequence[int] | Sequence[Sequence[int]] | np.ndarray


def _rows(prompts: Prompts) -> tuple[list[list[int]], bool]:
    """Prompts as lists of ids, and whether a single prompt (a flat list of ints) was given."""
    if isinstance(prompts, np.ndarray):
        arr = prompts[None] if prompts.ndim == 1 else prompts
        return [list(map(int, r)) for r in arr], prompts.ndim == 1 or arr.shape[0] == 1
    items: list[Any] = list(prompts)
    if items and all(isinstance(i, (int, np.integer)) for i in items):
        return [[int(i) for i in items]], True
    rows = [[int(i) for i in r] for r in items if not isinstance(r, (int, np.integer))]
    if len(rows) != len(items):
        raise SalesAIError("input_ids: expected a list of ids or a list of id lists, not a mix")
    return rows, len(rows) == 1


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad token lists into ids (B, T) and attention mask (B, T) (1 = real token)."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise SalesAIError("input_ids: expected non-empty prompts (lists of token ids)")
    width = max(len(p) for p in prompts)
    ids = np.full((len(prompts), width), pad_id, np.int64)
    mask = np.zeros((len(prompts), width), np.int64)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = np.asarray(p, np.int64)
        mask[i, width - len(p):] = 1
    return ids, mask


def positions(mask: np.ndarray) -> np.ndarray:
    """Position ids from an attention mask (B, S): max(cumsum - 1, 0)."""
    return np.maximum(np.cumsum(mask, -1) - 1, 0).astype(np.int64)


class OrtGenerator:
    """Autoregressive generation over an `OrtDecoder`, with `SalesAIModel.generate`'s semantics.

    Same arguments and defaults as `salesai.model.generation.generate`: temperature 1.0
    (0 = greedy), top_k/top_p off, stop_token_ids None = [eos] ([] = never stop early), a stop
    token is kept in the output and ends its row, completions only (prompt not repeated).
    """

    def __init__(self, decoder: OrtDecoder, tokenizer: Any | None = None) -> None:
        self.decoder = decoder
        self.tokenizer = tokenizer
        special = decoder.manifest.get("special_tokens", {})
        self.pad_id: int = int(special.get("pad", 0))
        self.eos_id: int = int(special.get("eos", 3))
        self.bos_id: int = int(special.get("bos", 2))
        self.add_bos: bool = bool(decoder.manifest.get("generation", {}).get("add_bos", True))
        self.stats = GenerationStats()
        self.encoders: dict[str, OrtEncoder] = {}  # loaded on first use, per modality

    @classmethod
    def from_export(
        cls, export_dir: str | Path, variant: str = "fp32", threads: int = DEFAULT_THREADS,
        spinning: bool = False,
    ) -> OrtGenerator:
        """Load `export_dir/manifest.json`, the decoder graph and `tokenizer.model` (when present)."""
        decoder = OrtDecoder(export_dir, variant=variant, threads=threads, spinning=spinning)
        tok_file = decoder.manifest.get("tokenizer", {}).get("file")
        tokenizer = load_tokenizer(Path(export_dir) / tok_file) if tok_file else None
        return cls(decoder, tokenizer)

    def encoder(self, modality: str) -> OrtEncoder:
        """The export's encoder graph for `modality` (the decoder's variant), loaded once."""
        if modality not in self.encoders:
            dec = self.decoder
            self.encoders[modality] = OrtEncoder(dec.export_dir, modality, dec.manifest, dec.variant,
                                                 dec.threads)
        return self.encoders[modality]

    def media_embeddings(self, media: dict[str, Any]) -> tuple[dict[int, np.ndarray], dict[int, str]]:
        """{placeholder id: (K, N, D)} for {modality: [inputs]} (paths, bytes or preprocessed arrays)."""
        out: dict[int, np.ndarray] = {}
        names: dict[int, str] = {}
        for modality, items in media.items():
            if items is None:
                continue
            enc = self.encoder(modality)
            items = items if isinstance(items, (list, tuple)) else [items]
            if not items:
                continue
            arrays = [enc.preprocess(x) for x in items]
            out[enc.placeholder_id] = enc.encode(np.stack(arrays))  # (K, N, D)
            names[enc.placeholder_id] = modality
        return out, names

    def generate(self, prompts: Prompts, **kwargs: Any) -> list[list[int]]:
        """Completion ids per prompt (see the class docstring); options as `stream`."""
        rows: list[list[int]] = [[] for _ in _rows(prompts)[0]]
        for tokens, done in self._tokens(prompts, **kwargs):
            for r, tok in enumerate(tokens):
                if not done[r]:
                    rows[r].append(tok)
        return rows

    def stream(self, prompts: Prompts, **kwargs: Any) -> Iterator[Any]:
        """Yield tokens as produced: ints for one prompt; for several, a list per step (None = stopped)."""
        single = _rows(prompts)[1]
        for tokens, done in self._tokens(prompts, **kwargs):
            yield tokens[0] if single else [None if d else t for t, d in zip(tokens, done, strict=True)]

    def _tokens(
        self,
        prompts: Prompts,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        repetition_penalty: float = 1.0,
        stop_token_ids: Sequence[int] | None = None,
        seed: int | None = None,
        inputs_embeds: np.ndarray | None = None,
        embeds_mask: np.ndarray | None = None,
        media: dict[str, Any] | None = None,
    ) -> Iterator[tuple[list[int], list[bool]]]:
        """Yield (token per row, row finished before this step) per generated position.

        `inputs_embeds` (B, T, D) / `embeds_mask` (B, T), aligned with the left-padded
        prompts, replace token embeddings in the prefill (multimodal prefixes).
        """
        dec = self.decoder
        rows, _ = _rows(prompts)
        fills: list[list[tuple[int, np.ndarray]]] = []
        if media:  # multimodal prefill: placeholders -> encoder embeddings (module docstring)
            embeddings, names = self.media_embeddings(media)
            rows, fills = expand_placeholders(rows, embeddings, names)
        ids, mask = left_pad(rows, self.pad_id)
        batch, width = ids.shape
        if any(fills):
            inputs_embeds = np.zeros((batch, width, dec.hidden_dim), np.float32)
            embeds_mask = np.zeros((batch, width), np.bool_)
            for r, spots in enumerate(fills):
                pad = width - len(rows[r])
                for pos, block in spots:
                    inputs_embeds[r, pad + pos : pad + pos + block.shape[0]] = block
                    embeds_mask[r, pad + pos : pad + pos + block.shape[0]] = True
        check_sampling(width, dec.max_seq_len, max_new_tokens, temperature, top_k, top_p, repetition_penalty)
        self.stats = GenerationStats(prompt_tokens=int(mask.sum()))
        if max_new_tokens == 0:
            return
        stops = {self.eos_id} if stop_token_ids is None else {int(t) for t in stop_token_ids}
        rng = np.random.default_rng(seed)
        seen = None
        if repetition_penalty != 1.0:
            seen = np.zeros((batch, dec.vocab_size), np.bool_)
            for r in range(batch):
                seen[r, ids[r][mask[r] == 1]] = True

        t0 = time.perf_counter()
        logits, past = dec.step(ids, mask, positions(mask), dec.empty_past(batch), inputs_embeds, embeds_mask,
                                logits_to_keep=1)  # (B, 1, V): the prefill computes one row of logits
        self.stats.prefill_s = time.perf_counter() - t0
        next_pos = mask.sum(-1, keepdims=True)  # (B, 1) next position per row
        done = [False] * batch
        t_decode = time.perf_counter()
        for i in range(max_new_tokens):
            scores = logits[:, -1, :]  # (B, V)
            if seen is not None:
                scores = apply_repetition_penalty(scores, seen, repetition_penalty)
            token = sample_next(scores, rng, temperature, top_k, top_p)  # (B,)
            row_tokens = [int(t) for t in token]
            yield row_tokens, list(done)
            for r, tok in enumerate(row_tokens):
                if not done[r]:
                    self.stats.new_tokens += 1
                if tok in stops:
                    done[r] = True
            if all(done) or i == max_new_tokens - 1:
                break
            if seen is not None:
                seen[np.arange(batch), token] = True
            mask = np.concatenate([mask, np.ones((batch, 1), np.int64)], axis=1)  # (B, S + 1)
            logits, past = dec.step(token[:, None], mask, next_pos, past, logits_to_keep=1)
            self.stats.decode_steps += 1
            next_pos = next_pos + 1
        self.stats.decode_s = time.perf_counter() - t_decode

    # -- text helpers ----------------------------------------------------------------------
    def _tok(self) -> Any:
        if self.tokenizer is None:
            raise SalesAIError(f"{self.decoder.export_dir}: export has no tokenizer.model; pass token ids")
        return self.tokenizer

    def generate_text(self, prompt: str, **kwargs: Any) -> str:
        """Completion text of one prompt (bos added as the manifest says; prompt not repeated)."""
        tok = self._tok()
        ids = self.generate([tok.encode(prompt, add_bos=self.add_bos)], **kwargs)[0]
        return str(tok.decode(ids))

    def stream_text(self, prompt: str, **kwargs: Any) -> Iterator[str]:
        """Yield the completion of one prompt as text pieces, decoded incrementally."""
        tok = self._tok()
        ids: list[int] = []
        shown = ""
        for token in self.stream(tok.encode(prompt, add_bos=self.add_bos), **kwargs):
            ids.append(int(token))
            text = str(tok.decode(ids))
            if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its next byte
                continue
            yield text[len(shown):]
            shown = text


def load_tokenizer(path: Path) -> Any:
    """The export's tokenizer: SentencePiece (`salesai.Tokenizer`, no torch) or the test ByteTokenizer."""
    if not path.is_file():
        raise SalesAIError(f"{path}: tokenizer file listed in the manifest is missing")
    if path.read_bytes()[:1] == b"{":  # salesai.testing.ByteTokenizer writes JSON
        from salesai.testing.tokenizer import ByteTokenizer

        return ByteTokenizer.from_pretrained(path)
    from salesai.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(path)


__all__ = [
    "MANIFEST_FILENAME",
    "OrtDecoder",
    "OrtEncoder",
    "OrtGenerator",
    "apply_repetition_penalty",
    "expand_placeholders",
    "left_pad",
    "load_tokenizer",
    "positions",
    "read_manifest",
    "sample_next",
    "session_options",
]
