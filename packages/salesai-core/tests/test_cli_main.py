"""The `salesai` entry point: --version, error handling, start-up without torch."""

from __future__ import annotations

import subprocess
import sys
import types
from typing import Any

import pytest

from salesai import __version__, hookimpl
from salesai.errors import SalesAIError
from salesai.testing import register_plugin, run_cli


def _failing_command_plugin() -> types.ModuleType:
    module = types.ModuleType("failing", "A command that rejects its input.")

    @hookimpl
    def register_commands(app: Any) -> None:
        @app.command("fail")
        def fail() -> None:
            raise SalesAIError("--steps -3: expected a positive [integer] number of steps")

    module.register_commands = register_commands  # type: ignore[attr-defined]
    return module


def test_version() -> None:
    result = run_cli(["--version"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"salesai {__version__}\n", "")


def test_help_lists_builtin_commands() -> None:
    result = run_cli(["--help"])
    assert result.exit_code == 0
    assert "plugins" in result.stdout and "--version" in result.stdout and "--debug" in result.stdout


def test_salesai_error_is_one_red_line_and_exit_code_2() -> None:
    with register_plugin(_failing_command_plugin()):
        result = run_cli(["fail"])
    assert result.exit_code == 2
    assert result.stdout == ""
    # rich markup in the message is printed literally, on one line
    assert result.stderr == "error: --steps -3: expected a positive [integer] number of steps\n"


def test_debug_shows_the_traceback() -> None:
    with register_plugin(_failing_command_plugin()), pytest.raises(SalesAIError, match="positive"):
        run_cli(["--debug", "fail"])


def test_unknown_command_is_a_usage_error() -> None:
    result = run_cli(["no-such-command"])
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.stderr


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_importing_the_cli_does_not_import_torch() -> None:
    modules = _modules_after("import salesai.cli")
    assert "salesai.cli" in modules
    assert "torch" not in modules


@pytest.mark.parametrize("args", [["--help"], ["plugins", "--json"], ["--version"]])
def test_light_commands_do_not_import_torch(args: list[str]) -> None:
    code = f"from salesai.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass"
    modules = _modules_after(code)
    assert "salesai.plugins" in modules
    assert not {"torch", "onnx", "onnxruntime", "transformers"} & modules


def test_error_line_is_red_on_a_colour_terminal() -> None:
    with register_plugin(_failing_command_plugin()):
        result = run_cli(["fail"], env={"FORCE_COLOR": "1", "NO_COLOR": None, "TERM": "xterm"})
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("\x1b[31merror:\x1b[0m --steps -3")
