"""Apache Kafka, single-node KRaft, from the Maven Central jars in ``<stack>/kafka/libs``."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

from stack import procs
from stack.argv import kafka_argv, kafka_format_argv
from stack.base import Service, StackError
from stack.config import LOG4J2_CONFIG, SERVER_PROPERTIES_TEMPLATE
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
    name = "kafka"
    env_var = "HERALD_KAFKA_BOOTSTRAP / HERALD_KAFKA_CONTROLLER_PORT"
    ready_timeout: ClassVar[float] = 90.0

    def workdir(self) -> Path:
        return self.cfg.root / "kafka"

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
        self.cfg.kafka_data.mkdir(parents=True, exist_ok=True)
        rendered = render_server_properties(
            SERVER_PROPERTIES_TEMPLATE.read_text(),
            broker_port=self.cfg.kafka.port,
            controller_port=self.cfg.kafka_controller_port,
            log_dirs=self.cfg.kafka_data,
        )
        if not self.cfg.kafka_properties.exists() or (
            self.cfg.kafka_properties.read_text() != rendered
        ):
            self.cfg.kafka_properties.write_text(rendered)
        if (self.cfg.kafka_data / "meta.properties").exists():
            return
        id_file = self.cfg.kafka_cluster_id_file
        if not id_file.exists():
            id_file.write_text(new_kafka_cluster_id(os.urandom(16)) + "\n")
        cluster_id = id_file.read_text().strip()
        say(f"kafka: formatting storage in {self.cfg.kafka_data} (cluster id {cluster_id})")
        argv = kafka_format_argv(
            self._java(),
            self.cfg.kafka_libs,
            LOG4J2_CONFIG,
            self.cfg.kafka_properties,
            cluster_id,
        )
        result = procs.run(argv, log=self.log_path, cwd=self.workdir(), timeout=180)
        if result.returncode != 0:
            raise StackError(
                f"kafka: storage format failed (exit {result.returncode})", self.log_path
            )

    def argv(self) -> list[str]:
        return kafka_argv(
            self._java(), self.cfg.kafka_libs, LOG4J2_CONFIG, self.cfg.kafka_properties
        )

    def ping(self) -> None:
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
        admin.list_topics(timeout=5)

    def version(self) -> str:
        self.ping()
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
