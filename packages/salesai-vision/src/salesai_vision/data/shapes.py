"""`shapes`: two coloured shapes above/below or side by side, with captions and questions.

Each 64x64 image holds two distinct objects (shape x colour); the caption names the top (or
left) object first: "a red circle above a blue square", "an orange cross to the left of a
yellow diamond". Questions with one-word answers ask a colour, a shape, a relation or a count.

Splits (written to README.md beside the data):
- `train.jsonl`: triples (object, object, relation) outside the held-out sets;
- `test.jsonl`: held-out triples, every object in them seen in training;
- `test_objects.jsonl`: images holding a held-out object, a shape-colour pair never seen in
  training although its shape and its colour are.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from salesai_vision.data import CAPTION_PROMPT, prepare_out, write_jsonl

SIZE = 64
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (225, 195, 20),
    "purple": (140, 60, 180),
    "orange": (240, 130, 20),
}
RELATIONS = ("above", "left")  # the first-named object is at the top / on the left
Obj = tuple[str, str]  # (colour, shape)


def _article(obj: Obj) -> str:
    return "an" if obj[0][0] in "aeiou" else "a"


def caption(a: Obj, b: Obj, relation: str) -> str:
    link = "above" if relation == "above" else "to the left of"
    return f"{_article(a)} {a[0]} {a[1]} {link} {_article(b)} {b[0]} {b[1]}"


def parse_caption(text: str) -> tuple[str, str, str, str, str] | None:
    """(colour, shape, relation, colour, shape) of a canonical caption; None for any other text."""
    words = text.split()
    link = words[3:7] == ["to", "the", "left", "of"]
    if len(words) != (10 if link else 7) or not (link or words[3] == "above"):
        return None
    a, b = words[1:3], words[-2:]
    return a[0], a[1], "left" if link else "above", b[0], b[1]


def caption_parts(references: list[str], completions: list[str]) -> dict[str, float]:
    """Accuracy of each part of the captions: colours, shapes (both objects) and the relation.

    What an exact-match score hides early in training: which words the image already decides
    (a completion that is not a canonical caption counts as wrong in every part)."""
    hits = {"colour": 0, "shape": 0, "relation": 0}
    for ref, got in zip(references, completions, strict=True):
        want, have = parse_caption(ref), parse_caption(got)
        if want is None:
            raise ValueError(f"not a shapes caption: {ref!r}")
        if have is None:
            continue
        hits["colour"] += (want[0] == have[0]) + (want[3] == have[3])
        hits["shape"] += (want[1] == have[1]) + (want[4] == have[4])
        hits["relation"] += want[2] == have[2]
    n = max(len(references), 1)
    return {"colour": hits["colour"] / (2 * n), "shape": hits["shape"] / (2 * n),
            "relation": hits["relation"] / n}


def draw(draw_: Any, obj: Obj, cx: float, cy: float, r: float) -> None:
    """Draw one object centred at (cx, cy) with half-size r."""
    fill = COLOURS[obj[0]]
    shape = obj[1]
    if shape == "circle":
        draw_.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw_.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "triangle":
        draw_.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    elif shape == "diamond":
        draw_.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    else:  # cross
        w = r / 2.5
        draw_.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw_.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)


def render(a: Obj, b: Obj, relation: str, rng: random.Random) -> Any:
    """A 64x64 RGB image: `a` top/left, `b` bottom/right, sizes and positions jittered."""
    from PIL import Image, ImageDraw

    grey = rng.randint(225, 255)
    image = Image.new("RGB", (SIZE, SIZE), (grey, grey, grey))
    d = ImageDraw.Draw(image)
    half = SIZE / 2
    for k, obj in enumerate((a, b)):
        r = rng.uniform(8, 12)
        along = half * k + half / 2 + rng.uniform(-2, 2)  # centre in its half
        across = rng.uniform(r + 2, SIZE - r - 2)
        cx, cy = (across, along) if relation == "above" else (along, across)
        draw(d, obj, cx, cy, r)
    return image


def questions(a: Obj, b: Obj, relation: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """(task, question, answer) candidates for one image."""
    first, second = ("top", "bottom") if relation == "above" else ("left", "right")
    which = rng.randrange(2)
    where, obj, other = (first, a, b) if which == 0 else (second, b, a)
    rel_word = {("above", 0): "above", ("above", 1): "below", ("left", 0): "left", ("left", 1): "right"}
    colour = rng.choice(sorted(COLOURS))
    count = [a[0], b[0]].count(colour)
    return [
        ("colour", f"<image> What colour is the {where} shape?", obj[0]),
        ("shape", f"<image> What shape is the {where} object?", obj[1]),
        ("relation", f"<image> Where is the {obj[0]} {obj[1]} relative to the {other[0]} {other[1]}?",
         rel_word[(relation, which)]),
        ("count", f"<image> How many {colour} shapes are there?", str(count)),
    ]


def splits(seed: int) -> tuple[list[Obj], list[tuple[Obj, Obj, str]], list[tuple[Obj, Obj, str]]]:
    """(held-out objects, train triples, held-out triples) for a seed."""
    rng = random.Random(seed)
    objects = [(c, s) for c in COLOURS for s in SHAPES]
    held_objects = rng.sample(objects, 2)
    seen = [o for o in objects if o not in held_objects]
    triples = [(a, b, r) for a in seen for b in seen if a != b for r in RELATIONS]
    rng.shuffle(triples)
    n_held = len(triples) // 10
    return held_objects, triples[n_held:], triples[:n_held]


def make_shapes(out: str | Path, n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Write the shapes data set (n training images, n // 4 per test split) into `out`."""
    d = prepare_out(out)
    rng = random.Random(seed + 1)
    held_objects, train_triples, test_triples = splits(seed)
    objects = [(c, s) for c in COLOURS for s in SHAPES]
    counter = 0
    summary: dict[str, Any] = {"dataset": "shapes", "seed": seed, "files": {}}

    def one(a: Obj, b: Obj, relation: str, split: str) -> list[dict[str, Any]]:
        nonlocal counter
        name = f"images/{counter:05d}.png"
        counter += 1
        render(a, b, relation, rng).save(d / name)
        records = [{"prompt": CAPTION_PROMPT, "response": caption(a, b, relation), "image": name,
                    "task": "caption", "split": split}]
        task, q, answer = rng.choice(questions(a, b, relation, rng))
        records.append({"prompt": q, "response": answer, "image": name, "task": task, "split": split})
        return records

    def novel() -> tuple[Obj, Obj, str]:
        a = rng.choice(held_objects)
        b = rng.choice([o for o in objects if o != a])
        pair = (a, b) if rng.random() < 0.5 else (b, a)
        return pair[0], pair[1], rng.choice(RELATIONS)

    n_test = max(n // 4, 8)
    plan = {
        "train.jsonl": ("train", [train_triples[i % len(train_triples)] for i in range(n)]),
        "test.jsonl": ("heldout_triples", [test_triples[i % len(test_triples)] for i in range(n_test)]),
        "test_objects.jsonl": ("heldout_objects", [novel() for _ in range(n_test)]),
    }
    for filename, (split, items) in plan.items():
        rng.shuffle(items)
        records = [r for a, b, rel in items for r in one(a, b, rel, split)]
        summary["files"][filename] = {"images": len(items), "records": write_jsonl(d / filename, records)}
    held = ", ".join(f"{c} {s}" for c, s in held_objects)
    (d / "README.md").write_text(
        f"# shapes (seed {seed})\n\n"
        f"64x64 PNG images of two objects ({len(SHAPES)} shapes x {len(COLOURS)} colours), captions and "
        "questions as prompt/response records; `image` paths are relative to this directory.\n\n"
        f"- train.jsonl: {summary['files']['train.jsonl']['images']} images, "
        f"{len(train_triples)} (object, object, relation) triples\n"
        f"- test.jsonl: {summary['files']['test.jsonl']['images']} images of {len(test_triples)} "
        "held-out triples (every object seen in training)\n"
        f"- test_objects.jsonl: {summary['files']['test_objects.jsonl']['images']} images holding a "
        f"held-out object never seen in training: {held}\n",
        encoding="utf-8",
    )
    summary["held_out_objects"] = [f"{c} {s}" for c, s in held_objects]
    return summary


__all__ = ["caption", "caption_parts", "make_shapes", "parse_caption", "render", "splits"]
