"""What the ops page's browser tests drive: Debian's chromium (apt-get; a browser download
is never needed) and axe-core (npm), cached outside the checkout. `herald stack up`
installs whichever is absent; a failure here is reported and leaves the stack up (the
browser tests then fail, naming what is missing, and never skip under CI=true)."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from stack import procs
from stack.base import StackError
from stack.config import StackConfig
from stack.console import say
from stack.install import apt_install

CHROMIUM = Path("/usr/bin/chromium")
AXE_CORE_VERSION = "4.14.1"
CACHE = Path(os.environ.get("HERALD_CACHE_DIR", "/var/cache/herald"))
AXE_DIR = CACHE / f"axe-core-{AXE_CORE_VERSION}"
AXE_SCRIPT = AXE_DIR / "axe.min.js"


def missing() -> list[str]:
    """What the browser tests would miss, in words."""
    out = []
    if not CHROMIUM.exists():
        out.append(f"{CHROMIUM} (Debian package chromium)")
    if not AXE_SCRIPT.exists():
        out.append(f"{AXE_SCRIPT} (npm package axe-core@{AXE_CORE_VERSION})")
    return out


def ensure_chromium(cfg: StackConfig) -> None:
    packages = [] if CHROMIUM.exists() else ["chromium", "fonts-liberation"]
    if shutil.which("npm") is None and not AXE_SCRIPT.exists():
        packages.append("npm")
    if packages:
        apt_install(packages, cfg.logs_dir / "install.log")


def ensure_axe_core(cfg: StackConfig) -> None:
    """`npm pack` the pinned axe-core and keep its axe.min.js under the cache directory."""
    if AXE_SCRIPT.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise StackError("axe-core: `npm` is missing (Debian package npm)")
    log = cfg.logs_dir / "install.log"
    say(f"installing axe-core {AXE_CORE_VERSION} into {AXE_DIR} with npm (log: {log})")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        result = procs.run(
            [npm, "pack", f"axe-core@{AXE_CORE_VERSION}", "--pack-destination", tmp],
            log=log,
            cwd=Path(tmp),
            timeout=600,
        )
        tarballs = list(Path(tmp).glob("axe-core-*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise StackError("axe-core: npm pack failed", log)
        with tarfile.open(tarballs[0]) as archive:
            archive.extractall(tmp, filter="data")
        partial = Path(tmp) / "package"
        if not (partial / "axe.min.js").is_file():
            raise StackError("axe-core: the package holds no axe.min.js", log)
        shutil.rmtree(AXE_DIR, ignore_errors=True)
        partial.rename(AXE_DIR)


def ensure_browser_tools(cfg: StackConfig) -> None:
    try:
        ensure_chromium(cfg)
        ensure_axe_core(cfg)
    except StackError as exc:
        say(f"WARNING: the ops page's browser tests will fail: {exc}")
