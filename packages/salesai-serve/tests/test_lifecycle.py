"""`salesai serve` as a process: SIGTERM drains and exits 0 (SD-01); the docs' engine example runs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[3] / "docs" / "serving.md"


def test_SD_01_sigterm_finishes_in_flight_and_exits_0(checkpoint: Path) -> None:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SALESAI_API_KEY": ""}
    proc = subprocess.Popen([sys.executable, "-m", "salesai", "serve", str(checkpoint), "--port", str(port),
                             "--threads", "1", "--shutdown-timeout", "20", "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "server never became ready"
            try:
                if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        body = {"model": checkpoint.name, "prompt": "hello", "max_tokens": 60, "ignore_eos": True,
                "temperature": 0, "stream": True}
        lines: list[str] = []
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if not lines and line.startswith("data: "):
                    proc.send_signal(signal.SIGTERM)  # mid-stream
                lines.append(line)
        assert lines[-1] == "data: [DONE]" or lines[-2] == "data: [DONE]"
        chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = proc.stdout.read() if proc.stdout else ""
    assert f"http://127.0.0.1:{port}/v1" in out and "no API key" in out


@pytest.mark.skipif(not DOCS.is_file(), reason="runs from a repository checkout")
def test_docs_engine_example_runs(checkpoint: Path, backends: Any) -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"The engine can be used without a server:\n\n```python\n(.*?)```", text, re.S)
    assert block is not None
    code = block.group(1).replace("salesai-quickstart/model", str(checkpoint)).replace("print(texts)", "")
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), scope)
    assert set(scope["texts"]) == {"def add(a, b):", "class Stack:"}


def test_SD_03_dockerfile_runs_salesai_serve_as_pid_1_non_root() -> None:
    """No docker here: the Dockerfile itself is checked. Exec-form ENTRYPOINT (so `salesai serve` is
    PID 1 and gets `docker stop`'s SIGTERM, no shell in between), a non-root USER, torch pinned."""
    dockerfile = Path(__file__).resolve().parents[1] / "Dockerfile"
    lines = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    entry = [x for x in lines if x.startswith("ENTRYPOINT")]
    assert len(entry) == 1 and not [x for x in lines if x.startswith("CMD")]
    argv = json.loads(entry[0][len("ENTRYPOINT"):])
    assert argv[:2] == ["salesai", "serve"] and "--api-key-file" in argv
    user = [x.split()[1] for x in lines if x.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert "torch==2.13.0" in dockerfile.read_text(encoding="utf-8")
