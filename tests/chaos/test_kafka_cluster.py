"""Herald where users run Kafka, on a stack of the test's own (`herald stack up --brokers 3
--secure`): three KRaft nodes with a SASL_SSL listener each (a SCRAM user, a local CA).

- The whole pipeline (schedule -> PUBLISHED) over SASL_SSL alone; a plaintext client, a
  wrong password and an untrusted certificate are refused, the last two at start with one
  line naming the setting.
- A broker lost mid-burst: the node leading most `publish.request` partitions is SIGKILLed
  while 5,000 sandbox jobs drain, and started again 25 s later. Every job ends terminal, each
  PUBLISHED job posted exactly once. The drain rates and the longest stall are printed
  (docs/performance.md keeps them; tests assert no timings).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import psycopg
import pytest
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

from bench.pipeline import BenchPipeline, JobTimes, utc_in
from herald.shared.infra.kafka.admin import admin
from herald.shared.infra.kafka.properties import CONFIG_FILE
from herald.shared.infra.paths import ROOT
from herald.shared.infra.settings import Settings
from stack import down, status, up, up_service
from stack.config import StackConfig
from stack.kafka_cluster import NODE_STEP, SECURE_OFFSET, client_properties_file, tls_dir
from tests.support.helpers import settings_env

pytestmark = pytest.mark.chaos

# Below the ephemeral range and used by no other test; nodes 2 and 3 add 100 and 200.
PORTS = {"kafka": 21092, "controller": 21093, "redis": 21379, "postgres": 21432, "prom": 21090}
BURST = 5_000
TERMINAL = ("PUBLISHED", "DEAD_LETTERED")


def _bootstrap(port: int) -> str:
    return ",".join(f"127.0.0.1:{port + NODE_STEP * k}" for k in range(3))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    folder = tmp_path_factory.mktemp("kafka-cluster")
    settings = Settings(
        stack_dir=folder / "stack",
        kafka_bootstrap=_bootstrap(PORTS["kafka"]),
        kafka_controller_port=PORTS["controller"],
        redis_url=f"redis://127.0.0.1:{PORTS['redis']}/0",
        database_url=f"postgresql://herald@127.0.0.1:{PORTS['postgres']}/herald",
        prometheus_port=PORTS["prom"],
    )
    try:
        assert up(settings, brokers=3, secure=True) == 0, "the test's own stack did not start"
        yield settings
    finally:
        down(settings)


def _herald(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "herald", *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )


def test_the_pipeline_over_sasl_ssl_and_what_is_refused(
    cluster: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = cluster.resolved_stack_dir().resolve()
    secure = Settings(
        **(cluster.model_dump() | {"kafka_bootstrap": _bootstrap(PORTS["kafka"] + SECURE_OFFSET)})
    )
    config_file = str(client_properties_file(root))
    assert "sasl.jaas.config=" in Path(config_file).read_text()
    assert Path(config_file).stat().st_mode & 0o077 == 0
    status(cluster)  # every node is listed
    listed = capsys.readouterr().out
    assert all(f"{name} " in listed for name in ("kafka", "kafka-2", "kafka-3")), listed

    env = dict(os.environ, HERALD_KAFKA_BOOTSTRAP=secure.kafka_bootstrap)
    env.pop(CONFIG_FILE, None)
    # Plaintext to the SASL_SSL listener: no metadata, ever.
    plain = confluent_kafka.Producer({"bootstrap.servers": secure.kafka_bootstrap})
    with pytest.raises(confluent_kafka.KafkaException):
        plain.list_topics(timeout=5)
    # A wrong password, and a CA that does not sign the brokers: one line naming the setting.
    wrong = _herald(
        env | {CONFIG_FILE: config_file, "HERALD_KAFKA_SASL_PASSWORD": "not-it"},
        "topics",
        "create",
    )
    assert wrong.returncode == 1, wrong.stderr
    assert wrong.stderr.startswith("herald: Kafka refused the login"), wrong.stderr
    assert "HERALD_KAFKA_SASL_PASSWORD" in wrong.stderr and "not-it" not in wrong.stderr
    leaf = tls_dir(root) / "broker.pem"  # the brokers' own certificate, not the CA
    untrusted = _herald(
        env
        | {
            CONFIG_FILE: config_file,
            "HERALD_KAFKA_SSL_CA_LOCATION": str(leaf),
        },
        "topics",
        "create",
    )
    assert untrusted.returncode == 1, untrusted.stderr
    assert untrusted.stderr.startswith("herald: Kafka TLS failed (HERALD_KAFKA_SSL_CA_LOCATION")
    # A service stops at start the same way, instead of retrying in the background.
    publisher = _herald(
        env | settings_env(secure) | {CONFIG_FILE: config_file, "HERALD_KAFKA_SASL_PASSWORD": "x"},
        "publisher",
    )
    assert publisher.returncode == 1
    assert publisher.stderr.splitlines()[-1].startswith("herald: Kafka refused the login")

    # The whole pipeline over SASL_SSL: topics, every service, the Python client.
    monkeypatch.setenv(CONFIG_FILE, config_file)
    with BenchPipeline(
        secure, publishers=1, connections=8, extra_env={CONFIG_FILE: config_file}
    ) as pipe:
        topic = (
            admin(secure.kafka_bootstrap)
            .list_topics(timeout=30)
            .topics[pipe.settings.topic_prefix + "publish.request"]
        )
        assert {len(p.replicas) for p in topic.partitions.values()} == {3}
        # The Python client schedules, then follows its jobs on publish.status.
        with pipe.client() as client:
            jobs = pipe.schedule(client, 50, utc_in(2))
            client.flush()
            final = {
                e["job_id"]: e["status"]
                for e in client.follow(jobs, timeout=120)
                if e.get("status") in TERMINAL
            }
        assert final == dict.fromkeys(jobs, "PUBLISHED")
        assert Counter(t.status for t in pipe.job_times()) == {"PUBLISHED": 50}


def test_topics_are_replicated_and_grow_but_never_shrink(cluster: Settings) -> None:
    env = settings_env(cluster, HERALD_TOPIC_PREFIX="grow.")
    env.pop(CONFIG_FILE, None)
    created = _herald(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert "grow.publish.request: 12 partitions, retention.ms=604800000 (created)" in (
        created.stderr
    )
    client = admin(cluster.kafka_bootstrap)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "grow.publish.request")
    config = client.describe_configs([resource])[resource].result()
    assert config["min.insync.replicas"].value == "2"
    grown = _herald(env, "topics", "create", "--partitions", "16")
    assert "grow.publish.request: 16 partitions, retention.ms=604800000 (grown from 12" in (
        grown.stderr
    )
    assert "grow.publish.dlq: 16 partitions" in grown.stderr
    kept = _herald(env, "topics", "create", "--partitions", "4")
    assert "grow.publish.request: 16 partitions, retention.ms=604800000 (exists; Kafka never" in (
        kept.stderr
    )
    topics = client.list_topics(timeout=30).topics
    assert len(topics["grow.publish.request"].partitions) == 16
    assert {len(p.replicas) for p in topics["grow.publish.request"].partitions.values()} == {3}


def _java(cfg: StackConfig, *args: str) -> subprocess.CompletedProcess[str]:
    """The Java producer example, run from source against the broker's own client jars."""
    example = ROOT / "examples" / "producers" / "ScheduleProducer.java"
    java = [shutil.which("java") or "java", "-cp", f"{cfg.kafka_libs}/*", str(example)]
    return subprocess.run([*java, *args], text=True, capture_output=True, timeout=120)


def test_a_java_service_schedules_over_sasl_ssl_and_follows_its_job(
    cluster: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = StackConfig.from_settings(cluster)
    bootstrap = _bootstrap(PORTS["kafka"] + SECURE_OFFSET)
    secure = Settings(**(cluster.model_dump() | {"kafka_bootstrap": bootstrap}))
    config_file = str(client_properties_file(cfg.root))
    monkeypatch.setenv(CONFIG_FILE, config_file)
    over_tls = {CONFIG_FILE: config_file}
    with BenchPipeline(secure, publishers=1, connections=2, extra_env=over_tls) as pipe:
        prefix, connection = pipe.settings.topic_prefix, pipe.connections[0]
        common = [config_file, bootstrap, prefix]
        sent = _java(cfg, "send", *common, "default", connection, "sandbox")
        assert sent.returncode == 0, sent.stderr[-2000:]
        job = sent.stdout.strip()
        followed = _java(cfg, "follow", *common, job, "90")
        assert followed.returncode == 0, followed.stdout + followed.stderr[-2000:]
        assert "publish.status " in followed.stdout and '"status":"PUBLISHED"' in followed.stdout
        # A command Herald refuses (a platform name outside the schema's pattern) surfaces
        # on publish.dlq under its job id, as invalid_message.
        refused = _java(cfg, "send", *common, "default", connection, "Not-A-Platform")
        assert refused.returncode == 0, refused.stderr[-2000:]
        followed = _java(cfg, "follow", *common, refused.stdout.strip(), "90")
        assert followed.returncode == 0, followed.stdout + followed.stderr[-2000:]
        assert '"reason":"invalid_message"' in followed.stdout, followed.stdout
        assert Counter(t.status for t in pipe.job_times()) == {"PUBLISHED": 1}


def test_a_broker_lost_mid_burst(cluster: Settings) -> None:
    cfg = StackConfig.from_settings(cluster)
    # Each publisher copy holds 32 requests at once against a sandbox taking 0.25 s a post:
    # the burst drains for about 20 s, long enough to lose a broker in the middle of it.
    with BenchPipeline(
        cluster, publishers=2, latency_ms=250, connections=48, max_in_flight=32
    ) as pipe:
        topic = pipe.settings.topic_prefix + "publish.request"
        leaders = Counter(
            p.leader
            for p in admin(cluster.kafka_bootstrap)
            .list_topics(timeout=30)
            .topics[topic]
            .partitions.values()
        )
        node = leaders.most_common(1)[0][0]
        victim = "kafka" if node == 1 else f"kafka-{node}"
        client = pipe.client()
        due = utc_in(8)
        pipe.schedule(client, BURST, due)
        client.flush()
        with psycopg.connect(pipe.settings.database_url, autocommit=True) as conn:
            sql = f'SELECT count(*) FROM "{pipe.settings.db_schema}".sandbox_posts'
            deadline = time.monotonic() + 180
            while _count(conn, sql) < BURST // 4:
                assert time.monotonic() < deadline, "the burst never got going"
                pipe.check_alive()
                time.sleep(0.1)
        pid = int(cfg.pid_path(victim).read_text())
        os.kill(pid, signal.SIGKILL)
        killed = time.time()
        # Long enough for the controllers to fence it (broker.session.timeout.ms, 9 s) and
        # move its partitions' leadership: the drain goes on with two brokers, then with three.
        time.sleep(25)
        restart = threading.Thread(target=up_service, args=(cluster, victim))
        restart.start()
        restarted = time.time()
        done = pipe.wait_terminal(BURST, timeout=300, label="broker lost")
        restart.join()
        pipe.check_alive()
        times = pipe.job_times()
        with psycopg.connect(pipe.settings.database_url, autocommit=True) as conn:
            posts = Counter(
                str(r[0])
                for r in conn.execute(
                    f'SELECT job_id FROM "{pipe.settings.db_schema}".sandbox_posts'
                ).fetchall()
            )
    assert done == BURST and len(times) == BURST
    assert {t.status for t in times} <= set(TERMINAL), Counter(t.status for t in times)
    doubled = [j for j, n in posts.items() if n > 1]
    assert not doubled, f"{len(doubled)} jobs posted twice, e.g. {doubled[:3]}"
    assert set(posts) == {t.job_id for t in times if t.status == "PUBLISHED"}
    _print_figures(victim, times, due.timestamp(), killed, restarted)


def _count(conn: psycopg.Connection[tuple[int]], sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _print_figures(
    victim: str, times: list[JobTimes], due: float, killed: float, restarted: float
) -> None:
    posted = sorted(t.published for t in times if t.published is not None)
    stall, resumed = max(((b - a, b) for a, b in itertools.pairwise(posted)), default=(0.0, due))
    end = posted[-1]

    def rate(begin: float, until: float) -> str:
        n = sum(1 for p in posted if begin <= p < until)
        return f"{n / (until - begin):.0f}/s ({n} jobs)" if until > begin else "- (drained)"

    print(
        f"\n{victim} SIGKILLed {killed - due:.1f} s after the burst was due, started again"
        f" {restarted - killed:.1f} s later. Published: before the kill {rate(due, killed)};"
        f" longest stall {stall:.2f} s (ended {resumed - killed:.1f} s after the kill);"
        f" then on two brokers {rate(max(killed, resumed), restarted)};"
        f" after the restart {rate(restarted, end + 1e-6)};"
        f" whole burst {len(posted) / (end - due):.0f}/s, {end - due:.1f} s"
    )
