"""Processes and ports on Linux: spawning detached daemons, pid files, who holds a port."""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Daemons this process spawned: kept so they are reaped (no zombies while a test that
# restarts a service still runs) and so Popen does not warn about them on collection.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class RunAs:
    """An OS user a child process switches to (only when we are root)."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, name: str) -> RunAs:
        entry = pwd.getpwnam(name)
        return cls(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(base if base is not None else os.environ)
        env.update(HOME=self.home, USER=self.name, LOGNAME=self.name)
        return env


def is_root() -> bool:
    return os.geteuid() == 0


def _as_user(run_as: RunAs | None) -> dict[str, Any]:
    """Popen's arguments to switch user and drop supplementary groups (none: stay)."""
    if run_as is None:
        return {}
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}


# ---------------------------------------------------------------- /proc


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    comm: str
    cmdline: tuple[str, ...]
    uid: int
    state: str

    @property
    def command(self) -> str:
        return " ".join(self.cmdline) if self.cmdline else f"[{self.comm}]"

    def cwd(self) -> Path | None:
        try:
            return Path(os.readlink(f"/proc/{self.pid}/cwd"))
        except OSError:
            return None


def proc_info(pid: int) -> ProcInfo | None:
    base = Path("/proc") / str(pid)
    try:
        stat = (base / "stat").read_text()
        raw_cmdline = (base / "cmdline").read_bytes()
        status = (base / "status").read_text()
    except (OSError, ValueError):
        return None
    # stat: "pid (comm) S ..." — comm may contain spaces and parentheses
    comm = stat[stat.find("(") + 1 : stat.rfind(")")]
    state = stat[stat.rfind(")") + 2 : stat.rfind(")") + 3]
    uid = -1
    for line in status.splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
            break
    cmdline = tuple(part.decode(errors="replace") for part in raw_cmdline.split(b"\0") if part)
    return ProcInfo(pid, comm, cmdline, uid, state)


def iter_procs() -> Iterator[ProcInfo]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = proc_info(int(entry))
            if info is not None:
                yield info


def is_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    info = proc_info(pid)
    if info is None:
        return False
    if info.state in ("Z", "X"):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


# ---------------------------------------------------------------- pid files


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def remove_pid(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# ---------------------------------------------------------------- running things


def rotate_log(path: Path, max_bytes: int = 64 * 1024 * 1024) -> None:
    """Move a log aside (``.1``) once it grew past ``max_bytes``; called before a start."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > max_bytes:
            path.replace(path.with_name(path.name + ".1"))


@contextlib.contextmanager
def _output(log: Path | None, what: str, argv: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Popen's arguments to append a command's output to ``log`` after a line naming it,
    or, without a log, to capture it."""
    if log is None:
        yield {"capture_output": True}
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {what}: {' '.join(argv)}\n".encode())
        out.flush()
        yield {"stdout": out, "stderr": subprocess.STDOUT}


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    run_as: RunAs | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start a daemon detached from this process (own session), output appended to ``log``."""
    rotate_log(log)
    with _output(log, "starting", argv) as output:
        proc = subprocess.Popen(
            list(argv),
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=dict(env) if env is not None else None,
            **_as_user(run_as),
            **output,
        )
    _children[proc.pid] = proc
    return proc.pid


def run(
    argv: Sequence[str],
    *,
    run_as: RunAs | None = None,
    log: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; output appended to ``log`` (or captured)."""
    with _output(log, "running", argv) as output:
        return subprocess.run(
            list(argv),
            cwd=str(cwd) if cwd is not None else "/",
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
            **_as_user(run_as),
            **output,
        )


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    return not is_alive(pid)


def send_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def terminate(pid: int, *, sig: int = signal.SIGTERM, grace: float = 30.0) -> bool:
    """Signal ``pid``, wait up to ``grace`` seconds, then SIGKILL. True when it is gone."""
    if not is_alive(pid):
        return True
    send_signal(pid, sig)
    if wait_gone(pid, grace):
        return True
    send_signal(pid, signal.SIGKILL)
    return wait_gone(pid, 10.0)


# ---------------------------------------------------------------- ports


def port_busy(port: int, host: str = "127.0.0.1") -> bool:
    """True when a listener would keep us from binding ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A = LISTEN
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listening_pids(port: int) -> list[int]:
    """Processes holding a listening TCP socket on ``port`` (those we may inspect)."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return []
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fd_dir = f"/proc/{entry}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") in wanted:
                    found.append(int(entry))
                    break
            except OSError:
                continue
    return found


def tail(path: Path, lines: int = 20) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode(errors="replace")
    except OSError:
        return []
    return data.splitlines()[-lines:]
