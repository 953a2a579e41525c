"""The local Kafka's layout: how many KRaft nodes, and whether they add a SASL_SSL listener.

`herald stack up --brokers N --secure` records the layout in ``<stack>/kafka/layout.json``
when the storage is first formatted; later commands read it (a formatted cluster keeps its
layout). Node k (1..N) listens on HERALD_KAFKA_BOOTSTRAP's port + 100·(k-1), its controller
on HERALD_KAFKA_CONTROLLER_PORT + 100·(k-1), and, secured, SASL_SSL on the broker port + 2
+ 100·(k-1). Node 1 keeps the single-node paths (``<stack>/kafka``); node k has
``<stack>/kafka-k``.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from herald.shared.errors import ConfigError
from herald.shared.infra.settings import create_private_file

NODE_STEP = 100
SECURE_OFFSET = 2
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_USER = "herald"


@dataclass(frozen=True)
class Layout:
    brokers: int = 1
    secure: bool = False


def layout_file(root: Path) -> Path:
    return root / "kafka" / "layout.json"


def load_layout(root: Path) -> Layout | None:
    try:
        data = json.loads(layout_file(root).read_text())
    except FileNotFoundError:
        return None
    return Layout(int(data["brokers"]), bool(data["secure"]))


def choose_layout(root: Path, brokers: int | None, secure: bool | None) -> Layout:
    """The recorded layout; flags that differ from it are refused (the storage is formatted
    for it). A stack without one (or never formatted) takes the flags."""
    if brokers is not None and not 1 <= brokers <= 9:
        raise ConfigError(f"--brokers {brokers}: give 1 to 9")
    recorded = load_layout(root)
    formatted = (root / "kafka" / "data" / "meta.properties").exists()
    if recorded is None and formatted:
        recorded = Layout()  # formatted before layouts were recorded: one plaintext node
    if recorded is not None:
        wanted = Layout(
            recorded.brokers if brokers is None else brokers,
            recorded.secure if secure is None else secure,
        )
        if formatted and wanted != recorded:
            raise ConfigError(
                f"this stack's Kafka is formatted as {describe(recorded)}; to run"
                f" {describe(wanted)}, use another HERALD_STACK_DIR (or `herald stack down`"
                f" and delete {root}/kafka*)"
            )
        return wanted
    return Layout(brokers or 1, bool(secure))


def save_layout(root: Path, layout: Layout) -> None:
    layout_file(root).parent.mkdir(parents=True, exist_ok=True)
    layout_file(root).write_text(
        json.dumps({"brokers": layout.brokers, "secure": layout.secure}) + "\n"
    )


def describe(layout: Layout) -> str:
    nodes = "one node" if layout.brokers == 1 else f"{layout.brokers} nodes"
    return f"{nodes}{' with a SASL_SSL listener' if layout.secure else ''}"


def node_names(layout: Layout) -> list[str]:
    return ["kafka"] + [f"kafka-{k}" for k in range(2, layout.brokers + 1)]


def node_index(name: str) -> int:
    """1 for "kafka", k for "kafka-k"."""
    match = re.fullmatch(r"kafka(?:-(\d))?", name)
    if match is None:
        raise ConfigError(f"not a Kafka node: {name!r}")
    return int(match.group(1) or 1)


def node_overrides(
    layout: Layout,
    node: int,
    *,
    broker_port: int,
    controller_port: int,
    data: Path,
    tls_dir: Path,
    keystore_password: str,
) -> dict[str, str]:
    """server.properties lines that make the single-node template node `node` of `layout`."""
    step = NODE_STEP * (node - 1)
    port, ctl = broker_port + step, controller_port + step
    listeners = [f"PLAINTEXT://127.0.0.1:{port}"]
    protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    if layout.secure:
        listeners.append(f"SASL_SSL://127.0.0.1:{port + SECURE_OFFSET}")
        protocols += ",SASL_SSL:SASL_SSL"
    replicas = min(3, layout.brokers)
    isr = str(min(2, replicas))
    out = {
        "node.id": str(node),
        "log.dirs": str(data),
        "listeners": ",".join([*listeners, f"CONTROLLER://127.0.0.1:{ctl}"]),
        "advertised.listeners": ",".join([*listeners, f"CONTROLLER://127.0.0.1:{ctl}"]),
        "listener.security.protocol.map": protocols,
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": isr,
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": isr,
        "min.insync.replicas": isr,
        "default.replication.factor": str(replicas),
    }
    if layout.brokers > 1:  # a static quorum of every node's controller
        out["controller.quorum.bootstrap.servers"] = ""
        out["controller.quorum.voters"] = ",".join(
            f"{k}@127.0.0.1:{controller_port + NODE_STEP * (k - 1)}"
            for k in range(1, layout.brokers + 1)
        )
    if layout.secure:
        out |= {
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(tls_dir / "broker.p12"),
            "ssl.keystore.password": keystore_password,
            "ssl.key.password": keystore_password,
        }
    return out


def apply_overrides(rendered: str, overrides: dict[str, str]) -> str:
    """`rendered` with each key's line replaced (an empty value drops it), the rest added."""
    left = dict(overrides)
    lines = []
    for line in rendered.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.startswith("#") else ""
        if key in left:
            value = left.pop(key)
            if value:
                lines.append(f"{key}={value}")
            continue
        lines.append(line)
    lines += [f"{k}={v}" for k, v in left.items() if v]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the secured listener


@dataclass(frozen=True)
class Secrets:
    password: str  # the SCRAM user's
    keystore_password: str


def tls_dir(root: Path) -> Path:
    return root / "kafka" / "tls"


def client_properties_file(root: Path) -> Path:
    return root / "kafka" / "client.properties"


def ensure_secrets(root: Path) -> Secrets:
    """The SCRAM password and the keystore's, made once (files readable by the owner only)."""
    folder = tls_dir(root)
    return Secrets(
        create_private_file(folder / "scram.password", secrets.token_urlsafe(24)),
        create_private_file(folder / "keystore.password", secrets.token_urlsafe(24)),
    )


def ensure_certificates(root: Path, keystore_password: str) -> None:
    """A local CA (ca.pem) and the brokers' certificate for 127.0.0.1 and localhost signed by
    it, in a PKCS12 keystore (broker.p12), made once with openssl."""
    folder = tls_dir(root)
    if (folder / "broker.p12").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "broker.key", "broker.csr", "broker.pem")
    )
    ext = folder / "broker.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subject_ca, subject = "/CN=Herald local CA", "/CN=localhost"
    steps: list[list[object]] = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "3650", "-subj", subject_ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", subject],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "3650", "-extfile", ext],
        ["pkcs12", "-export", "-in", cert, "-inkey", key, "-out", folder / "broker.p12",
         "-name", "broker", "-passout", f"pass:{keystore_password}"],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(
            ["openssl", *map(str, step)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ConfigError(f"openssl {step[0]} failed: {done.stderr.strip()[-300:]}")
    for path in (ca_key, key):
        path.chmod(0o600)


def scram_format_args(password: str) -> list[str]:
    """StorageTool arguments that create the SCRAM user in the new cluster's metadata."""
    return ["--add-scram", f"{SCRAM_MECHANISM}=[name={SCRAM_USER},password={password}]"]


def write_client_properties(root: Path, password: str) -> Path:
    """The client settings for the SASL_SSL listener, written as Java clients read them;
    HERALD_KAFKA_CONFIG_FILE reads the same file."""
    path = client_properties_file(root)
    login = "org.apache.kafka.common.security.scram.ScramLoginModule required"
    if not path.exists():
        lines = [
            "# The client settings of this stack's SASL_SSL listener (stack up --secure)",
            "security.protocol=SASL_SSL",
            f"sasl.mechanism={SCRAM_MECHANISM}",
            f'sasl.jaas.config={login} username="{SCRAM_USER}" password="{password}";',
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls_dir(root) / 'ca.pem'}",
        ]
        create_private_file(path, "\n".join(lines))
    return path
