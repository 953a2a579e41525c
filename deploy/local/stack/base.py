"""What every service of the local stack provides to the manager."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

from herald.shared.errors import HeraldError
from stack import procs
from stack.config import Endpoint, StackConfig

T = TypeVar("T")


class StackError(HeraldError):
    """A stack command failed; ``log`` names the file to read for details."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


class Service(ABC):
    name: str  # a class attribute, or per instance (the Kafka nodes)
    env_var: ClassVar[str]  # the setting that picks this service's address
    ready_timeout: ClassVar[float] = 30.0

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg

    # ------------------------------------------------------------ identity
    @property
    def endpoint(self) -> Endpoint:
        return self.cfg.endpoint(self.name)

    @property
    def local(self) -> bool:
        """False when the settings name a server elsewhere: the stack only checks it."""
        return self.endpoint.local

    @property
    def address(self) -> str:
        return self.endpoint.address

    @property
    def ports(self) -> tuple[int, ...]:
        return self.cfg.ports(self.name)

    @property
    def log_path(self) -> Path:
        return self.cfg.log_path(self.name)

    @property
    def pid_path(self) -> Path:
        return self.cfg.pid_path(self.name)

    @abstractmethod
    def workdir(self) -> Path:
        """The running daemon's working directory; tells our process from anyone else's."""

    def owns(self, info: procs.ProcInfo) -> bool:
        cwd = info.cwd()
        return cwd is not None and cwd == self.workdir().resolve()

    # ------------------------------------------------------------ lifecycle
    def missing_packages(self) -> list[str]:
        """Debian packages to install before this service can start."""
        return []

    def prepare(self) -> None:
        """Write configs, initialise data (idempotent); runs before every start."""
        return None

    @abstractmethod
    def argv(self) -> list[str]: ...

    def run_as(self) -> procs.RunAs | None:
        return None

    def env(self) -> dict[str, str] | None:
        return None

    def start(self) -> int:
        return procs.spawn(
            self.argv(),
            cwd=self.workdir(),
            log=self.log_path,
            run_as=self.run_as(),
            env=self.env(),
        )

    def stop(self, pid: int) -> bool:
        return procs.terminate(pid)

    @abstractmethod
    def ping(self) -> None:
        """Return when the daemon answers; raise any exception when it does not (yet)."""

    def after_ready(self) -> None:
        """Runs once the daemon answers (e.g. create the role and database)."""
        return None

    @abstractmethod
    def version(self) -> str:
        """The running server's version; raises when it does not answer."""

    def installed_version(self) -> str | None:
        """The version that would run, known without a running server (if cheap)."""
        return None


def retry_until(
    deadline: float, attempt: Callable[[], T], *, alive: Callable[[], bool] | None = None
) -> T:
    """Call ``attempt`` until it returns without raising; re-raise after ``deadline``."""
    while True:
        try:
            return attempt()
        except Exception:
            if time.monotonic() >= deadline or (alive is not None and not alive()):
                raise
        time.sleep(0.5)
