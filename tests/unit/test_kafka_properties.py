"""HERALD_KAFKA_<PROPERTY> and HERALD_KAFKA_CONFIG_FILE reach every Kafka client."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.shared.errors import ConfigError
from herald.shared.infra.kafka import properties
from herald.shared.infra.kafka.access import verify_access
from herald.shared.infra.kafka.client import base_config
from herald.shared.infra.kafka.properties import client_properties, env_name, prop_name
from herald.shared.infra.settings import Settings


def test_variables_become_librdkafka_properties() -> None:
    props = client_properties(
        {
            "HERALD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "HERALD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "HERALD_KAFKA_SASL_USERNAME": "herald",
            "HERALD_KAFKA_SASL_PASSWORD": "s3cret",
            "HERALD_KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
            "HERALD_KAFKA_LOG_LEVEL": "3",
            "HERALD_REDIS_URL": "redis://x",
        }
    )
    assert props.values == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "herald",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ca.pem",
        "log_level": "3",
    }
    assert props.where("sasl.password") == "HERALD_KAFKA_SASL_PASSWORD"
    assert prop_name(env_name("ssl.endpoint.identification.algorithm")) == (
        "ssl.endpoint.identification.algorithm"
    )


def test_herald_own_kafka_settings_are_not_passed_through(tmp_path: Path) -> None:
    own = {f"HERALD_{name.upper()}" for name in Settings.model_fields if name.startswith("kafka_")}
    assert own <= properties.OWN_SETTINGS  # a new kafka_* setting must be listed there
    file = tmp_path / "client.properties"
    file.write_text("")
    env = {name: "1" for name in own} | {"HERALD_KAFKA_CONFIG_FILE": str(file)}
    assert client_properties(env).values == {}


def test_a_properties_file_with_java_login_and_a_variable_winning(tmp_path: Path) -> None:
    file = tmp_path / "client.properties"
    file.write_text(
        "# written for the Java clients\n"
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism : SCRAM-SHA-256\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        '    username="svc" password="p=w\\"d";\n'
        "ssl.ca.location=/from/file.pem\n"
    )
    props = client_properties(
        {"HERALD_KAFKA_CONFIG_FILE": str(file), "HERALD_KAFKA_SSL_CA_LOCATION": "/from/env.pem"}
    )
    assert props.values == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "svc",
        "sasl.password": 'p=w"d',
        "ssl.ca.location": "/from/env.pem",
    }
    assert props.where("sasl.password").startswith(f"sasl.jaas.config ({file}:4)")
    assert props.masked()["sasl.password"] == "***"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HERALD_KAFKA_ACKS", "1"),
        ("HERALD_KAFKA_ENABLE_IDEMPOTENCE", "false"),
        ("HERALD_KAFKA_ENABLE_AUTO_COMMIT", "true"),
        ("HERALD_KAFKA_ISOLATION_LEVEL", "read_uncommitted"),
        ("HERALD_KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092"),
    ],
)
def test_properties_herald_relies_on_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: Herald sets"):
        client_properties({name: value})


def test_a_refused_property_in_the_file_names_its_line(tmp_path: Path) -> None:
    file = tmp_path / "client.properties"
    file.write_text("security.protocol=SSL\nacks=1\n")
    with pytest.raises(ConfigError, match=rf"acks \({file}:2\): Herald sets acks"):
        client_properties({"HERALD_KAFKA_CONFIG_FILE": str(file)})


def test_an_unreadable_file_is_one_line() -> None:
    with pytest.raises(ConfigError, match="HERALD_KAFKA_CONFIG_FILE: cannot read /nope"):
        client_properties({"HERALD_KAFKA_CONFIG_FILE": "/nope/client.properties"})


def test_every_client_gets_them_and_settings_print_them_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HERALD_KAFKA_SASL_PASSWORD", "s3cret-value")
    monkeypatch.setenv("HERALD_KAFKA_SSL_KEY_PASSWORD", "other-secret")
    monkeypatch.setenv("HERALD_KAFKA_SOCKET_TIMEOUT_MS", "7000")
    config = base_config("b:9092")
    assert config["sasl.password"] == "s3cret-value"
    assert config["socket.timeout.ms"] == "7000" and config["bootstrap.servers"] == "b:9092"
    printed = Settings().masked()["kafka_client_properties"]
    assert printed == {
        "sasl.password": "***",
        "socket.timeout.ms": "7000",
        "ssl.key.password": "***",
    }
    shown = repr(Settings().masked())
    assert "s3cret-value" not in shown and "other-secret" not in shown


def test_a_java_pem_truststore_is_the_ca_and_a_jks_one_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "java.properties"
    file.write_text("ssl.truststore.type=PEM\nssl.truststore.location=/etc/ca.pem\n")
    props = client_properties({"HERALD_KAFKA_CONFIG_FILE": str(file)})
    assert props.values == {"ssl.ca.location": "/etc/ca.pem"}
    file.write_text("ssl.truststore.location=/etc/truststore.jks\nssl.truststore.type=JKS\n")
    with pytest.raises(ConfigError, match="librdkafka reads PEM certificates only"):
        client_properties({"HERALD_KAFKA_CONFIG_FILE": str(file)})


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("HERALD_KAFKA_NO_SUCH_THING", "1", 'No such configuration property: "no.such.thing"'),
        ("HERALD_KAFKA_SOCKET_TIMEOUT_MS", "abc", "Invalid value for configuration property"),
    ],
)
def test_an_unknown_property_or_a_bad_value_stops_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^Kafka client settings \\({name}\\): {says}"):
        verify_access("127.0.0.1:1", timeout=0.1)
