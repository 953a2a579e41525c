"""The pure part of the local stack: addresses parsed from settings, paths, rendered configs.

Nothing here starts a process or touches the network, so it is unit-tested directly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from psycopg.conninfo import conninfo_to_dict

from herald.shared.errors import ConfigError
from herald.shared.infra.paths import DEPLOY_DIR
from herald.shared.infra.settings import Settings

SERVICES: tuple[str, ...] = ("postgres", "redis", "kafka", "prometheus")
"""Every service of the stack, in start order (``down`` stops them in reverse)."""

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "ip6-localhost"})

LOCAL_DIR = DEPLOY_DIR / "local"
POM_FILE = LOCAL_DIR / "pom.xml"
SERVER_PROPERTIES_TEMPLATE = LOCAL_DIR / "server.properties"
LOG4J2_CONFIG = LOCAL_DIR / "log4j2.properties"
PROMETHEUS_DIR = DEPLOY_DIR / "prometheus"
PROMETHEUS_TEMPLATE = PROMETHEUS_DIR / "prometheus.yml"
ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"

# The file_sd glob the shared Prometheus config uses in containers, replaced locally.
CONTAINER_TARGETS = "/etc/prometheus/targets/*.json"

BIND_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def local(self) -> bool:
        """True when the stack runs this service itself (a loopback address)."""
        return self.host.lower() in LOOPBACK_HOSTS

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class PostgresTarget:
    endpoint: Endpoint
    user: str
    dbname: str
    password: str | None


def _port(text: str, default: int, what: str) -> int:
    if not text:
        return default
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"{what}: port {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{what}: port {port} is out of range")
    return port


def parse_kafka_bootstrap(bootstrap: str) -> Endpoint:
    """The first broker of a bootstrap list (``host:port[,host:port...]``)."""
    first = bootstrap.split(",")[0].strip()
    if "://" in first:  # tolerate PLAINTEXT://host:port
        first = first.split("://", 1)[1]
    if not first:
        raise ConfigError("HERALD_KAFKA_BOOTSTRAP is empty")
    if first.startswith("["):
        host, _, rest = first[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif first.count(":") == 1:
        host, port_text = first.split(":")
    else:
        host, port_text = first, ""
    return Endpoint(host or BIND_HOST, _port(port_text, 9092, "HERALD_KAFKA_BOOTSTRAP"))


def parse_redis_url(url: str) -> Endpoint:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"HERALD_REDIS_URL: unsupported scheme {parts.scheme!r}")
    try:
        port_text = str(parts.port or "")
    except ValueError as exc:
        raise ConfigError(f"HERALD_REDIS_URL: {exc}") from None
    return Endpoint(parts.hostname or BIND_HOST, _port(port_text, 6379, "HERALD_REDIS_URL"))


def parse_database_url(url: str, default_user: str = "herald") -> PostgresTarget:
    try:
        info = conninfo_to_dict(url)
    except Exception:  # psycopg raises ProgrammingError for bad conninfo
        # Its message quotes the text it stumbled on, which may be a password.
        raise ConfigError("HERALD_DATABASE_URL is not a valid Postgres URL") from None
    host = str(info.get("host") or BIND_HOST).split(",")[0]
    if host.startswith("/"):  # a unix socket directory: a server the stack does not run
        host = "unix:" + host
    port = _port(str(info.get("port") or "").split(",")[0], 5432, "HERALD_DATABASE_URL")
    user = str(info.get("user") or default_user)
    dbname = str(info.get("dbname") or user)
    password = info.get("password")
    return PostgresTarget(Endpoint(host, port), user, dbname, str(password) if password else None)


@dataclass(frozen=True)
class StackConfig:
    """Addresses and paths of one stack (one ``HERALD_STACK_DIR``)."""

    root: Path
    kafka: Endpoint
    kafka_controller_port: int
    redis: Endpoint
    postgres: PostgresTarget
    prometheus: Endpoint
    redis_url: str
    database_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> StackConfig:
        return cls(
            root=settings.resolved_stack_dir().resolve(),
            kafka=parse_kafka_bootstrap(settings.kafka_bootstrap),
            kafka_controller_port=_port(
                str(settings.kafka_controller_port), 9093, "HERALD_KAFKA_CONTROLLER_PORT"
            ),
            redis=parse_redis_url(settings.redis_url),
            postgres=parse_database_url(settings.database_url),
            prometheus=Endpoint(
                BIND_HOST, _port(str(settings.prometheus_port), 9090, "HERALD_PROMETHEUS_PORT")
            ),
            redis_url=settings.redis_url,
            database_url=settings.database_url,
        )

    def endpoint(self, service: str) -> Endpoint:
        if service == "kafka":
            return self.kafka
        if service == "redis":
            return self.redis
        if service == "postgres":
            return self.postgres.endpoint
        if service == "prometheus":
            return self.prometheus
        raise ConfigError(f"unknown stack service {service!r} (one of {', '.join(SERVICES)})")

    def ports(self, service: str) -> tuple[int, ...]:
        """Every TCP port the service binds on loopback."""
        if service == "kafka":
            return (self.kafka.port, self.kafka_controller_port)
        return (self.endpoint(service).port,)

    def service_dir(self, service: str) -> Path:
        return self.root / service

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.root / "pids"

    def log_path(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def pid_path(self, service: str) -> Path:
        return self.pids_dir / f"{service}.pid"

    @property
    def lock_path(self) -> Path:
        return self.root / ".stack.lock"

    # Kafka
    @property
    def kafka_libs(self) -> Path:
        return self.root / "kafka" / "libs"

    @property
    def kafka_data(self) -> Path:
        return self.root / "kafka" / "data"

    @property
    def kafka_properties(self) -> Path:
        return self.root / "kafka" / "server.properties"

    @property
    def kafka_cluster_id_file(self) -> Path:
        return self.root / "kafka" / "cluster.id"

    # Prometheus
    @property
    def prometheus_config(self) -> Path:
        return self.root / "prometheus" / "prometheus.yml"

    @property
    def prometheus_targets(self) -> Path:
        return self.root / "prometheus" / "targets.json"

    @property
    def prometheus_data(self) -> Path:
        return self.root / "prometheus" / "data"

    # Postgres
    @property
    def postgres_datadir_record(self) -> Path:
        """Holds the path of the data folder when it lives outside the stack folder."""
        return self.root / "postgres" / "datadir"

    @property
    def postgres_default_data(self) -> Path:
        return self.root / "postgres" / "pgdata"

    @property
    def postgres_external_home(self) -> Path:
        """Where the data goes when the ``postgres`` user cannot reach the stack folder."""
        return Path("/var/lib/herald") / short_hash(str(self.root))


def short_hash(text: str, length: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def socket_dir_for(home: Path, stack_root: Path) -> Path:
    """A unix-socket folder for Postgres; /tmp when the path would be too long for a socket."""
    candidate = home / "run"
    # sun_path holds 107 bytes; ".s.PGSQL.65535.lock" needs 20 more.
    if len(str(candidate)) + 20 < 100:
        return candidate
    return Path("/tmp") / f"herald-pg-{short_hash(str(stack_root))}"


# ---------------------------------------------------------------- rendering


def render_server_properties(
    template: str, *, broker_port: int, controller_port: int, log_dirs: Path
) -> str:
    try:
        return string.Template(template).substitute(
            broker_port=broker_port, controller_port=controller_port, log_dirs=str(log_dirs)
        )
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{SERVER_PROPERTIES_TEMPLATE}: bad placeholder {exc}") from None


_RULE_FILES_FLOW = re.compile(r"^(\s*rule_files:\s*)\[(.*)\](\s*(#.*)?)$")


def render_prometheus_config(template: str, *, targets_file: Path, rules_dir: Path) -> str:
    """The local Prometheus config: local file_sd path and absolute rule-file paths.

    The template keeps ``files: ["/etc/prometheus/targets/*.json"]`` and
    ``rule_files: ["alerts.yml", ...]`` (flow style), as mounted in containers.
    """
    quoted_target = f'"{CONTAINER_TARGETS}"'
    lines: list[str] = []
    seen_targets = seen_rules = False
    for line in template.splitlines():
        if line.lstrip().startswith("#"):
            lines.append(line)
            continue
        if quoted_target in line:
            line = line.replace(quoted_target, json.dumps(str(targets_file)))
            seen_targets = True
        match = _RULE_FILES_FLOW.match(line)
        if match:
            entries = [e.strip().strip("\"'") for e in match.group(2).split(",") if e.strip()]
            absolute = [str(Path(e) if Path(e).is_absolute() else rules_dir / e) for e in entries]
            rendered = ", ".join(json.dumps(e) for e in absolute)
            line = f"{match.group(1)}[{rendered}]{match.group(3)}"
            seen_rules = True
        lines.append(line)
    if not seen_targets:
        raise ConfigError(f"{PROMETHEUS_TEMPLATE}: no file_sd entry {quoted_target} to rewrite")
    if not seen_rules:
        raise ConfigError(f"{PROMETHEUS_TEMPLATE}: no flow-style `rule_files: [...]` line")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- command lines


def kafka_argv(java: str, libs: Path, log4j2: Path, properties: Path) -> list[str]:
    return [
        java,
        "-Xmx1g",
        "-Xms256m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j2}",
        "-cp",
        f"{libs}/*",
        "kafka.Kafka",
        str(properties),
    ]


def kafka_format_argv(
    java: str, libs: Path, log4j2: Path, properties: Path, cluster_id: str
) -> list[str]:
    return [
        java,
        "-Xmx512m",
        f"-Dlog4j2.configurationFile={log4j2}",
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        cluster_id,
        "-c",
        str(properties),
    ]


def redis_argv(binary: str, port: int, data_dir: Path, logfile: Path) -> list[str]:
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        BIND_HOST,
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        str(logfile),
    ]


def postgres_argv(bindir: Path, data: Path, port: int, socket_dir: Path) -> list[str]:
    return [
        str(bindir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-c",
        f"listen_addresses={BIND_HOST}",
        "-c",
        f"unix_socket_directories={socket_dir}",
        "-c",
        "max_connections=300",
        "-c",
        "logging_collector=off",
    ]


def initdb_argv(bindir: Path, data: Path) -> list[str]:
    return [
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "--auth=trust",
        "--locale=C.UTF-8",
        "--encoding=UTF8",
    ]


def prometheus_argv(binary: str, config: Path, data: Path, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={BIND_HOST}:{port}",
        "--web.enable-lifecycle",
    ]


# ---------------------------------------------------------------- small parsers

_KAFKA_JAR = re.compile(r"^kafka_2\.13-(\d[\w.\-]*?)\.jar$")
_KAFKA_LOG_VERSION = re.compile(r"Kafka version: (\S+)")


def kafka_version_from_jars(names: Iterable[str]) -> str | None:
    """The version of the ``kafka_2.13-X.jar`` among file names (not -sources/-test jars)."""
    for name in sorted(names):
        match = _KAFKA_JAR.match(name)
        if match and not match.group(1).endswith(("-sources", "-test", "-javadoc")):
            return match.group(1)
    return None


def kafka_version_from_log(text: str) -> str | None:
    """The last ``Kafka version: X`` the broker logged."""
    found = _KAFKA_LOG_VERSION.findall(text)
    return found[-1] if found else None


def new_kafka_cluster_id(raw: bytes) -> str:
    """A Kafka ``Uuid`` string (URL-safe base64 of 16 bytes, unpadded) from random bytes."""
    if len(raw) != 16:
        raise ValueError("a Kafka cluster id needs 16 random bytes")
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    # Kafka never hands out ids starting with '-' (they look like options on a command line).
    return "A" + text[1:] if text.startswith("-") else text


def format_status_rows(rows: Sequence[tuple[str, str, str, str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(3)] if rows else [0, 0, 0]
    return [
        f"{name:<{widths[0]}}  {addr:<{widths[1]}}  {ver:<{widths[2]}}  {state}"
        for name, addr, ver, state in rows
    ]
