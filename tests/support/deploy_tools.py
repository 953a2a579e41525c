"""The tools the deployment tests need, made on first use and kept outside the checkout
(`/var/cache/herald/<name>-<version>/`; `HERALD_TEST_TOOL_CACHE` names another folder), so
a fresh clone builds them once and later runs find them:

- Helm, built from the Go module proxy with the machine's Go;
- a Debian root file system with Python 3.11 (debootstrap), the base of the image where no
  registry is reachable, imported into podman;
- podman and runc from Debian's packages, with a containers.conf that works as root here.

Each is made in a temporary sibling folder and renamed into place when complete, under a
lock, so an interrupted build is made again and two runs never build it at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stack.install import apt_install

HELM_VERSION = "3.22.0"
DEBIAN = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_IMAGE = f"localhost/herald-base:{DEBIAN}-python3"
SLACK = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale")
# podman as root on these machines: runc, cgroupfs, no default ulimits.
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\n'


def cache_root() -> Path:
    root = Path(os.environ.get("HERALD_TEST_TOOL_CACHE", "/var/cache/herald"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def run(
    argv: list[str | Path], *, timeout: float = 900, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,  # type: ignore[call-overload]
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))} exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


@contextmanager
def locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def once(name: str, make: Callable[[Path], None]) -> Path:
    """`<cache>/<name>`, made by `make(folder)` the first time."""
    folder = cache_root() / name
    if folder.is_dir():
        return folder
    with locked(folder.with_name(f".{name}.lock")):
        if not folder.is_dir():
            partial = folder.with_name(f"{name}.tmp")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            make(partial)
            partial.rename(folder)
    return folder


def ensure_debian_packages(*commands: str, packages: tuple[str, ...]) -> None:
    if any(shutil.which(c) is None for c in commands):
        apt_install(packages, cache_root() / "apt-get.log")


def helm() -> Path:
    """Helm 3, built with `go install` (about 3.5 minutes the first time)."""

    def build(into: Path) -> None:
        go = shutil.which("go") or "/usr/local/go/bin/go"
        cmd = f"helm.sh/helm/v3/cmd/helm@v{HELM_VERSION}"
        run([go, "install", cmd], env=os.environ | {"GOBIN": str(into)}, timeout=1800)

    return once(f"helm-{HELM_VERSION}", build) / "helm"


def debian_rootfs() -> Path:
    """A tarball of Debian's minimal root file system with Python 3.11 and its venv module
    (debootstrap from Debian's mirror, about a minute)."""

    def build(into: Path) -> None:
        ensure_debian_packages("debootstrap", packages=("debootstrap",))
        root = into / "rootfs"
        include = "--include=python3,python3-venv"
        run(["debootstrap", "--variant=minbase", include, DEBIAN, root, DEBIAN_MIRROR])
        for slack in SLACK:  # as the slim images do: no package lists, docs or translations
            shutil.rmtree(root / slack)
            (root / slack).mkdir()
        run(["tar", "-C", root, "-cf", into / "rootfs.tar", "."])
        shutil.rmtree(root)

    return once(f"debian-{DEBIAN}-python3", build) / "rootfs.tar"


class Podman:
    """Debian's podman as root: runc, cgroupfs, the containers.conf above; images in the
    default root storage (/var/lib/containers)."""

    def __init__(self) -> None:
        ensure_debian_packages("podman", "runc", packages=("podman", "runc"))
        conf = cache_root() / "podman" / "containers.conf"
        conf.parent.mkdir(exist_ok=True)
        if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
            conf.write_text(CONTAINERS_CONF)
        self.env = os.environ | {"CONTAINERS_CONF": str(conf)}

        self.argv = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]

    def run(
        self, *args: str | Path, timeout: float = 900, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`podman <args>`; `env` adds to podman's environment (for `--env NAME`)."""
        return run([*self.argv, *args], env=self.env | (env or {}), timeout=timeout)

    def __call__(self, *args: str | Path, timeout: float = 900) -> str:
        return self.run(*args, timeout=timeout).stdout.strip()

    def exists(self, image: str) -> bool:
        argv = [*self.argv, "image", "exists", image]
        return subprocess.run(argv, env=self.env, capture_output=True).returncode == 0

    def base_image(self) -> str:
        """The Debian base, imported from the cached root file system once."""
        if not self.exists(BASE_IMAGE):
            self("import", debian_rootfs(), BASE_IMAGE)
        return BASE_IMAGE
