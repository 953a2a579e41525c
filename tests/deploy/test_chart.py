"""The Helm chart (deploy/helm/herald), linted and rendered by Helm 3 (built once into the
tool cache), checked against what the code says: the services and their commands, the
ports and probe paths they serve, the settings they read, the drain they do on SIGTERM,
the consumer group and topic the publishers' lag is measured on, and the partitions that
bound the publishers. Secret values are never inline: only references to Secrets."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from herald.shared.infra.kafka.admin import load_topic_specs
from herald.shared.infra.kafka.concurrent_consumer import ConcurrentConsumer
from herald.shared.infra.names import PUBLISHER_GROUP, REQUEST, Names
from herald.shared.infra.paths import ROOT
from herald.shared.infra.process import Supervisor
from herald.shared.infra.settings import Settings, mask_credentials
from tests.support.deploy_tools import helm, run

CHART = ROOT / "deploy" / "helm" / "herald"
SERVICES = ("scheduler", "publisher", "results", "api")
SECRET_NAME = re.compile(r"secret|password|token|credential", re.IGNORECASE)
SETTINGS = {f"HERALD_{name.upper()}" for name in Settings.model_fields}
# The Kafka clusters' pass-through: librdkafka properties as HERALD_KAFKA_<PROPERTY>.
KAFKA = [
    "--set-string",
    "kafka.properties.security\\.protocol=SASL_SSL",
    "--set-string",
    "kafka.properties.sasl\\.mechanism=SCRAM-SHA-512",
    "--set-string",
    "kafka.properties.sasl\\.username=herald",
    "--set-string",
    "kafka.secretProperties.sasl\\.password.name=kafka-client",
    "--set-string",
    "kafka.secretProperties.sasl\\.password.key=password",
    "--set-string",
    "kafka.configFileSecret.name=kafka-client",
    "--set-string",
    "kafka.configFileSecret.key=client.properties",
]
KAFKA_PLAIN = {
    "HERALD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "HERALD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "HERALD_KAFKA_SASL_USERNAME": "herald",
    "HERALD_KAFKA_CONFIG_FILE": "/etc/herald/kafka/client.properties",
}
PREFIX = ["--set-string", "env.HERALD_TOPIC_PREFIX=prod."]


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    return helm()


def template(helm_bin: Path, *args: str) -> list[dict[str, Any]]:
    out = run([helm_bin, "template", "herald", CHART, "--namespace", "herald", *args]).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def drain_grace() -> float:
    """The longest a service takes to stop after SIGTERM: in-flight messages, then its loops."""
    consumer = inspect.signature(ConcurrentConsumer).parameters["drain_grace"].default
    loops = inspect.signature(Supervisor.cancel_all).parameters["grace"].default
    return float(consumer + loops)


@pytest.mark.timeout(1800)  # the first run builds Helm
def test_helm_lints_the_chart(helm_bin: Path) -> None:
    out = run([helm_bin, "lint", "--strict", CHART, *KAFKA]).stdout
    assert "0 chart(s) failed" in out


def test_a_deployment_per_service_with_its_command_ports_and_probes(helm_bin: Path) -> None:
    docs = template(helm_bin)
    (config,) = by_kind(docs, "ConfigMap").values()
    settings = Settings(**{k[len("HERALD_") :].lower(): v for k, v in config["data"].items()})
    assert settings.bind_address == "0.0.0.0"
    deployments = by_kind(docs, "Deployment")
    assert sorted(deployments) == sorted(f"herald-{s}" for s in SERVICES)
    for service in SERVICES:
        pod = deployments[f"herald-{service}"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == [service]
        assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        expected = {"metrics": settings.metrics_port}
        if service == "api":
            expected["http"] = settings.api_port
        assert ports == expected
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert pod["terminationGracePeriodSeconds"] > drain_grace()
        assert pod["securityContext"]["runAsNonRoot"] is True

    # A disruption budget and a headless metrics Service per service, named as
    # deploy/prometheus/prometheus.yml finds them (SRV _metrics._tcp.<service>.<namespace>).
    budgets = by_kind(docs, "PodDisruptionBudget")
    services = by_kind(docs, "Service")
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (k8s,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "herald-kubernetes"]
    srv_names = set(k8s["dns_sd_configs"][0]["names"])
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        assert budgets[name]["spec"]["selector"]["matchLabels"] == selector
        assert services[name]["spec"]["selector"] == selector
        assert services[name]["spec"]["clusterIP"] == "None"
        metrics = [p for p in services[name]["spec"]["ports"] if p["name"] == "metrics"]
        assert metrics == [
            {
                "name": "metrics",
                "port": settings.metrics_port,
                "targetPort": "metrics",
                "protocol": "TCP",
            }
        ]
        assert f"_metrics._tcp.{name}.herald.svc.cluster.local" in srv_names


def test_every_variable_is_a_setting_and_no_secret_is_inline(helm_bin: Path) -> None:
    docs = template(helm_bin, *KAFKA, *PREFIX)
    assert not by_kind(docs, "Secret")
    (config,) = by_kind(docs, "ConfigMap").values()
    plain = dict(config["data"])
    pods = [*by_kind(docs, "Deployment").values(), *by_kind(docs, "Job").values()]
    assert len(pods) == 5
    for doc in pods:
        for container in containers(doc):
            env = container["env"]
            inline = {e["name"]: e["value"] for e in env if "value" in e}
            if "envFrom" not in container:  # the migration Job: the same settings, inline
                assert inline == plain
            refs = {e["name"]: e["valueFrom"] for e in env if "valueFrom" in e}
            assert refs["HERALD_SECRET_KEY"]["secretKeyRef"]["name"]
            assert refs["HERALD_DATABASE_URL"]["secretKeyRef"]["name"]
            assert refs["HERALD_KAFKA_SASL_PASSWORD"]["secretKeyRef"] == {
                "name": "kafka-client",
                "key": "password",
            }
            assert refs["HERALD_REPLICA"] == {"fieldRef": {"fieldPath": "metadata.name"}}
            names = set(inline) | set(refs) | set(plain)
            assert names - SETTINGS == {*KAFKA_PLAIN, "HERALD_KAFKA_SASL_PASSWORD"}, doc
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert str(Path(plain["HERALD_KAFKA_CONFIG_FILE"]).parent) in mounts
    assert plain.items() >= KAFKA_PLAIN.items()
    assert plain["HERALD_TOPIC_PREFIX"] == "prod."
    for name, value in plain.items():
        assert not SECRET_NAME.search(name) and mask_credentials(value) == value, name

    # A secret value given as a plain value is refused, never rendered.
    for wrong in ("env.HERALD_SECRET_KEY=k", "kafka.properties.sasl\\.password=p"):
        with pytest.raises(RuntimeError, match="looks secret"):
            template(helm_bin, "--set-string", wrong)
    with pytest.raises(RuntimeError, match="HERALD_SECRET_KEY is required"):
        template(helm_bin, "--set", "secretEnv.HERALD_SECRET_KEY=null")


def test_publishers_scale_on_their_lag_with_keda_and_on_cpu_without(helm_bin: Path) -> None:
    (request,) = [t for t in load_topic_specs() if t.name == REQUEST]
    names = Names(topic_prefix="prod.")

    keda = template(helm_bin, *PREFIX, "--api-versions", "keda.sh/v1alpha1")
    assert not by_kind(keda, "HorizontalPodAutoscaler")
    (scaled,) = by_kind(keda, "ScaledObject").values()
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "herald-publisher"
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= request.partitions
    (trigger,) = spec["triggers"]
    query = trigger["metadata"]["query"]
    assert f'group="{names.group(PUBLISHER_GROUP)}"' in query
    assert f'topic="{names.topic(REQUEST)}"' in query
    assert "herald_consumer_lag" in query
    assert int(trigger["metadata"]["threshold"]) >= 1
    # The autoscaler owns the publishers' replica count; the others keep theirs.
    deployments = by_kind(keda, "Deployment")
    assert "replicas" not in deployments["herald-publisher"]["spec"]
    assert deployments["herald-results"]["spec"]["replicas"] >= 1

    plain = template(helm_bin, "--set", "autoscaling.minReplicas=0")
    assert not by_kind(plain, "ScaledObject")
    (hpa,) = by_kind(plain, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "herald-publisher",
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= request.partitions
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_migrations_and_topics_run_before_install_and_upgrade(helm_bin: Path) -> None:
    (job,) = by_kind(template(helm_bin), "Job").values()
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert sorted(hooks) == ["pre-install", "pre-upgrade"]
    spec = job["spec"]["template"]["spec"]
    assert [c["args"] for c in spec["initContainers"]] == [["migrate"]]
    assert [c["args"] for c in spec["containers"]] == [["topics", "create"]]
    assert spec["restartPolicy"] == "Never"


def test_the_service_monitor_scrapes_every_metrics_port_when_enabled(helm_bin: Path) -> None:
    assert not by_kind(template(helm_bin), "ServiceMonitor")
    docs = template(helm_bin, "--set", "serviceMonitor.enabled=true")
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    for service in by_kind(docs, "Service").values():
        assert selector.items() <= service["metadata"]["labels"].items()
    targets = {r["targetLabel"] for r in monitor["spec"]["endpoints"][0]["relabelings"]}
    assert targets == {"service", "replica"}  # the labels the alerts and dashboards use
