"""deploy/compose.yaml against the facts it depends on (no Docker engine runs here): the
image's entrypoint and the services' commands, the settings each Herald container reads,
the stores' addresses, the ports Prometheus scrapes, the files Prometheus and Grafana are
given and the paths their provisioning expects."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from herald.shared.infra.paths import ROOT
from herald.shared.infra.settings import Settings, mask_credentials
from tests.deploy.test_chart import SETTINGS, drain_grace

DEPLOY = ROOT / "deploy"
SERVICES = ("scheduler", "publisher", "results", "api")
INTERPOLATION = re.compile(r"^\$\{(\w+):\?[^}]+\}$")  # required from the user's shell


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data["services"]


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> the file or folder of the checkout mounted there."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = (DEPLOY / source).resolve()
    return found


def settings_of(service: dict[str, Any]) -> Settings:
    env = service["environment"]
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    values = {}
    for name, value in env.items():
        required = INTERPOLATION.match(str(value))
        if required:
            assert required.group(1) == name
            value = "given-by-the-user"
        values[name[len("HERALD_") :].lower()] = value
    return Settings(**values)


def test_herald_services_run_the_image_with_their_command_and_settings(
    compose: dict[str, Any],
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["herald"]' in dockerfile
    for name in (*SERVICES, "init"):
        service = compose[name]
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        settings = settings_of(service)
        # Every setting is a plain value except the key ring, which comes from the shell.
        assert service["environment"]["HERALD_SECRET_KEY"].startswith("${HERALD_SECRET_KEY:?")
        for setting, value in service["environment"].items():
            assert mask_credentials(str(value)) == str(value), setting
        assert settings.bind_address == "0.0.0.0"
        # The stores are the compose services, at the ports they listen on.
        kafka = compose["kafka"]["environment"]
        assert f"PLAINTEXT://{settings.kafka_bootstrap}" == kafka["KAFKA_ADVERTISED_LISTENERS"]
        assert settings.redis_url.startswith("redis://redis:6379/")
        assert settings.database_url.startswith("postgresql://herald@postgres:5432/")
        assert compose["postgres"]["environment"]["POSTGRES_USER"] == "herald"
        if name == "init":
            assert service["entrypoint"] == ["/bin/sh", "-c"]
            assert service["command"] == ["herald migrate && herald topics create"]
            for store in ("kafka", "redis", "postgres"):
                assert service["depends_on"][store] == {"condition": "service_healthy"}
            continue
        assert service["command"] == [name]
        assert service["depends_on"] == {"init": {"condition": "service_completed_successfully"}}
        grace = float(service["stop_grace_period"].removesuffix("s"))
        assert grace > drain_grace()
        if name == "api":
            assert service["ports"] == [f"127.0.0.1:{settings.api_port}:{settings.api_port}"]
    assert compose["publisher"]["deploy"]["replicas"] == 3


def test_the_stores_are_kraft_kafka_redis_with_aof_and_postgres(compose: dict[str, Any]) -> None:
    kafka = compose["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1
    assert compose["redis"]["command"][-2:] == ["--appendonly", "yes"]
    assert compose["postgres"]["image"].startswith("postgres:")
    for store in ("kafka", "redis", "postgres"):
        assert compose[store]["healthcheck"]["test"][0] == "CMD"
        assert compose[store]["volumes"]  # data outlives the container


def test_prometheus_scrapes_every_herald_service_with_the_alert_rules(
    compose: dict[str, Any],
) -> None:
    given = mounts(compose["prometheus"])
    config_path = given["/etc/prometheus/prometheus.yml"]
    assert config_path == DEPLOY / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    for rules in config["rule_files"]:
        assert given[f"/etc/prometheus/{rules}"] == DEPLOY / "prometheus" / rules
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "herald-compose"]
    (dns,) = job["dns_sd_configs"]
    assert sorted(dns["names"]) == sorted(SERVICES)
    for name in SERVICES:
        assert settings_of(compose[name]).metrics_port == dns["port"]


def test_grafana_is_provisioned_with_the_dashboards_and_the_prometheus_source(
    compose: dict[str, Any],
) -> None:
    given = mounts(compose["grafana"])
    provisioning = "/etc/grafana/provisioning"
    files = given[f"{provisioning}/datasources"].glob("*.yml")
    (source,) = [d for f in files for d in yaml.safe_load(f.read_text())["datasources"]]
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose["prometheus"]["ports"][0]
    (dashboards,) = given[f"{provisioning}/dashboards"].glob("*.yml")
    (provider,) = yaml.safe_load(dashboards.read_text())["providers"]
    folder = given[provider["options"]["path"]]
    assert folder == DEPLOY / "grafana" / "dashboards"
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "herald-overview.json",
        "herald-platform.json",
    ]
