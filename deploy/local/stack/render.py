"""The texts the local stack writes and reads: the rendered broker and Prometheus configs,
a new Kafka cluster id, the versions found in jar names and logs, the status rows. Pure."""

from __future__ import annotations

import base64
import json
import re
import string
from collections.abc import Iterable, Sequence
from pathlib import Path

from herald.shared.errors import ConfigError
from stack.config import CONTAINER_TARGETS, PROMETHEUS_TEMPLATE, SERVER_PROPERTIES_TEMPLATE


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
