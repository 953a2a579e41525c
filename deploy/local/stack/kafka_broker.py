"""Apache Kafka in KRaft mode, one or several nodes (each broker and controller), from the
Maven Central jars in ``<stack>/kafka/libs``; the layout is in `kafka_cluster`."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

from stack import kafka_cluster as cluster
from stack import procs
from stack.argv import kafka_argv, kafka_format_argv
from stack.base import Service, StackError
from stack.config import LOG4J2_CONFIG, SERVER_PROPERTIES_TEMPLATE, StackConfig
from stack.console import say
from stack.render import (
    kafka_version_from_jars,
    kafka_version_from_log,
    new_kafka_cluster_id,
    render_server_properties,
)

_quiet = logging.getLogger("herald.stack.kafka-admin")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False
_quiet.setLevel(logging.CRITICAL)


def java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


class Kafka(Service):
    """Node `name` ("kafka", or "kafka-k" for node k of several)."""

    env_var = "HERALD_KAFKA_BOOTSTRAP / HERALD_KAFKA_CONTROLLER_PORT"
    ready_timeout: ClassVar[float] = 90.0

    def __init__(self, cfg: StackConfig, name: str = "kafka") -> None:
        super().__init__(cfg)
        self.name = name
        self.node = cluster.node_index(name)
        self.layout = cfg.layout

    def workdir(self) -> Path:
        return self.cfg.root / self.name

    @property
    def data(self) -> Path:
        return self.workdir() / "data"

    @property
    def properties(self) -> Path:
        return self.workdir() / "server.properties"

    def libs_ready(self) -> bool:
        return self.jar_version() is not None

    def jar_version(self) -> str | None:
        try:
            return kafka_version_from_jars(os.listdir(self.cfg.kafka_libs))
        except OSError:
            return None

    def missing_packages(self) -> list[str]:
        missing = []
        if java_binary() is None:
            missing.append("openjdk-17-jre-headless")
        if not self.libs_ready() and shutil.which("mvn") is None:
            missing.append("maven")
        if self.layout.secure and shutil.which("openssl") is None:
            missing.append("openssl")
        return missing

    def _java(self) -> str:
        java = java_binary()
        if java is None:
            raise StackError("kafka: no `java` on PATH (install openjdk-17-jre-headless)")
        return java

    def prepare(self) -> None:
        if not self.libs_ready():
            raise StackError(f"kafka: no kafka_2.13-*.jar in {self.cfg.kafka_libs}")
        self.workdir().mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        rendered = render_server_properties(
            SERVER_PROPERTIES_TEMPLATE.read_text(),
            broker_port=self.cfg.kafka.port,
            controller_port=self.cfg.kafka_controller_port,
            log_dirs=self.data,
        )
        scram: tuple[str, ...] = ()
        if self.layout != cluster.Layout():  # several nodes, or a secured listener
            keys = cluster.ensure_secrets(self.cfg.root) if self.layout.secure else None
            if keys is not None:
                cluster.ensure_certificates(self.cfg.root, keys.keystore_password)
                cluster.write_client_properties(self.cfg.root, keys.password)
                scram = tuple(cluster.scram_format_args(keys.password))
            overrides = cluster.node_overrides(
                self.layout,
                self.node,
                broker_port=self.cfg.kafka.port,
                controller_port=self.cfg.kafka_controller_port,
                data=self.data,
                tls_dir=cluster.tls_dir(self.cfg.root),
                keystore_password=keys.keystore_password if keys else "",
            )
            rendered = cluster.apply_overrides(rendered, overrides)
        if not self.properties.exists() or self.properties.read_text() != rendered:
            self.properties.write_text(rendered)
            self.properties.chmod(0o600)  # a secured node's holds its keystore password
        if (self.data / "meta.properties").exists():
            return
        id_file = self.cfg.kafka_cluster_id_file
        if not id_file.exists():
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(new_kafka_cluster_id(os.urandom(16)) + "\n")
        cluster_id = id_file.read_text().strip()
        say(f"{self.name}: formatting storage in {self.data} (cluster id {cluster_id})")
        argv = kafka_format_argv(
            self._java(),
            self.cfg.kafka_libs,
            LOG4J2_CONFIG,
            self.properties,
            cluster_id,
            standalone=self.layout.brokers == 1,
            extra=scram,
        )
        result = procs.run(argv, log=self.log_path, cwd=self.workdir(), timeout=180)
        if result.returncode != 0:
            raise StackError(
                f"{self.name}: storage format failed (exit {result.returncode})", self.log_path
            )

    def argv(self) -> list[str]:
        return kafka_argv(self._java(), self.cfg.kafka_libs, LOG4J2_CONFIG, self.properties)

    def ping(self) -> None:
        """Ready: for all but the last node of several, its controller answers (a quorum
        needs the nodes started after it); otherwise the broker answers, with every node
        of the cluster registered."""
        if self.node < self.layout.brokers:
            port = self.ports[1]
            if not procs.port_answers(self.endpoint.host, port):
                raise ConnectionError(f"{self.name}: no controller on port {port} yet")
            return
        self._answers(self.layout.brokers)

    def _answers(self, brokers: int = 1) -> None:
        endpoint = self.endpoint
        if not procs.port_answers(endpoint.host, endpoint.port):
            raise ConnectionError(f"nothing listens on {endpoint.address}")
        from confluent_kafka.admin import AdminClient

        conf: dict[str, Any] = {
            "bootstrap.servers": endpoint.address,
            "logger": _quiet,
            "log_level": 0,
        }
        admin = AdminClient(conf)
        registered = len(admin.list_topics(timeout=5).brokers)
        if registered < brokers:
            raise ConnectionError(f"{registered} of {brokers} brokers registered")

    def version(self) -> str:
        self._answers()
        if not self.local:
            return "?"
        return self.installed_version() or "?"

    def _logged_version(self) -> str | None:
        """The last ``Kafka version: X`` in the broker log (read in chunks; logs rotate)."""
        found: str | None = None
        carry = ""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                while chunk := handle.read(1 << 20):
                    text = carry + chunk
                    found = kafka_version_from_log(text) or found
                    carry = text[-200:]
        except OSError:
            return None
        return found

    def installed_version(self) -> str | None:
        """The jar's version, checked against the last ``Kafka version:`` the broker logged."""
        jar = self.jar_version()
        logged = self._logged_version()
        if logged and jar and logged != jar:
            say(f"kafka: the broker logged version {logged} but the jar is {jar}")
            return logged
        return jar or logged
