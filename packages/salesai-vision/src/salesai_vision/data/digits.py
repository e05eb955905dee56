"""`digits`: 2x2 grids of real handwritten digits (scikit-learn's `load_digits`).

The 1,797 source digits (8x8, 16 grey levels) are split 80/20 *before* composing, so test
grids carry handwriting never seen in training. Each digit is scaled to 32x32; a grid is a
64x64 greyscale PNG. Caption: the four digits in reading order ("3 7 1 0"). Questions: the
sum of the digits, the digit at a position, and whether a digit is even.
Needs scikit-learn: `pip install 'salesai-vision[data]'`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from salesai.errors import SalesAIError
from salesai_vision.data import CAPTION_PROMPT, prepare_out, write_jsonl

POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")


def load_source() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) uint8 0..255, labels (1797,)) from scikit-learn's bundled copy."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SalesAIError(
            "make-data digits needs scikit-learn: pip install 'salesai-vision[data]'"
        ) from None
    bunch = load_digits()
    images = np.clip(np.rint(bunch.images * (255 / 16)), 0, 255).astype(np.uint8)  # (1797, 8, 8)
    return images, bunch.target.astype(int)


def compose(digits: list[np.ndarray]) -> Any:
    """Four (8, 8) uint8 digits -> a 64x64 'L' image in reading order."""
    from PIL import Image

    grid = Image.new("L", (64, 64), 0)
    for k, digit in enumerate(digits):
        tile = Image.fromarray(digit, "L").resize((32, 32), Image.Resampling.BILINEAR)
        grid.paste(tile, ((k % 2) * 32, (k // 2) * 32))
    return grid


def make_digits(out: str | Path, n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Write n training grids and n // 4 test grids (unseen handwriting) into `out`."""
    images, labels = load_source()
    d = prepare_out(out)
    rng = random.Random(seed)
    order = list(range(len(labels)))
    rng.shuffle(order)
    cut = int(0.8 * len(order))
    pools = {"train": order[:cut], "test": order[cut:]}
    summary: dict[str, Any] = {"dataset": "digits", "seed": seed, "files": {}}
    counter = 0
    for split, count in (("train", n), ("test", max(n // 4, 8))):
        records: list[dict[str, Any]] = []
        for _ in range(count):
            picks = [rng.choice(pools[split]) for _ in range(4)]
            values = [int(labels[i]) for i in picks]
            name = f"images/{counter:05d}.png"
            counter += 1
            compose([images[i] for i in picks]).save(d / name)
            records.append({"prompt": CAPTION_PROMPT, "response": " ".join(map(str, values)),
                            "image": name, "task": "caption", "split": split})
            k = rng.randrange(4)
            task, question, answer = rng.choice([
                ("sum", "<image> What is the sum of the digits?", str(sum(values))),
                ("digit", f"<image> What is the {POSITIONS[k]} digit?", str(values[k])),
                ("even", f"<image> Is the {POSITIONS[k]} digit even?", "yes" if values[k] % 2 == 0 else "no"),
            ])
            records.append({"prompt": question, "response": answer, "image": name, "task": task,
                            "split": split})
        filename = f"{split}.jsonl"
        summary["files"][filename] = {"images": count, "records": write_jsonl(d / filename, records)}
    (d / "README.md").write_text(
        f"# digits (seed {seed})\n\n"
        "64x64 greyscale PNG grids of four handwritten digits (scikit-learn `load_digits`), captions "
        "(the digits in reading order) and questions (sum, digit at a position, even or not).\n\n"
        f"The {len(labels)} source digits were split 80/20 before composing: train.jsonl "
        f"({n} grids) uses {cut} of them, test.jsonl ({max(n // 4, 8)} grids) only the other "
        f"{len(labels) - cut}, so test grids carry unseen handwriting.\n",
        encoding="utf-8",
    )
    return summary


__all__ = ["compose", "load_source", "make_digits"]
