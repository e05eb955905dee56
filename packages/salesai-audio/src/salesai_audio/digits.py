"""`make-data digits`: spoken digit strings as 16 kHz WAV files plus prompt/response JSONL.

What: `make_digits(out, n, seed, engines)` draws digit strings of 1-4 digits, speaks each with
a random speaker of a random engine (engines equally often) at a random speed and pitch,
resamples to 16 kHz and writes `clips/NNNNN.wav`, `train.jsonl`, `test.jsonl` and a README
naming the split. Speakers are held out *by name*: the test split's speakers never occur in
training (at least one per engine), so the test figure measures unseen voices. Records follow
the core's prompt/response form, the loss on the response only:

    {"prompt": "<audio>", "response": "4 0 7", "audio": "clips/00017.wav", "speaker": "espeak-ng:en-us+f2"}

The `audio` path is relative to the JSONL file. The whole directory is written atomically:
after an error (or Ctrl-C) nothing half-written is left at `out`.

What it is not: real speech. The bench (bench/audio.py) reports how far synthetic training carries.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from salesai.atomic import atomic_dir
from salesai.errors import SalesAIError
from salesai_audio.io import SAMPLE_RATE, encode_wav, read_audio
from salesai_audio.synth import Speaker, require, speakers, synthesize

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEST_SPEAKER_FRACTION = 0.2  # share of each engine's speakers held out for the test split
TEST_CLIP_FRACTION = 0.2  # share of the clips spoken by test speakers


def split_speakers(all_speakers: list[Speaker], seed: int) -> tuple[list[Speaker], list[Speaker]]:
    """(train, test) speakers: per engine, a seeded TEST_SPEAKER_FRACTION (at least one) is held out."""
    rng = random.Random(f"speakers-{seed}")
    train: list[Speaker] = []
    test: list[Speaker] = []
    for engine in sorted({s.engine for s in all_speakers}):
        group = [s for s in all_speakers if s.engine == engine]
        rng.shuffle(group)
        k = max(1, round(len(group) * TEST_SPEAKER_FRACTION)) if len(group) > 1 else 0
        test += group[:k]
        train += group[k:]
    return train, test


def make_digits(
    out: str | Path,
    *,
    n: int = 2000,
    seed: int = 0,
    engines: tuple[str, ...] = ("espeak-ng",),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Write the digits data set to `out`; returns {"train": count, "test": count, "speakers": ...}."""
    if n < 2:
        raise SalesAIError(f"--n {n}: expected at least 2 clips (one train, one test)")
    for engine in engines:
        require(engine)
    train_speakers, test_speakers = split_speakers([s for e in engines for s in speakers(e)], seed)
    if not test_speakers or not train_speakers:
        raise SalesAIError("make-data digits: the engines offer too few speakers to hold some out")
    rng = random.Random(seed)
    n_test = max(1, round(n * TEST_CLIP_FRACTION))
    records: dict[str, list[dict[str, str]]] = {"train": [], "test": []}
    out = Path(out)
    with atomic_dir(out) as tmp:
        (tmp / "clips").mkdir()
        for i in range(n):
            split = "test" if i >= n - n_test else "train"
            pool = test_speakers if split == "test" else train_speakers
            if len(engines) > 1:  # engines equally often, whatever their number of speakers
                engine = rng.choice(sorted({s.engine for s in pool}))
                pool = [s for s in pool if s.engine == engine]
            speaker = rng.choice(pool)
            digits = [rng.randrange(10) for _ in range(rng.randint(1, 4))]
            speed, pitch = rng.uniform(0.75, 1.3), rng.uniform(0.6, 1.5)
            raw = synthesize(speaker, " ".join(DIGIT_WORDS[d] for d in digits), speed=speed, pitch=pitch)
            samples = read_audio(raw, name=f"{speaker.name} clip {i}")  # mono, 16 kHz
            rel = f"clips/{i:05d}.wav"
            (tmp / rel).write_bytes(encode_wav(samples, SAMPLE_RATE, 16))
            records[split].append(
                {
                    "prompt": "<audio>",
                    "response": " ".join(map(str, digits)),
                    "audio": rel,
                    "speaker": speaker.name,
                }
            )
            if progress is not None:
                progress(i + 1, n)
        for split, rows in records.items():
            rng.shuffle(rows)
            (tmp / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (tmp / "README.md").write_text(_readme(n, seed, engines, train_speakers, test_speakers, records))
    return {"train": len(records["train"]), "test": len(records["test"]), "test_speakers": len(test_speakers)}


def _readme(
    n: int,
    seed: int,
    engines: tuple[str, ...],
    train: list[Speaker],
    test: list[Speaker],
    records: dict[str, list[dict[str, str]]],
) -> str:
    names = ", ".join(sorted(s.name for s in test))
    return (
        "# Spoken digit strings (salesai audio make-data digits)\n\n"
        f"{n} clips of 1-4 digits spoken by {', '.join(engines)} (seed {seed}), random speed x0.75-1.3 "
        "and pitch x0.6-1.5, resampled to 16 kHz mono 16-bit WAV under `clips/`.\n\n"
        'Records: `{"prompt": "<audio>", "response": "4 0 7", "audio": "clips/00017.wav", '
        '"speaker": ...}`; audio paths are relative to this directory.\n\n'
        "## Split\n\n"
        f"- `train.jsonl`: {len(records['train'])} clips, spoken by {len(train)} training speakers.\n"
        f"- `test.jsonl`: {len(records['test'])} clips, spoken by {len(test)} held-out speakers, never heard "
        f"in training (held out by name, {TEST_SPEAKER_FRACTION:.0%} of each engine's speakers, at least "
        f"one): {names}.\n"
    )
