"""``herald stack up | down | status``: the local infrastructure, idempotently, without Docker."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import signal
import time
from collections.abc import Iterator, Sequence

from herald.shared.errors import ConfigError
from herald.shared.infra.settings import Settings
from stack import browser, debian, install, procs
from stack.base import Service, StackError, retry_until
from stack.config import StackConfig
from stack.console import say, show_lines
from stack.kafka_broker import Kafka
from stack.kafka_cluster import (
    SECURE_OFFSET,
    Layout,
    choose_layout,
    client_properties_file,
    save_layout,
)
from stack.postgres_server import Postgres
from stack.prometheus_server import Prometheus
from stack.redis_server import Redis
from stack.render import format_status_rows

_CLASSES: dict[str, type[Service]] = {
    "postgres": Postgres,
    "redis": Redis,
    "prometheus": Prometheus,
}


def _services(cfg: StackConfig, names: Sequence[str] | None = None) -> list[Service]:
    """The services `names` (every one of the stack by default), each Kafka node by name."""
    known = cfg.service_names()
    names = known if names is None else names
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown stack service {unknown[0]!r} (one of {', '.join(known)})")
    return [Kafka(cfg, n) if n.startswith("kafka") else _CLASSES[n](cfg) for n in names]


@contextlib.contextmanager
def _locked(cfg: StackConfig) -> Iterator[None]:
    """One ``up``/``down`` at a time per stack folder."""
    cfg.root.mkdir(parents=True, exist_ok=True)
    with open(cfg.lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another `herald stack` command on {cfg.root} ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fail(service: Service | None, exc: BaseException) -> None:
    """Report a failure; with the log file (and its tail) that explains it, if any."""
    if isinstance(exc, StackError):
        say(f"ERROR: {exc}")
        log = exc.log
    else:
        name = f"{service.name}: " if service is not None else ""
        say(f"ERROR: {name}{type(exc).__name__}: {exc}")
        log = service.log_path if service is not None else None
    if log is not None:
        say(f"log: {log}")
        lines = procs.tail(log, 20)
        if lines:
            show_lines(f"last {len(lines)} lines of {log}:", lines)


# ---------------------------------------------------------------- finding our daemon


def running_pid(service: Service) -> int | None:
    """The pid of the daemon this stack started, from its pid file, if it still runs."""
    pid = procs.read_pid(service.pid_path)
    if pid is None or not procs.is_alive(pid):
        return None
    info = procs.proc_info(pid)
    if info is None or not service.owns(info):
        return None
    return pid


def _adopt(service: Service) -> int | None:
    """Our daemon running without (or with a stale) pid file: found by the port it holds."""
    for port in service.ports:
        for pid in procs.listening_pids(port):
            info = procs.proc_info(pid)
            if info is not None and service.owns(info):
                procs.write_pid(service.pid_path, pid)
                return pid
    return None


def _free_ports(service: Service) -> None:
    """Make sure nothing but us holds the service's ports (Debian daemons are stopped)."""
    for port in service.ports:
        if not procs.port_busy(port):
            continue
        holders = [info for pid in procs.listening_pids(port) if (info := procs.proc_info(pid))]
        debian_owned = {debian.debian_service_of(info) for info in holders} - {None}
        for other in sorted(name for name in debian_owned if name is not None):
            debian.stop_debian_daemons(other)
        deadline = time.monotonic() + (10 if debian_owned else 0)
        while procs.port_busy(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        if procs.port_busy(port):
            who = "; ".join(f"pid {i.pid}: {' '.join(i.command.split())[:100]}" for i in holders)
            raise StackError(
                f"{service.name}: port {port} on 127.0.0.1 is taken by another process"
                f" ({who or 'not visible to this user'}); stop it, or pick another port"
                f" with {service.env_var}"
            )


# ---------------------------------------------------------------- one service


def _wait_ready(service: Service, pid: int | None) -> None:
    deadline = time.monotonic() + service.ready_timeout
    alive = (lambda: procs.is_alive(pid)) if pid is not None else None
    try:
        retry_until(deadline, service.ping, alive=alive)
    except Exception as exc:
        if pid is not None and not procs.is_alive(pid):
            raise StackError(
                f"{service.name} exited during start-up ({exc})", service.log_path
            ) from exc
        raise StackError(
            f"{service.name} did not answer on {service.address} within "
            f"{service.ready_timeout:.0f} s ({type(exc).__name__}: {exc})",
            service.log_path if service.local else None,
        ) from exc


def _bring_up(service: Service) -> None:
    if not service.local:
        say(f"{service.name}: {service.address} is not on this machine; checking it only")
        _wait_ready(service, None)
        say(f"{service.name}: up at {service.address} (not managed by this stack)")
        return
    pid = running_pid(service) or _adopt(service)
    if pid is not None:
        _wait_ready(service, pid)
        service.after_ready()
        say(f"{service.name}: already up at {service.address} (pid {pid})")
        return
    procs.remove_pid(service.pid_path)
    debian.stop_debian_daemons(service.name)
    _free_ports(service)
    service.prepare()
    started = time.monotonic()
    pid = service.start()
    procs.write_pid(service.pid_path, pid)
    say(
        f"{service.name}: started pid {pid}, waiting for {service.address} "
        f"(log: {service.log_path})"
    )
    _wait_ready(service, pid)
    service.after_ready()
    say(f"{service.name}: up at {service.address} in {time.monotonic() - started:.1f} s")


def _bring_down(service: Service) -> bool:
    if not service.local:
        say(f"{service.name}: {service.address} is not managed by this stack; left alone")
        return True
    pid = running_pid(service) or _adopt(service)
    if pid is None:
        procs.remove_pid(service.pid_path)
        say(f"{service.name}: already down")
        return True
    say(f"{service.name}: stopping pid {pid}")
    stopped = service.stop(pid)
    if stopped:
        procs.remove_pid(service.pid_path)
        say(f"{service.name}: stopped")
    else:
        say(f"ERROR: {service.name}: pid {pid} did not exit")
    return stopped


def _up(settings: Settings, names: Sequence[str] | None, layout: Layout | None = None) -> int:
    began = time.monotonic()
    service: Service | None = None
    try:
        cfg = StackConfig.from_settings(settings)
        if layout is not None:
            cfg = dataclasses.replace(cfg, layout=layout)
        services = _services(cfg, names)
        with _locked(cfg):
            if layout is not None:
                save_layout(cfg.root, layout)
            local = [s for s in services if s.local]
            install.ensure_packages(local, cfg)
            if any(isinstance(s, Kafka) for s in local):
                install.ensure_kafka_libs(cfg)
            browser.ensure_browser_tools(cfg)
            failed = []
            for service in services:
                try:
                    _bring_up(service)
                except Exception as exc:  # report, and still bring up the others
                    _fail(service, exc)
                    failed.append(service.name)
    except Exception as exc:
        _fail(service, exc)
        return 1
    if failed:
        say(f"ERROR: not up: {', '.join(failed)} ({cfg.root})")
        return 1
    if cfg.layout.secure:
        node = cfg.endpoint("kafka")
        say(
            f"kafka: SASL_SSL listener at {node.host}:{node.port + SECURE_OFFSET}; its client"
            f" settings: HERALD_KAFKA_CONFIG_FILE={client_properties_file(cfg.root)}"
        )
    say(f"stack up in {time.monotonic() - began:.1f} s ({cfg.root})")
    return 0


def _signal_kafka_nodes(services: Sequence[Service]) -> None:
    """Several Kafka nodes stop together: one by one, the last would wait out its grace for
    a controller quorum that has already left (30 s, then SIGKILL)."""
    nodes = [s for s in services if isinstance(s, Kafka) and s.local]
    if len(nodes) < 2:
        return
    for node in nodes:
        pid = running_pid(node)
        if pid is not None:
            procs.send_signal(pid, signal.SIGTERM)


def _down(settings: Settings, names: Sequence[str] | None) -> int:
    ok = True
    try:
        cfg = StackConfig.from_settings(settings)
        services = _services(cfg, names)
        with _locked(cfg):
            _signal_kafka_nodes(services)
            for service in reversed(services):
                try:
                    ok = _bring_down(service) and ok
                except Exception as exc:
                    _fail(service, exc)
                    ok = False
    except Exception as exc:
        _fail(None, exc)
        return 1
    return 0 if ok else 1


# ---------------------------------------------------------------- public API


def up(settings: Settings, *, brokers: int | None = None, secure: bool | None = None) -> int:
    """Install what is missing and start every service; 0 when all answer. Makes the
    local stack's secret key once (unless HERALD_SECRET_KEY is set). `brokers` and `secure`
    choose the Kafka layout when its storage is first formatted (kafka_cluster)."""
    settings.ensure_local_secret_key()
    try:
        layout = choose_layout(settings.resolved_stack_dir().resolve(), brokers, secure)
    except ConfigError as exc:
        _fail(None, exc)
        return 1
    return _up(settings, None, layout)


def down(settings: Settings) -> int:
    """Stop what ``up`` started (by pid files), keeping all data."""
    return _down(settings, None)


def status(settings: Settings) -> int:
    """Print ``name  address  version  up|down`` per service; 0 when all are up."""
    try:
        cfg = StackConfig.from_settings(settings)
    except ConfigError as exc:
        _fail(None, exc)
        return 1
    rows: list[tuple[str, str, str, str]] = []
    all_up = True
    for service in _services(cfg):
        try:
            version, state = service.version(), "up"
        except Exception:
            version, state = service.installed_version() or "-", "down"
            all_up = False
        rows.append((service.name, service.address, version, state))
    for line in format_status_rows(rows):
        print(line, flush=True)
    return 0 if all_up else 1


def up_service(settings: Settings, name: str) -> int:
    """Start one service of this settings' stack (for tests that restart a piece)."""
    return _up(settings, [name])


def down_service(settings: Settings, name: str) -> int:
    """Stop one service of this settings' stack, keeping its data."""
    return _down(settings, [name])
