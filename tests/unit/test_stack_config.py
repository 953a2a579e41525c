"""The pure part of `herald stack`: ports from URLs, paths, rendered configs (no processes)."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from herald.shared.errors import ConfigError
from herald.shared.infra import paths
from herald.shared.infra.paths import DEPLOY_DIR
from herald.shared.infra.settings import Settings
from stack.argv import (
    kafka_argv,
    kafka_format_argv,
    postgres_argv,
    prometheus_argv,
    redis_argv,
)
from stack.config import (
    ALERTS_FILE,
    PROMETHEUS_DIR,
    PROMETHEUS_TEMPLATE,
    SERVER_PROPERTIES_TEMPLATE,
    SERVICES,
    Endpoint,
    StackConfig,
    parse_database_url,
    parse_kafka_bootstrap,
    parse_redis_url,
    socket_dir_for,
)
from stack.render import (
    format_status_rows,
    kafka_version_from_jars,
    kafka_version_from_log,
    new_kafka_cluster_id,
    render_prometheus_config,
    render_server_properties,
)


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("bootstrap", "host", "port"),
    [
        ("127.0.0.1:9092", "127.0.0.1", 9092),
        ("localhost:19092,other:9092", "localhost", 19092),
        (" 127.0.0.1:29092 ", "127.0.0.1", 29092),
        ("PLAINTEXT://127.0.0.1:9094", "127.0.0.1", 9094),
        ("[::1]:9095", "::1", 9095),
        ("kafka.internal", "kafka.internal", 9092),
    ],
)
def test_kafka_bootstrap_first_broker(bootstrap: str, host: str, port: int) -> None:
    assert parse_kafka_bootstrap(bootstrap) == Endpoint(host, port)


@pytest.mark.parametrize("bootstrap", ["", "127.0.0.1:abc", "127.0.0.1:70000", "h:0"])
def test_kafka_bootstrap_rejects_bad_values(bootstrap: str) -> None:
    with pytest.raises(ConfigError):
        parse_kafka_bootstrap(bootstrap)


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("redis://127.0.0.1:6379/0", Endpoint("127.0.0.1", 6379)),
        ("redis://127.0.0.1:16379/3", Endpoint("127.0.0.1", 16379)),
        ("redis://localhost", Endpoint("localhost", 6379)),
        ("redis://:pw@127.0.0.1:7000", Endpoint("127.0.0.1", 7000)),
        ("rediss://cache.example.com:6380/0", Endpoint("cache.example.com", 6380)),
    ],
)
def test_redis_url_port(url: str, endpoint: Endpoint) -> None:
    assert parse_redis_url(url) == endpoint


def test_redis_url_rejects_other_schemes() -> None:
    with pytest.raises(ConfigError):
        parse_redis_url("unix:///run/redis.sock")
    with pytest.raises(ConfigError):
        parse_redis_url("redis://127.0.0.1:notaport/0")


def test_database_url_default() -> None:
    target = parse_database_url("postgresql://herald@127.0.0.1:5432/herald")
    assert target.endpoint == Endpoint("127.0.0.1", 5432)
    assert (target.user, target.dbname, target.password) == ("herald", "herald", None)


def test_database_url_other_port_user_password() -> None:
    target = parse_database_url("postgresql://app:s3cret@localhost:15432/appdb")
    assert target.endpoint == Endpoint("localhost", 15432)
    assert (target.user, target.dbname, target.password) == ("app", "appdb", "s3cret")


def test_database_url_defaults_and_keyword_form() -> None:
    bare = parse_database_url("postgresql://127.0.0.1")
    assert bare.endpoint.port == 5432
    assert (bare.user, bare.dbname) == ("herald", "herald")
    keywords = parse_database_url("host=127.0.0.1 port=25432 user=u dbname=d")
    assert keywords.endpoint == Endpoint("127.0.0.1", 25432)
    assert (keywords.user, keywords.dbname) == ("u", "d")


def test_database_url_unix_socket_is_not_local() -> None:
    assert not parse_database_url("postgresql:///herald?host=/run/postgresql").endpoint.local


def test_endpoint_local_and_address() -> None:
    assert Endpoint("127.0.0.1", 1).local
    assert Endpoint("LOCALHOST", 1).local
    assert Endpoint("::1", 1).local
    assert Endpoint("::1", 9092).address == "[::1]:9092"
    assert not Endpoint("db.example.com", 5432).local


# ---------------------------------------------------------------- stack config


def _config(tmp_path: Path, **overrides: object) -> StackConfig:
    values: dict[str, object] = {
        "stack_dir": tmp_path / "stack",
        "kafka_bootstrap": "127.0.0.1:19092",
        "kafka_controller_port": 19093,
        "redis_url": "redis://127.0.0.1:16379/0",
        "database_url": "postgresql://herald@127.0.0.1:15432/herald",
        "prometheus_port": 19090,
    }
    values.update(overrides)
    return StackConfig.from_settings(Settings(**values))  # type: ignore[arg-type]


def test_ports_come_from_the_urls(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert cfg.ports("kafka") == (19092, 19093)
    assert cfg.ports("redis") == (16379,)
    assert cfg.ports("postgres") == (15432,)
    assert cfg.ports("prometheus") == (19090,)
    assert {cfg.endpoint(name).address for name in SERVICES} == {
        "127.0.0.1:19092",
        "127.0.0.1:16379",
        "127.0.0.1:15432",
        "127.0.0.1:19090",
    }
    with pytest.raises(ConfigError):
        cfg.ports("zookeeper")


def test_paths_live_under_the_stack_dir(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    root = (tmp_path / "stack").resolve()
    assert cfg.root == root
    assert cfg.log_path("kafka") == root / "logs" / "kafka.log"
    assert cfg.pid_path("redis") == root / "pids" / "redis.pid"
    assert cfg.kafka_libs == root / "kafka" / "libs"
    assert cfg.kafka_data.is_relative_to(root)
    assert cfg.prometheus_targets == root / "prometheus" / "targets.json"
    assert cfg.postgres_default_data == root / "postgres" / "pgdata"


def test_relative_stack_dir_resolves_from_the_checkout(tmp_path: Path) -> None:
    cfg = _config(tmp_path, stack_dir=Path("some-stack"))
    assert cfg.root == (DEPLOY_DIR.parent / "some-stack").resolve()


def test_installed_from_a_wheel_the_stack_dir_is_the_users_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a checkout nothing is written beside the installed package."""
    monkeypatch.setattr(paths, "in_checkout", lambda: False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("HERALD_STACK_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Settings().resolved_stack_dir() == tmp_path / "state" / "herald"
    assert Settings(stack_dir=Path("here")).resolved_stack_dir() == tmp_path / "here"
    with pytest.raises(ConfigError, match=r"`herald bench` needs a checkout of Herald"):
        paths.checkout_tools("bench")


def test_external_postgres_home_is_stable_per_stack(tmp_path: Path) -> None:
    first = _config(tmp_path).postgres_external_home
    assert first == _config(tmp_path).postgres_external_home
    assert first.parent == Path("/var/lib/herald")
    assert len(first.name) == 12
    assert first != _config(tmp_path / "other").postgres_external_home


def test_socket_dir_falls_back_to_tmp_when_too_long(tmp_path: Path) -> None:
    assert socket_dir_for(Path("/var/lib/herald/abc"), tmp_path) == Path("/var/lib/herald/abc/run")
    long_home = Path("/" + "x" * 120)
    fallback = socket_dir_for(long_home, tmp_path)
    assert fallback.parent == Path("/tmp")
    assert len(str(fallback)) < 60


# ---------------------------------------------------------------- kafka


def test_server_properties_template_renders(tmp_path: Path) -> None:
    text = render_server_properties(
        SERVER_PROPERTIES_TEMPLATE.read_text(),
        broker_port=19092,
        controller_port=19093,
        log_dirs=tmp_path / "data",
    )
    assert "${" not in text
    props = _properties(text)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "data")
    for key, value in {
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "num.partitions": "1",
    }.items():
        assert props[key] == value, key
    assert "log.retention.hours" in props


def test_server_properties_template_placeholders_are_known() -> None:
    names = {
        match[1] or match[2]
        for match in string.Template.pattern.findall(SERVER_PROPERTIES_TEMPLATE.read_text())
        if match[1] or match[2]
    }
    assert names == {"broker_port", "controller_port", "log_dirs"}


def test_server_properties_bad_placeholder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        render_server_properties("x=${nope}", broker_port=1, controller_port=2, log_dirs=tmp_path)


def test_kafka_command_lines(tmp_path: Path) -> None:
    argv = kafka_argv("java", tmp_path / "libs", tmp_path / "log4j2.properties", tmp_path / "s")
    assert argv[:3] == ["java", "-Xmx1g", "-Xms256m"]
    assert argv[argv.index("-cp") + 1] == f"{tmp_path / 'libs'}/*"
    assert f"-Dlog4j2.configurationFile={tmp_path / 'log4j2.properties'}" in argv
    assert argv[-2:] == ["kafka.Kafka", str(tmp_path / "s")]
    fmt = kafka_format_argv("java", tmp_path, tmp_path / "l", tmp_path / "s", "abc")
    assert fmt[fmt.index("kafka.tools.StorageTool") :] == [
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        "abc",
        "-c",
        str(tmp_path / "s"),
    ]


def test_kafka_version_from_jars() -> None:
    names = [
        "kafka-clients-4.1.1.jar",
        "kafka_2.13-4.1.1-sources.jar",
        "kafka_2.13-4.1.1.jar",
        "scala-library-2.13.16.jar",
    ]
    assert kafka_version_from_jars(names) == "4.1.1"
    assert kafka_version_from_jars(["kafka-clients-4.1.1.jar"]) is None


def test_kafka_version_from_log_takes_the_last() -> None:
    log = "x INFO Kafka version: 4.0.0 (AppInfoParser)\ny\nz INFO Kafka version: 4.1.1 (A)\n"
    assert kafka_version_from_log(log) == "4.1.1"
    assert kafka_version_from_log("nothing here") is None


def test_cluster_id_looks_like_a_kafka_uuid() -> None:
    cid = new_kafka_cluster_id(bytes(range(16)))
    assert len(cid) == 22
    assert set(cid) <= set(string.ascii_letters + string.digits + "-_")
    assert not new_kafka_cluster_id(b"\xf8" + bytes(15)).startswith("-")
    with pytest.raises(ValueError):
        new_kafka_cluster_id(b"short")


# ---------------------------------------------------------------- redis, postgres


def test_redis_command_line(tmp_path: Path) -> None:
    argv = redis_argv("redis-server", 16379, tmp_path / "redis", tmp_path / "redis.log")
    pairs = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert pairs["--port"] == "16379"
    assert pairs["--bind"] == "127.0.0.1"
    assert pairs["--dir"] == str(tmp_path / "redis")
    assert pairs["--appendonly"] == "yes"
    assert pairs["--daemonize"] == "no"
    assert pairs["--logfile"] == str(tmp_path / "redis.log")


def test_postgres_command_line(tmp_path: Path) -> None:
    argv = postgres_argv(Path("/usr/lib/postgresql/15/bin"), tmp_path, 15432, tmp_path / "run")
    assert argv[0] == "/usr/lib/postgresql/15/bin/postgres"
    assert argv[argv.index("-p") + 1] == "15432"
    assert "listen_addresses=127.0.0.1" in argv
    assert f"unix_socket_directories={tmp_path / 'run'}" in argv


# ---------------------------------------------------------------- prometheus


def test_prometheus_template_rewrites_targets_and_rules(tmp_path: Path) -> None:
    template = PROMETHEUS_TEMPLATE.read_text()
    assert '"/etc/prometheus/targets/*.json"' in template
    text = render_prometheus_config(
        template, targets_file=tmp_path / "targets.json", rules_dir=PROMETHEUS_DIR
    )
    live = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any("/etc/prometheus" in line for line in live)
    assert any(f'"{tmp_path / "targets.json"}"' in line for line in live)
    assert f'rule_files: ["{ALERTS_FILE}"]' in text
    assert "scrape_interval: 5s" in text
    assert "job_name: herald" in text


def test_prometheus_rules_keep_absolute_paths(tmp_path: Path) -> None:
    template = 'rule_files: ["a.yml", "/abs/b.yml"]\nfiles: ["/etc/prometheus/targets/*.json"]\n'
    text = render_prometheus_config(template, targets_file=tmp_path / "t.json", rules_dir=tmp_path)
    assert f'rule_files: ["{tmp_path / "a.yml"}", "/abs/b.yml"]' in text


def test_prometheus_template_without_markers_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        render_prometheus_config("global: {}\n", targets_file=tmp_path, rules_dir=tmp_path)


def test_prometheus_command_line(tmp_path: Path) -> None:
    argv = prometheus_argv("prometheus", tmp_path / "p.yml", tmp_path / "data", 19090)
    assert f"--config.file={tmp_path / 'p.yml'}" in argv
    assert f"--storage.tsdb.path={tmp_path / 'data'}" in argv
    assert "--web.listen-address=127.0.0.1:19090" in argv
    assert "--web.enable-lifecycle" in argv


# ---------------------------------------------------------------- status output


def test_status_rows_are_aligned() -> None:
    lines = format_status_rows(
        [
            ("kafka", "127.0.0.1:9092", "4.1.1", "up"),
            ("prometheus", "127.0.0.1:9090", "2.42.0", "down"),
        ]
    )
    assert lines[0].split() == ["kafka", "127.0.0.1:9092", "4.1.1", "up"]
    assert lines[1].split() == ["prometheus", "127.0.0.1:9090", "2.42.0", "down"]
    assert lines[0].index("127.0.0.1") == lines[1].index("127.0.0.1")
    assert format_status_rows([]) == []
