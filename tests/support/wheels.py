"""Wheels outside the checkout: the project's own, built from the files git has, and its
dependencies from a wheel cache (`/var/cache/herald/wheels`, or `~/.cache/herald/wheels`
where that cannot be written; `HERALD_TEST_WHEEL_CACHE` names another). Every install is
`--no-index` from the cache, and only what it lacks (a first run, a new dependency) is
fetched from the package index into it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from herald.shared.infra.paths import ROOT


def wheel_cache() -> Path:
    named = os.environ.get("HERALD_TEST_WHEEL_CACHE")
    for folder in [Path(named)] if named else [Path("/var/cache/herald/wheels")]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            pass
    folder = Path.home() / ".cache" / "herald" / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pip(*args: str | Path) -> None:
    """pip of the test's own environment (`--python` points it at another one)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip {' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}")


def from_cache(cache: Path, *args: str | Path, fetch: list[str | Path]) -> None:
    """`pip <args>` from the cache alone; when the cache lacks something, the index fills it
    first (`pip wheel` of `fetch`, never the project's own wheel), then it runs again."""
    offline = ("--no-index", "--find-links", cache)
    try:
        pip(*args, *offline)
    except RuntimeError:
        pip("wheel", "--wheel-dir", cache, "--find-links", cache, *fetch)
        for stale in cache.glob("herald-*.whl"):
            stale.unlink()  # the project itself is never taken from the cache
        pip(*args, *offline)


def copy_project(to: Path) -> Path:
    """The files git has (tracked, or new and not ignored), links kept as links: no build
    output or local state of this checkout gets into the wheel."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, target = ROOT / name, to / name
        if not source.is_symlink() and not source.is_file():
            continue  # deleted in the working tree
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return to


def release_source(commit: str, to: Path) -> Path:
    """The project's files at `commit` of this repository's history (`git archive`)."""
    to.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", to], input=archive, check=True)
    return to


def build_wheel(cache: Path, tmp: Path, source: Path | None = None) -> Path:
    """The wheel of `source` (by default, this checkout's files)."""
    source = source or copy_project(tmp / "source")
    backend = tomllib.loads((source / "pyproject.toml").read_text())["build-system"]["requires"]
    dist = tmp / "dist"
    from_cache(cache, "wheel", "--no-deps", "--wheel-dir", dist, source, fetch=backend)
    (wheel,) = dist.glob("herald-*.whl")
    return wheel


def install(cache: Path, wheel: Path, venv: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    # No bytecode compiled up front (4 s of the install): each module is compiled when a
    # process first imports it.
    from_cache(cache, "--python", python, "install", "--no-compile", wheel, fetch=[wheel])
    return python
