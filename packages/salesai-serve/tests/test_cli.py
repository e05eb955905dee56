"""`salesai serve` from the command line: options, and refusals before anything loads (AUTH-01, SEC-02)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from salesai.testing import run_cli


def test_serve_command_is_registered_with_its_options() -> None:
    result = run_cli(["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--backend", "--host", "--port", "--api-key-file", "--max-batch-size", "--max-queue",
                   "--allow-unauthenticated", "--shutdown-timeout", "--rate-limit", "--media-url-host",
                   "--media-url-max-bytes", "--media-url-timeout", "--read-timeout", "--max-request-tokens",
                   "--max-prefill-tokens", "--max-logprobs"):
        assert option in result.stdout
    assert "127.0.0.1" in result.stdout  # SEC-02: the default bind address


def test_options_reach_the_settings(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import salesai_serve.cli

    got: dict[str, Any] = {}
    monkeypatch.setattr(salesai_serve.cli, "run_server", lambda settings, loader, log_level: got.update(
        settings=settings))
    result = run_cli(["serve", str(checkpoint), "--media-url-host", "img.example.com", "--media-url-host",
                      "10.0.0.5:8080", "--media-url-max-bytes", "1000", "--media-url-timeout", "2",
                      "--read-timeout", "7", "--max-request-tokens", "100", "--max-prefill-tokens", "1",
                      "--max-logprobs", "2"], env={"SALESAI_API_KEY": None})
    assert result.exit_code == 0, result.stderr
    s = got["settings"]
    assert s.media_url_hosts == ["img.example.com", "10.0.0.5:8080"] and s.media_url_max_bytes == 1000
    assert (s.media_url_timeout_s, s.read_timeout_s, s.max_request_tokens) == (2.0, 7.0, 100)
    assert (s.max_prefill_tokens, s.max_logprobs) == (1, 2)
    result = run_cli(["serve", str(checkpoint), "--media-url-host", "http://img.example.com/"])
    assert result.exit_code == 2 and "--media-url-host: expected a host name" in result.stderr


def test_AUTH_01_public_bind_without_key_refuses_to_start(checkpoint: Path) -> None:
    result = run_cli(["serve", str(checkpoint), "--host", "0.0.0.0"], env={"SALESAI_API_KEY": None})
    assert result.exit_code == 2
    assert "--host 0.0.0.0: serving beyond this machine needs an API key" in result.stderr


def test_bad_inputs_are_one_line_errors(checkpoint: Path, tmp_path: Path) -> None:
    result = run_cli(["serve", str(checkpoint), "--backend", "tensorrt"])
    assert result.exit_code == 2 and "--backend 'tensorrt': expected one of pytorch" in result.stderr
    result = run_cli(["serve", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "checkpoint or export directory not found" in result.stderr
    result = run_cli(["serve", str(checkpoint), "--backend", "onnxruntime"])
    assert result.exit_code == 2 and "expected an ONNX export (manifest.json)" in result.stderr
    empty = tmp_path / "keys.txt"
    empty.write_text("# no keys\n")
    result = run_cli(["serve", str(checkpoint), "--api-key-file", str(empty)])
    assert result.exit_code == 2 and "expected one API key per line" in result.stderr


def test_api_keys_from_file_and_environment(tmp_path: Path) -> None:
    from salesai_serve.settings import read_api_keys

    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\nkey-one\n\n  key-two  \n")
    assert read_api_keys(str(keys), "key-three, key-four") == ["key-one", "key-two", "key-three", "key-four"]


def test_training_run_directory_serves_its_latest_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    from salesai_serve.backends import load_backend
    from salesai_serve.backends.torch_backend import resolve_checkpoint

    run = tmp_path / "my-run"
    shutil.copytree(checkpoint, run / "step-000010")
    (run / "latest").write_text("step-000010\n")
    assert resolve_checkpoint(run) == run / "step-000010"
    backend = load_backend("pytorch", run, threads=1)
    assert backend.name == "pytorch" and backend.max_seq_len == 96
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(["serve", str(empty)])
    assert result.exit_code == 2 and "no checkpoint found" in result.stderr
