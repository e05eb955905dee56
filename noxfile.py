"""Every job of the repository as a nox session: `pip install nox && nox` runs the default ones.

Sessions (`nox -l` lists them):
- `tests(package=...)`: one per distribution; installs torch, then salesai-core plus that
  package, non-editable ("as a user would"), and runs the package's tests.
- `integration`: every package, the docs example plugin and a deliberately broken plugin;
  runs tests/ (cross-package), the core's registry-wide conformance tests and the example's tests.
- `lint` (ruff), `typecheck` (mypy), `docs` (mkdocs build --strict).
- `quickstart` (the main job) and `bench` (benchmarks) are not defaults.

torch is installed first and pinned (`SALESAI_TORCH`, default torch==2.13.0): an unpinned
requirement pulls a multi-GB CUDA build. Sessions that install no salesai package (lint,
docs) do not need torch and skip it. Tool versions are pinned so that a new release of a
linter cannot turn the build red on its own.
"""

from __future__ import annotations

import glob
import os

import nox

nox.options.sessions = ["tests", "integration", "lint", "typecheck", "docs"]
# pip through virtualenv, never uv: pip finds the local torch wheel and honours pip's constraints.
nox.options.default_venv_backend = "virtualenv"
nox.options.error_on_external_run = True

TORCH_SPEC = os.environ.get("SALESAI_TORCH", "torch==2.13.0")
PACKAGES = {  # session parameter -> distribution directory under packages/
    "core": "salesai-core",
    "vision": "salesai-vision",
    "audio": "salesai-audio",
    "rl": "salesai-rl",
    "serve": "salesai-serve",
}
EXAMPLE_PLUGIN = "docs/plugins/salesai-example"
BROKEN_PLUGIN = "tests/fixtures/salesai-broken"
RUFF = "ruff==0.17.6"
MYPY = "mypy==2.4.1"
MKDOCS = "mkdocs==1.6.1"
PYTEST_ARGS = ("-p", "no:cacheprovider")


def _path(package: str) -> str:
    return f"./packages/{PACKAGES[package]}"


def _install_torch(session: nox.Session) -> None:
    session.install(TORCH_SPEC)


def _pytest(session: nox.Session, *paths: str) -> None:
    """Run pytest on `paths` with single-threaded torch (2 shared cores, many processes)."""
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    session.run("pytest", *PYTEST_ARGS, *paths, *session.posargs, env=env)


@nox.session
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """One package's tests, against core + that package installed non-editable."""
    _install_torch(session)
    if package == "core":
        session.install(f"{_path('core')}[hf,test]")
    else:
        extras = "test,hf,data" if package == "vision" else "test"  # vision: ViTModel parity, digits data
        # serve: its media-part tests build tiny-vision / tiny-audio models (salesai-vision / -audio encoders)
        peers = [_path("vision"), _path("audio")] if package == "serve" else []
        session.install(f"{_path('core')}[test]", f"{_path(package)}[{extras}]", *peers)
    _pytest(session, f"packages/{PACKAGES[package]}/tests")


@nox.session
def integration(session: nox.Session) -> None:
    """Everything installed together, plus the example plugin and a broken one."""
    _install_torch(session)
    session.install(
        f"{_path('core')}[test]",
        *(_path(p) for p in PACKAGES if p != "core"),
        EXAMPLE_PLUGIN,
        BROKEN_PLUGIN,
    )
    _pytest(session, "tests", "packages/salesai-core/tests/test_conformance.py", f"{EXAMPLE_PLUGIN}/tests")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check on the whole repository."""
    session.install(RUFF)
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on every package's src/ (and the example plugin's), with everything installed."""
    _install_torch(session)
    session.install(
        MYPY, f"{_path('core')}[test]", *(_path(p) for p in PACKAGES if p != "core"), EXAMPLE_PLUGIN
    )
    sources = [f"packages/{d}/src" for d in PACKAGES.values()] + [f"{EXAMPLE_PLUGIN}/src"]
    session.run("mypy", *sources)


@nox.session
def docs(session: nox.Session) -> None:
    """mkdocs build --strict: a broken link or a missing page fails."""
    session.install(MKDOCS)
    session.run("mkdocs", "build", "--strict", "--site-dir", session.create_tmp() + "/site")


@nox.session
def quickstart(session: nox.Session) -> None:
    """The main job, `salesai quickstart`, as the README runs it (not a default session)."""
    _install_torch(session)
    session.install(_path("core"))
    session.run("salesai", "quickstart", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Every bench/*.py script, each printing machine-readable results (not a default session)."""
    scripts = sorted(glob.glob("bench/*.py"))
    if not scripts:
        session.error("bench/ holds no benchmark scripts yet")
    _install_torch(session)
    extras = {"rl": "[bench]", "vision": "[hf,data]"}  # the referees the benchmarks compare with
    plugins = (_path(p) + extras.get(p, "") for p in PACKAGES if p != "core")
    session.install(f"{_path('core')}[hf,bench]", *plugins)
    for script in scripts:
        session.run("python", script, *session.posargs)
