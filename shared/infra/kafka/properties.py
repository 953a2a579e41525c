"""Kafka client properties from the environment, for every Kafka client Herald makes.

Any librdkafka property can be given as ``HERALD_KAFKA_<PROPERTY>`` (upper case, dots as
underscores: ``HERALD_KAFKA_SASL_PASSWORD`` is ``sasl.password``), or in a Java-style
``.properties`` file named by ``HERALD_KAFKA_CONFIG_FILE``; a variable wins over the file.
Herald's own settings with that prefix (``HERALD_KAFKA_BOOTSTRAP``, the file itself, the
local stack's ports) are not passed through. Properties Herald's guarantees rest on are
refused with one line naming where they were given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from herald.shared.errors import ConfigError

PREFIX = "HERALD_KAFKA_"
CONFIG_FILE = "HERALD_KAFKA_CONFIG_FILE"
# Herald's own settings named HERALD_KAFKA_* (settings.py's kafka_* fields and the file).
OWN_SETTINGS = frozenset({"HERALD_KAFKA_BOOTSTRAP", "HERALD_KAFKA_CONTROLLER_PORT", CONFIG_FILE})

# What Herald sets and must keep: producers acks=all with idempotence, consumers that commit
# only after their effects are durable, the bootstrap list from HERALD_KAFKA_BOOTSTRAP.
GUARDED: dict[str, str] = {
    "acks": "producers send with acks=all",
    "request.required.acks": "producers send with acks=all",
    "enable.idempotence": "producers are idempotent",
    "enable.gapless.guarantee": "producers are idempotent",
    "transactional.id": "producers are idempotent, not transactional",
    "max.in.flight.requests.per.connection": "ordering per key rests on idempotence",
    "max.in.flight": "ordering per key rests on idempotence",
    "enable.auto.commit": "consumers commit only after their effects are durable",
    "enable.auto.offset.store": "consumers commit only after their effects are durable",
    "auto.commit.enable": "consumers commit only after their effects are durable",
    "isolation.level": "consumers read committed records only",
    "group.id": "each service names its consumer group",
    "auto.offset.reset": "a new consumer group starts at the earliest record",
    "bootstrap.servers": "give the brokers as HERALD_KAFKA_BOOTSTRAP",
    "metadata.broker.list": "give the brokers as HERALD_KAFKA_BOOTSTRAP",
}
# librdkafka names that keep an underscore (everything else has dots).
_UNDERSCORED = {"log.level": "log_level"}
_SECRET = re.compile(r"password|secret|jaas|(^|\.)key(\.pem)?$|sasl\.oauthbearer\.config")
_JAAS_FIELD = re.compile(r'\b(username|password)\s*=\s*"((?:\\.|[^"\\])*)"')


@dataclass(frozen=True)
class ClientProperties:
    """librdkafka properties, with where each came from (for error lines)."""

    values: dict[str, str] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def masked(self) -> dict[str, str]:
        return {k: ("***" if is_secret(k) else v) for k, v in sorted(self.values.items())}

    def where(self, *names: str) -> str:
        """The settings that gave `names` (their env var or file line), or the env names."""
        given = [self.origin[n] for n in names if n in self.origin]
        return " / ".join(given or [env_name(n) for n in names])


def is_secret(name: str) -> bool:
    return bool(_SECRET.search(name))


def env_name(prop: str) -> str:
    return PREFIX + prop.replace(".", "_").upper()


def prop_name(env: str) -> str:
    name = env.removeprefix(PREFIX).lower().replace("_", ".")
    return _UNDERSCORED.get(name, name)


def parse_properties(text: str, source: str) -> dict[str, tuple[str, str]]:
    """A Java ``.properties`` text: ``key=value`` or ``key: value``, ``#``/``!`` comments,
    a trailing backslash continues a line. Answers {key: (value, "key (source:line)")}."""
    out: dict[str, tuple[str, str]] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number, line = i + 1, lines[i].strip()
        i += 1
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + lines[i].strip()
            i += 1
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^=:\s]+)\s*[=:\s]\s*(.*)$", line)
        if match is None:
            raise ConfigError(f"{source}:{number}: not a `key=value` line")
        key, value = match.group(1), match.group(2).strip()
        out[key] = (value, f"{key} ({source}:{number})")
    return out


def _from_jaas(value: str, where: str) -> dict[str, tuple[str, str]]:
    """Java clients' `sasl.jaas.config` for PLAIN/SCRAM, as librdkafka's user and password."""
    found = dict(_JAAS_FIELD.findall(value))
    if "username" not in found or "password" not in found:
        raise ConfigError(f"{where}: only a PLAIN or SCRAM login module with username and password")
    return {f"sasl.{k}": (v.replace('\\"', '"'), where) for k, v in found.items()}


def _translate_java(given: dict[str, tuple[str, str]]) -> None:
    """The Java clients' login and PEM truststore, as librdkafka names them (a name given
    in librdkafka's own words wins)."""
    if "sasl.jaas.config" in given:
        value, where = given.pop("sasl.jaas.config")
        for key, pair in _from_jaas(value, where).items():
            given.setdefault(key, pair)
    kind, _ = given.pop("ssl.truststore.type", ("PEM", ""))
    if "ssl.truststore.location" in given:
        value, where = given.pop("ssl.truststore.location")
        if kind.upper() != "PEM":
            raise ConfigError(
                f"{where}: librdkafka reads PEM certificates only; give the CA as a PEM file"
                " (ssl.truststore.type=PEM, or ssl.ca.location)"
            )
        given.setdefault("ssl.ca.location", (value, where))


def client_properties(environ: Mapping[str, str] | None = None) -> ClientProperties:
    """The librdkafka properties given to this process (raises ConfigError on a refused
    or unreadable one)."""
    env = os.environ if environ is None else environ
    given: dict[str, tuple[str, str]] = {}
    path = env.get(CONFIG_FILE, "").strip()
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{CONFIG_FILE}: cannot read {path} ({exc.strerror})") from None
        given.update(parse_properties(text, path))
    for name, value in env.items():
        if name.startswith(PREFIX) and name not in OWN_SETTINGS:
            given[prop_name(name)] = (value, name)
    _translate_java(given)
    for key, (_, where) in given.items():
        if key in GUARDED:
            raise ConfigError(
                f"{where}: Herald sets {key} itself ({GUARDED[key]}); remove this setting"
            )
    return ClientProperties(
        {k: v for k, (v, _) in given.items()}, {k: w for k, (_, w) in given.items()}
    )
