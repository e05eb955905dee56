"""Speech synthesisers driven as subprocesses: espeak-ng (required for make-data) and flite (optional).

What: each engine lists its speakers (a voice name, for espeak-ng a voice plus a variant such as
`en-gb-scotland+f3`) and renders a text to WAV bytes with a given speed and pitch factor. Used
by `salesai audio make-data digits` to make spoken digit strings; the tests skip, naming
`apt-get install espeak-ng`, when the program is absent.

What it is not: no Python bindings (the command-line programs are the stable interface), no
network text-to-speech.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from salesai.errors import SalesAIError

# espeak-ng's English voices that need no extra data (the mbrola `mb/` voices do) ...
ESPEAK_VOICES = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan",
    "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc",
)  # fmt: skip
# ... times these variants (espeak-ng-data/voices/!v): male, female and formant-synthesis timbres.
ESPEAK_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "croak",
)  # fmt: skip
# flite's built-in voices (`flite -lv`); the installed binary may hold a subset.
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
INSTALL_HINT = {"espeak-ng": "apt-get install espeak-ng", "flite": "apt-get install flite"}
ENGINES = tuple(INSTALL_HINT)


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: engine and voice; its name (`engine:voice`) is what the split holds out."""

    engine: str
    voice: str

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.voice}"


def available(engine: str) -> bool:
    """Whether the synthesiser's program is on PATH."""
    return shutil.which(engine) is not None


def require(engine: str) -> None:
    """Raise a one-line SalesAIError naming the install command when `engine` is missing."""
    if engine not in ENGINES:
        raise SalesAIError(f"unknown speech engine {engine!r}; expected one of: {', '.join(ENGINES)}")
    if not available(engine):
        raise SalesAIError(f"{engine} is not installed: {INSTALL_HINT[engine]}")


def speakers(engine: str) -> list[Speaker]:
    """Every speaker of an installed engine, in a fixed order."""
    require(engine)
    if engine == "espeak-ng":
        return [Speaker(engine, f"{v}+{variant}") for v in ESPEAK_VOICES for variant in ESPEAK_VARIANTS]
    listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False).stdout
    names = set(listed.replace(":", " ").split())
    return [Speaker(engine, v) for v in FLITE_VOICES if v in names] or [Speaker(engine, "kal")]


def synthesize(speaker: Speaker, text: str, *, speed: float = 1.0, pitch: float = 1.0) -> bytes:
    """Render `text` with `speaker` to WAV bytes. `speed` and `pitch`: factors around 1.0."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.wav"
        if speaker.engine == "espeak-ng":
            words_per_minute = round(175 * speed)
            pitch_value = round(min(max(50 * pitch, 0), 99))
            cmd = ["espeak-ng", "-v", speaker.voice, "-s", str(words_per_minute), "-p", str(pitch_value)]
            cmd += ["-w", str(out), text]
        else:
            cmd = ["flite", "-voice", speaker.voice, "--setf", f"duration_stretch={1 / speed:.3f}"]
            cmd += ["--setf", f"int_f0_target_mean={100 * pitch:.1f}", "-t", text, "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.is_file():
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise SalesAIError(
                f"{speaker.name}: synthesis of {text!r} failed ({detail[0] if detail else done.returncode})"
            )
        return out.read_bytes()
