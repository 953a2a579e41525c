"""The command lines of the stack's daemons and tools (pure: nothing is run here)."""

from __future__ import annotations

from pathlib import Path

from stack.config import BIND_HOST


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
    java: str,
    libs: Path,
    log4j2: Path,
    properties: Path,
    cluster_id: str,
    *,
    standalone: bool = True,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """StorageTool's format: `standalone` for a single node's dynamic quorum (several nodes
    name their static quorum in controller.quorum.voters instead)."""
    return [
        java,
        "-Xmx512m",
        f"-Dlog4j2.configurationFile={log4j2}",
        "-cp",
        f"{libs}/*",
        "kafka.tools.StorageTool",
        "format",
        *(["--standalone"] if standalone else []),
        *extra,
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
