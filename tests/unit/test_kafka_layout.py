"""The local Kafka's layouts: one plaintext node unchanged, several nodes, a secured listener."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from herald.shared.errors import ConfigError
from herald.shared.infra.kafka.admin import min_insync_replicas, replication_factor
from herald.shared.infra.settings import Settings
from stack.config import SERVER_PROPERTIES_TEMPLATE, StackConfig
from stack.kafka_cluster import (
    Layout,
    apply_overrides,
    choose_layout,
    node_overrides,
    save_layout,
)
from stack.render import render_server_properties


def _node(layout: Layout, node: int) -> dict[str, str]:
    return node_overrides(
        layout,
        node,
        broker_port=9092,
        controller_port=9093,
        data=Path("/d"),
        tls_dir=Path("/tls"),
        keystore_password="pw",
    )


def test_three_nodes_form_a_static_quorum_with_replicated_internal_topics() -> None:
    node = _node(Layout(3), 2)
    assert node["node.id"] == "2"
    assert node["listeners"] == "PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193"
    assert node["controller.quorum.voters"] == (
        "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"
    )
    assert node["offsets.topic.replication.factor"] == "3"
    assert node["transaction.state.log.replication.factor"] == "3"
    assert node["min.insync.replicas"] == "2"
    rendered = render_server_properties(
        SERVER_PROPERTIES_TEMPLATE.read_text(),
        broker_port=9092,
        controller_port=9093,
        log_dirs=Path("/d"),
    )
    text = apply_overrides(rendered, node)
    assert "controller.quorum.bootstrap.servers" not in text  # static voters instead
    assert text.count("node.id=") == 1 and "node.id=2\n" in text
    assert "default.replication.factor=3\n" in text  # added where the template had none


def test_a_secured_node_adds_sasl_ssl_on_the_broker_port_plus_two() -> None:
    node = _node(Layout(1, secure=True), 1)
    assert "SASL_SSL://127.0.0.1:9094" in node["listeners"]
    assert node["listener.security.protocol.map"].endswith("SASL_SSL:SASL_SSL")
    assert node["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert node["ssl.keystore.location"] == "/tls/broker.p12"
    assert node["offsets.topic.replication.factor"] == "1"
    assert "controller.quorum.voters" not in node  # one node keeps its dynamic quorum


def test_topics_replicas_follow_the_broker_count() -> None:
    assert [replication_factor(n) for n in (1, 2, 3, 5)] == [1, 2, 3, 3]
    assert [min_insync_replicas(replication_factor(n)) for n in (1, 2, 3)] == [1, 2, 2]


def test_a_formatted_layout_is_kept_and_a_different_one_refused(tmp_path: Path) -> None:
    assert choose_layout(tmp_path, None, None) == Layout()
    assert choose_layout(tmp_path, 3, True) == Layout(3, True)
    save_layout(tmp_path, Layout(3, True))
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("")
    assert choose_layout(tmp_path, None, None) == Layout(3, True)
    with pytest.raises(ConfigError, match="formatted as 3 nodes with a SASL_SSL listener"):
        choose_layout(tmp_path, 1, None)
    with pytest.raises(ConfigError, match="give 1 to 9"):
        choose_layout(tmp_path, 0, None)


def test_every_node_is_a_service_of_the_stack_with_its_own_ports(tmp_path: Path) -> None:
    cfg = StackConfig.from_settings(Settings(stack_dir=tmp_path))
    assert cfg.service_names() == ["postgres", "redis", "kafka", "prometheus"]
    assert cfg.ports("kafka") == (9092, 9093)
    cfg = dataclasses.replace(cfg, layout=Layout(3, secure=True))
    assert cfg.service_names() == ["postgres", "redis", "kafka", "kafka-2", "kafka-3", "prometheus"]
    assert cfg.ports("kafka-3") == (9292, 9293, 9294)
    assert cfg.endpoint("kafka-2").address == "127.0.0.1:9192"
