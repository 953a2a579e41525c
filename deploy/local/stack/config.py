"""The pure part of the local stack: addresses parsed from settings, and the paths of one
stack (its command lines are in `argv`, the texts it writes and reads in `render`).

Nothing here starts a process or touches the network, so it is unit-tested directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from psycopg.conninfo import conninfo_to_dict

from herald.shared.errors import ConfigError
from herald.shared.infra.paths import DEPLOY_DIR
from herald.shared.infra.settings import Settings
from stack.kafka_cluster import (
    NODE_STEP,
    SECURE_OFFSET,
    Layout,
    load_layout,
    node_index,
    node_names,
)

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
    layout: Layout = field(default_factory=Layout)

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
            layout=load_layout(settings.resolved_stack_dir().resolve()) or Layout(),
        )

    def service_names(self) -> list[str]:
        """Every service of this stack in start order: each Kafka node by name."""
        return [n for s in SERVICES for n in (node_names(self.layout) if s == "kafka" else [s])]

    def endpoint(self, service: str) -> Endpoint:
        if service.startswith("kafka"):
            step = NODE_STEP * (node_index(service) - 1)
            return Endpoint(self.kafka.host, self.kafka.port + step)
        if service == "redis":
            return self.redis
        if service == "postgres":
            return self.postgres.endpoint
        if service == "prometheus":
            return self.prometheus
        raise ConfigError(f"unknown stack service {service!r} (one of {', '.join(SERVICES)})")

    def ports(self, service: str) -> tuple[int, ...]:
        """Every TCP port the service binds on loopback."""
        if service.startswith("kafka"):
            step = NODE_STEP * (node_index(service) - 1)
            ports = (self.kafka.port + step, self.kafka_controller_port + step)
            return ports + ((ports[0] + SECURE_OFFSET,) if self.layout.secure else ())
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
