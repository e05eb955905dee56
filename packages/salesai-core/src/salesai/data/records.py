"""Prompt/response and media records: JSON Lines -> token ids, labels and media, checked per line.

Record forms (one JSON object per line; media paths relative to the JSONL file):

    {"text": "a red circle above a blue square", "image": "images/1.png"}    loss on all text
    {"prompt": "<image> What colour is the top shape?", "response": "red",
     "image": "images/1.png"}                                                loss on the response
    {"prompt": "Translate: chat", "response": "cat"}                        plain-text SFT

- `ids = [bos] + prompt + response + [eos]`; the response follows the prompt after one space
  (unless either side already has whitespace there), and that space belongs to the response,
  so a model asked the bare prompt at generation time answers the same way. Labels are -100
  on bos, the prompt and every placeholder (and on the model's inserted media positions).
- Media: a key per modality the model carries (`image`, `audio`, ...), a path or a list of
  paths. Each item needs exactly one placeholder token (`<image>`) in the text, in order; a
  record with media and no placeholder gets one per item in front of its text; any other
  count is an error naming the file and line. Keys `task`, `split`, `id`, ... are ignored.
- `RecordDataset` holds the encoded samples; `ds.batch(indices)` pads a batch on the right:
  `input_ids`, `attention_mask`, `labels` (B, T) and `media` ({modality: (K, ...) stacked
  preprocessed items, in reading order}), which `SalesAIModel.forward` takes as keyword
  arguments; `ds.evaluate(...)` is the Trainer's validation (mean loss over response tokens).
  The Trainer visits it in its one `SampleOrder` like token windows, so exact resume and
  torchrun equivalence hold unchanged.

What it is not: an image or audio reader (the model's encoders' `preprocess` reads the files).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from salesai.data.sources import PathLike, is_metadata, iter_jsonl, resolve_sources
from salesai.errors import SalesAIError

IGNORE = -100
CACHE_BYTES = 512 << 20  # preprocessed media kept in memory per dataset (e.g. 10,000 images of 3x64x64)
RECORD_KEYS = ("text", "prompt", "response")
MEDIA_KEYS = ("image", "audio")  # media keys recognised even when the model lacks that encoder


@dataclass
class Sample:
    """One encoded record."""

    ids: list[int]
    labels: list[int]  # IGNORE where no loss is taken
    media: dict[str, list[Path]] = field(default_factory=dict)  # modality -> files, in placeholder order
    where: str = ""  # "file:line", for error messages


def join(prompt: str, response: str) -> tuple[str, str]:
    """(prompt, response) with one space between them unless whitespace is already there."""
    if prompt and response and not prompt[-1].isspace() and not response[0].isspace():
        response = " " + response
    return prompt, response


def _media_lists(obj: dict[str, Any], keys: Sequence[str], base: Path, where: str) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for key in keys:
        value = obj.get(key)
        if value is None:
            continue
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(x, str) and x for x in items):
            raise SalesAIError(f"{where}: {key!r} must be a file path or a non-empty list of paths")
        paths = [base / x for x in items]
        for p in paths:
            if not p.is_file():
                raise SalesAIError(f"{where}: {key} file {p} not found")
        out[key] = paths
    return out


def is_record_file(path: Path) -> bool:
    """True for a .jsonl file whose first record has a prompt or a media key (not plain text)."""
    if path.suffix.lower() != ".jsonl":
        return False
    for _, obj, _error in iter_jsonl(path):
        if isinstance(obj, dict) and not is_metadata(obj):
            return "prompt" in obj or any(k in obj for k in MEDIA_KEYS)
    return False


def iter_record_texts(paths: PathLike | Sequence[PathLike]) -> Iterator[str]:
    """The texts of the records (prompt + response, or text), e.g. to train a tokenizer."""
    for path in resolve_sources(paths):
        for _, obj, _error in iter_jsonl(path):
            if isinstance(obj, dict) and not is_metadata(obj):
                if isinstance(obj.get("text"), str):
                    yield obj["text"]
                elif isinstance(obj.get("prompt"), str) and isinstance(obj.get("response"), str):
                    yield "".join(join(obj["prompt"], obj["response"]))


def encode_record(obj: Any, tokenizer: Any, placeholders: Mapping[str, int], base: Path,
                  where: str) -> Sample:
    """One parsed JSON record -> Sample; `placeholders` maps the model's modalities to token ids."""
    if not isinstance(obj, dict):
        raise SalesAIError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    text, prompt, response = obj.get("text"), obj.get("prompt"), obj.get("response")
    if prompt is not None or response is not None:
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise SalesAIError(f"{where}: a prompt/response record needs both as strings")
        if text is not None:
            raise SalesAIError(f"{where}: give either text or prompt/response, not both")
    elif not isinstance(text, str):
        raise SalesAIError(f"{where}: expected a record with text or prompt/response (strings)")
    unknown = [k for k in MEDIA_KEYS if k in obj and k not in placeholders]
    if unknown:
        raise SalesAIError(f"{where}: the record has {unknown[0]} input but the model has no {unknown[0]} "
                           "encoder (add it to the model's encoders)")
    media = _media_lists(obj, list(placeholders), base, where)
    if isinstance(prompt, str):
        p, r = join(prompt, str(response))
        head, tail = tokenizer.encode(p), tokenizer.encode(r)
    else:
        head, tail = [], tokenizer.encode(str(text))
    body = head + tail
    for modality, tok in placeholders.items():
        k = len(media.get(modality, []))
        found = body.count(tok)
        if found == 0 and k > 0:
            head = [tok] * k + head  # a placeholder per item, in front of the text
        elif found != k:
            raise SalesAIError(f"{where}: {found} <{modality}> placeholder(s) but {k} {modality} input(s); "
                               "give one placeholder per input (or none: they are then put in front)")
    ids = [tokenizer.bos_id, *head, *tail, tokenizer.eos_id]
    n_head = 1 + len(head)
    labels = [IGNORE] * n_head if prompt is not None else [IGNORE, *head]
    labels += [*tail, tokenizer.eos_id]
    marks = set(placeholders.values())
    labels = [IGNORE if i in marks else lab for i, lab in zip(ids, labels, strict=True)]
    return Sample(ids, labels, media, where)


def load_records(paths: PathLike | Sequence[PathLike], tokenizer: Any,
                 placeholders: Mapping[str, int] | None = None) -> list[Sample]:
    """Every record of the JSON Lines files in `paths`, encoded and checked (errors name file:line)."""
    placeholders = dict(placeholders or {})
    samples = []
    for path in resolve_sources(paths):
        if path.suffix.lower() != ".jsonl":
            raise SalesAIError(f"{path}: expected a .jsonl file of records (prompt/response or text + media)")
        for lineno, obj, error in iter_jsonl(path):
            where = f"{path}:{lineno}"
            if error is not None:
                raise SalesAIError(f"{where}: {error}")
            if is_metadata(obj):
                continue
            samples.append(encode_record(obj, tokenizer, placeholders, path.parent, where))
    if not samples:
        raise SalesAIError(f"{', '.join(map(str, paths)) if isinstance(paths, list) else paths}: no records")
    return samples


class RecordDataset:
    """Encoded records for the Trainer; see the module docstring."""

    def __init__(self, samples: Sequence[Sample], seq_len: int, pad_id: int = 0,
                 preprocess: Mapping[str, Callable[[Any], Any]] | None = None,
                 placeholder_ids: Sequence[int] = ()) -> None:
        self.samples = list(samples)
        self.seq_len = seq_len
        self.pad_id = pad_id
        self.preprocess = dict(preprocess or {})
        self._cache: dict[tuple[str, Path], Any] = {}  # preprocessed media (deterministic), up to CACHE_BYTES
        self._cached_bytes = 0
        for s in self.samples:
            if len(s.ids) > seq_len and any(tok in s.ids[seq_len:] for tok in placeholder_ids):
                raise SalesAIError(f"{s.where}: {len(s.ids)} tokens; cutting them to seq_len {seq_len} would "
                                   "drop a placeholder (raise --seq-len or shorten the record)")

    @classmethod
    def from_files(cls, paths: PathLike | Sequence[PathLike], tokenizer: Any, seq_len: int,
                   model: Any = None) -> RecordDataset:
        """Records of `paths` for `model` (its encoders' placeholders and preprocess)."""
        placeholders: dict[str, int] = {}
        preprocess: dict[str, Callable[[Any], Any]] = {}
        if model is not None:
            for modality in getattr(model.config, "encoders", {}) or {}:
                placeholders[modality] = model.config.placeholder_id(modality)
                preprocess[modality] = model.encoders[modality].preprocess
        return cls(load_records(paths, tokenizer, placeholders), seq_len, tokenizer.pad_id, preprocess,
                   list(placeholders.values()))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.samples[i]
        return {"input_ids": s.ids[: self.seq_len], "labels": s.labels[: self.seq_len], "media": s.media,
                "where": s.where}

    def batch(self, indices: Sequence[int]) -> dict[str, Any]:
        """The batch of samples `indices` (what the Trainer asks for); see `collate`."""
        return self.collate([self[i] for i in indices])

    def evaluate(self, model: Any, batch_size: int, device: Any, precision: str = "fp32",
                 info: Any = None) -> dict[str, Any]:
        """Mean next-token loss over the labelled (response) tokens of every record, and perplexity."""
        import math

        import torch

        net = getattr(model, "module", model)  # DistributedDataParallel -> the model
        rank, world = (info.rank, info.world_size) if info is not None else (0, 1)
        was_training = net.training
        net.eval()
        if hasattr(net, "reset_expert_usage"):
            net.reset_expert_usage()
        total = torch.zeros(2, dtype=torch.float64, device=device)  # [sum of CE, labelled tokens]
        mine = list(range(rank, len(self), world))
        kind = torch.device(device).type
        autocast = torch.autocast(kind, dtype=torch.bfloat16, enabled=precision == "bf16")
        with torch.no_grad():
            for i in range(0, len(mine), batch_size):
                batch = self.batch(mine[i : i + batch_size])
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast:
                    out = net(**batch)
                count = (batch["labels"][:, 1:] != IGNORE).sum().double()
                aux = out.aux_loss if out.aux_loss is not None else 0.0
                total += torch.stack([(out.loss - aux).double() * count, count])
        if world > 1:
            torch.distributed.all_reduce(total)
        net.train(was_training)
        loss = float(total[0] / total[1].clamp(min=1))
        usage = net.expert_usage() if hasattr(net, "expert_usage") else None
        return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0)), "val_tokens": int(total[1]),
                "expert_usage": usage}

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Right-padded (B, T) input_ids / attention_mask / labels and stacked media per modality."""
        import torch

        width = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        mask = torch.zeros(len(items), width, dtype=torch.long)
        media: dict[str, list[Any]] = {}
        for r, it in enumerate(items):
            n = len(it["input_ids"])
            ids[r, :n] = torch.tensor(it["input_ids"])
            labels[r, :n] = torch.tensor(it["labels"])
            mask[r, :n] = 1
            for modality, files in it["media"].items():
                read = self.preprocess.get(modality)
                if read is None:
                    raise SalesAIError(f"{it['where']}: no {modality} encoder to read {files[0]}")
                try:
                    media.setdefault(modality, []).extend(self._read(modality, read, f) for f in files)
                except SalesAIError as exc:
                    raise SalesAIError(f"{it['where']}: {exc}") from None
        batch: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if media:
            batch["media"] = MediaBatch({m: torch.stack(xs) for m, xs in media.items()})  # (K, ...)
        return batch


    def _read(self, modality: str, read: Callable[[Any], Any], file: Path) -> Any:
        """`read(file)`, kept in memory while the cache holds less than CACHE_BYTES."""
        key = (modality, file)
        item = self._cache.get(key)
        if item is None:
            item = read(file)
            size = item.numel() * item.element_size() if hasattr(item, "numel") else 0
            if self._cached_bytes + size <= CACHE_BYTES:
                self._cache[key] = item
                self._cached_bytes += size
        return item


class MediaBatch(dict[str, Any]):
    """{modality: (K, ...) tensor} that moves like a tensor: `.to(device)` (the Trainer calls it)."""

    def to(self, *args: Any, **kwargs: Any) -> MediaBatch:
        return MediaBatch({k: v.to(*args, **kwargs) for k, v in self.items()})


def split_records(samples: Sequence[Sample], fraction: float = 0.02) -> tuple[list[Sample], list[Sample]]:
    """Train = the head, validation = the tail (at least one record) when no --val data is given."""
    n_val = max(1, int(len(samples) * fraction))
    if len(samples) < 2:
        raise SalesAIError("training data: at least 2 records are needed (or give --val data)")
    return list(samples[:-n_val]), list(samples[-n_val:])



__all__ = ["IGNORE", "MediaBatch", "RecordDataset", "Sample", "encode_record", "is_record_file",
           "iter_record_texts", "join", "load_records", "split_records"]
