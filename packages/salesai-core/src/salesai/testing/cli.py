"""`run_cli`: run the `salesai` command line in-process and capture what it prints.

It goes through `salesai.cli.main`, exactly like the console script, so commands added
by plugins (including ones registered with `register_plugin`) are present. Unexpected
exceptions propagate to the test; a `SalesAIError` becomes exit code 2 and one stderr line,
as for a user.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CliResult:
    """What one `salesai` invocation did."""

    exit_code: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _environ(env: Mapping[str, str | None] | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env or {}}
    try:
        for key, value in (env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def run_cli(
    args: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
) -> CliResult:
    """Run `salesai *args` in this process; returns exit code, stdout and stderr.

    `env` sets (or, with None, removes) environment variables for the call. Plugins are
    loaded once per process: to test `SALESAI_LOAD_PLUGINS` and friends, set them and call
    `salesai.plugins.reset()` first, or run `salesai` in a subprocess.
    """
    from salesai.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    stdin = io.StringIO(input or "")
    with _environ(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        saved_stdin, sys.stdin = sys.stdin, stdin
        try:
            main(list(args))
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:  # sys.exit("message"): printed to stderr, exit status 1
                print(exc.code, file=sys.stderr)
                code = 1
        finally:
            sys.stdin = saved_stdin
    return CliResult(code, out.getvalue(), err.getvalue())


def installed_plugin(distribution: str) -> dict[str, Any]:
    """The `salesai plugins --json` record of `distribution`; fails unless exactly one loaded cleanly."""
    result = run_cli(["plugins", "--json"])
    assert result.exit_code == 0, result.stderr
    infos = [i for i in json.loads(result.stdout) if i["distribution"] == distribution]
    assert len(infos) == 1, f"{distribution}: expected one plugin record, got {infos}"
    info: dict[str, Any] = infos[0]
    assert info["error"] is None, f"{distribution}: {info['error']}"
    assert info["builtin"] is False
    return info
