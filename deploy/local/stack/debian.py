"""Daemons the Debian packages start by themselves (redis-server, the 15/main cluster,
prometheus): found by owner and command line, stopped so they never hold our ports."""

from __future__ import annotations

import pwd
import shutil
import signal
from dataclasses import dataclass

from stack import procs
from stack.base import StackError
from stack.console import say

_UNITS = {"redis": "redis-server", "prometheus": "prometheus"}


def _uid(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def debian_service_of(info: procs.ProcInfo) -> str | None:
    """Which stack service ``info`` is a Debian-managed daemon of, if any."""
    if info.comm == "redis-server" and info.uid == _uid("redis"):
        return "redis"
    if info.comm == "prometheus" and info.uid == _uid("prometheus"):
        return "prometheus"
    if info.comm in ("postgres", "postmaster") and any(
        arg.startswith("config_file=/etc/postgresql/") for arg in info.cmdline
    ):
        return "postgres"
    return None


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    port: str


def online_clusters() -> list[Cluster]:
    """Debian's ``pg_lsclusters`` entries that are running."""
    if shutil.which("pg_lsclusters") is None:
        return []
    result = procs.run(["pg_lsclusters", "-h"], timeout=30)
    clusters = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3].startswith("online"):
            clusters.append(Cluster(fields[0], fields[1], fields[2]))
    return clusters


def stop_debian_daemons(service: str) -> None:
    """Stop what the Debian package of ``service`` started (no-op when nothing runs)."""
    found = [p for p in procs.iter_procs() if debian_service_of(p) == service]
    clusters = online_clusters() if service == "postgres" else []
    if not found and not clusters:
        return
    described = ", ".join(f"pid {p.pid}" for p in found) or "running"
    if not procs.is_root():
        raise StackError(
            f"{service}: the Debian package's own daemon is running ({described}); "
            f"stop it as root (e.g. `sudo service {_UNITS.get(service, 'postgresql')} stop`)"
        )
    if service == "postgres":
        for cluster in clusters:
            say(
                f"postgres: stopping Debian's cluster {cluster.version}/{cluster.name} "
                f"(port {cluster.port}) with pg_ctlcluster"
            )
            procs.run(
                ["pg_ctlcluster", cluster.version, cluster.name, "stop", "-m", "fast"],
                timeout=90,
            )
    else:
        unit = _UNITS[service]
        say(f"{service}: stopping Debian's {unit} daemon ({described}) with `service {unit} stop`")
        if shutil.which("service"):
            procs.run(["service", unit, "stop"], timeout=90)
    sig = signal.SIGINT if service == "postgres" else signal.SIGTERM
    for proc in found:
        if procs.is_alive(proc.pid):
            say(f"{service}: signalling Debian's daemon pid {proc.pid} ({proc.command})")
            procs.terminate(proc.pid, sig=sig)
