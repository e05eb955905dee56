"""`salesai audio make-data digits`: files, records, the held-out-speaker split, missing synthesiser."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from salesai.testing import run_cli
from salesai_audio.digits import split_speakers
from salesai_audio.io import read_audio
from salesai_audio.synth import Speaker

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed: apt-get install espeak-ng"
)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@needs_espeak
def test_make_data_digits(tmp_path: Path) -> None:
    out = tmp_path / "speech"
    result = run_cli(["audio", "make-data", "digits", "--out", str(out), "--n", "10", "--seed", "3"])
    assert result.exit_code == 0, result.stderr
    assert "wrote 8 train and 2 test clips" in result.stdout
    train, test = _records(out / "train.jsonl"), _records(out / "test.jsonl")
    assert len(train) == 8 and len(test) == 2
    for record in train + test:
        assert record["prompt"] == "<audio>"
        digits = record["response"].split(" ")
        assert 1 <= len(digits) <= 4 and all(d in "0123456789" and len(d) == 1 for d in digits)
        samples = read_audio(out / record["audio"])  # 16 kHz mono WAV, relative to the JSONL
        assert 0.2 < samples.shape[0] / 16000 < 4.0
        assert record["speaker"].startswith("espeak-ng:")
    assert not {r["speaker"] for r in train} & {r["speaker"] for r in test}
    readme = (out / "README.md").read_text()
    assert "held-out speakers" in readme and test[0]["speaker"] in readme
    # same seed, same data
    again = tmp_path / "again"
    assert (
        run_cli(["audio", "make-data", "digits", "--out", str(again), "--n", "10", "--seed", "3"]).exit_code
        == 0
    )
    assert (again / "train.jsonl").read_text() == (out / "train.jsonl").read_text()
    assert (again / "clips" / "00004.wav").read_bytes() == (out / "clips" / "00004.wav").read_bytes()


def test_missing_synthesiser_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = run_cli(["audio", "make-data", "digits", "--out", str(tmp_path / "x"), "--n", "4"])
    assert result.exit_code == 2
    assert "espeak-ng is not installed: apt-get install espeak-ng" in result.stderr
    assert not (tmp_path / "x").exists()


def test_bad_arguments(tmp_path: Path) -> None:
    result = run_cli(["audio", "make-data", "letters", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown data set 'letters'; expected: digits" in result.stderr
    result = run_cli(["audio", "make-data", "digits", "--out", str(tmp_path / "x"), "--engines", "sam"])
    assert result.exit_code == 2 and "unknown speech engine 'sam'" in result.stderr
    assert not (tmp_path / "x").exists()


def test_split_holds_out_speakers_per_engine() -> None:
    speakers = [Speaker("espeak-ng", f"v{i}") for i in range(20)] + [
        Speaker("flite", f"f{i}") for i in range(3)
    ]
    train, test = split_speakers(speakers, seed=0)
    assert not set(train) & set(test) and set(train) | set(test) == set(speakers)
    assert sum(s.engine == "espeak-ng" for s in test) == 4
    assert sum(s.engine == "flite" for s in test) == 1
    assert split_speakers(speakers, seed=0) == (train, test)


@needs_espeak
@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed: apt-get install flite")
def test_make_data_with_flite_holds_out_a_voice_per_engine(tmp_path: Path) -> None:
    out = tmp_path / "mixed"
    args = ["audio", "make-data", "digits", "--out", str(out), "--n", "12", "--engines", "espeak-ng,flite"]
    result = run_cli(args)
    assert result.exit_code == 0, result.stderr
    readme = (out / "README.md").read_text()
    held_out = readme.split("at least one): ")[1]
    assert "flite:" in held_out and "espeak-ng:" in held_out
    records = _records(out / "train.jsonl") + _records(out / "test.jsonl")
    for record in records:
        assert read_audio(out / record["audio"]).shape[0] > 1600
    flite_clips = [r for r in records if r["speaker"].startswith("flite:")]
    assert 3 <= len(flite_clips) <= 9  # engines are drawn equally often (binomial(12, 1/2))
