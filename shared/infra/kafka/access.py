"""The check every process makes before it works: do the brokers accept its client settings?

A wrong password or an untrusted certificate is not an outage to wait out: librdkafka would
retry it forever in the background. The process stops at start instead, with one line that
names the setting to fix. A broker that does not answer at all is left to the usual retries.
"""

from __future__ import annotations

import logging
import re
import time

import confluent_kafka

from herald.shared.errors import ConfigError
from herald.shared.infra.kafka.client import base_config
from herald.shared.infra.kafka.properties import ClientProperties, client_properties

_quiet = logging.getLogger("herald.kafka.access")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False

_AUTH = confluent_kafka.KafkaError._AUTHENTICATION
_SSL = confluent_kafka.KafkaError._SSL


def _refusal(err: confluent_kafka.KafkaError, props: ClientProperties) -> str | None:
    """The line to stop with when `err` says the brokers refuse these settings."""
    text = err.str()
    if err.code() == _AUTH:
        where = props.where("sasl.username", "sasl.password")
        return f"Kafka refused the login ({where}): {text}"
    if err.code() == _SSL or "SSL handshake failed" in text:
        names = ("ssl.ca.location", "ssl.ca.pem") if "certificate verify" in text else ()
        where = props.where(*names) if names else props.where("security.protocol")
        return f"Kafka TLS failed ({where}): {text}"
    return None


def verify_access(bootstrap: str, timeout: float = 20.0) -> None:
    """Return once a broker answered a metadata request, or after `timeout` when none
    answered; raise ConfigError when the client settings are unusable or refused."""
    props = client_properties()
    refused: list[str] = []

    def on_error(err: confluent_kafka.KafkaError) -> None:
        line = _refusal(err, props)
        if line is not None:
            refused.append(line)

    conf = base_config(bootstrap) | {"error_cb": on_error, "logger": _quiet}
    try:
        client = confluent_kafka.Producer(conf)
    except confluent_kafka.KafkaException as exc:  # an unknown property or a bad value
        text = exc.args[0].str()
        named = re.search(r'property:? "([^"]+)"', text)
        where = f" ({props.where(named.group(1))})" if named else ""
        raise ConfigError(f"Kafka client settings{where}: {text}") from None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            client.poll(0.2)
            if refused:
                raise ConfigError(refused[0])
            try:
                client.list_topics(timeout=1.0)
            except confluent_kafka.KafkaException:
                continue
            return
    finally:
        client.flush(0)
