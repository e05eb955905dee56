"""Training data: sources and records, the token cache, the one data ordering, inspection.

    sources.py     files, folders, globs, JSON Lines records, the stdlib default corpus
    tokens.py      documents encoded once into a cached, memory-mapped token file
    windows.py     TokenSequences (fixed-length samples) and SampleOrder (the seeded order)
    records.py     prompt/response and media records -> ids, labels, media (RecordDataset)
    inspection.py  `salesai data inspect`: what a data path holds and its problems

    files --resolve_sources--> paths --iter_records--> Record --tokenize_files--> TokenFile (uint16/32)
        --TokenSequences--> (T,) windows --SampleOrder + Trainer--> (B, T) batches per rank and step

Names are imported lazily (`import salesai.data` imports neither numpy nor torch).
"""

from __future__ import annotations

from salesai.lazy import lazy_getattr

_MODULES = {
    "salesai.data.sources": (
        "PathLike", "TEXT_SUFFIXES", "MEDIA_KEYS", "STDLIB_EXCLUDED_DIRS", "Record", "resolve_sources",
        "read_text", "iter_jsonl", "is_metadata", "iter_records", "iter_texts", "CorpusSplit",
        "stdlib_root", "stdlib_files", "split_files", "stdlib_corpus", "Signature", "heldout_signatures",
    ),
    "salesai.data.tokens": (
        "CACHE_VERSION", "TokenizerLike", "TokenFile", "tokenizer_fingerprint", "sources_fingerprint",
        "tokenize_files", "load_token_file",
    ),
    "salesai.data.windows": ("TokenSequences", "SampleOrder"),
    "salesai.data.records": (
        "IGNORE", "RecordDataset", "Sample", "encode_record", "is_record_file", "iter_record_texts",
        "load_records", "split_records",
    ),
    "salesai.data.inspection": ("Problem", "InspectReport", "inspect_data"),
}
_LAZY: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
