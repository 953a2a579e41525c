"""The image (Dockerfile), built with podman on a Debian base made here (no registry is
reachable) from the wheel cache, and run: `herald migrate` and `herald topics create` as
one-shot containers, then the API, the scheduler, a publisher and the results service as
four containers against the local stack, sharing one HERALD_SECRET_KEY as a deployment
does. A connection's token is stored through the API container, a sandbox post is
published through the publisher container, and SIGTERM stops each container, which drains
and exits 0 by itself.

The base root file system and podman come from tests/support/deploy_tools.py (made
once into /var/cache/herald); podman keeps the image's layers, so a run whose sources did
not change builds nothing.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from herald.shared.infra.paths import ROOT
from herald.shared.infra.settings import Settings
from tests.conftest import FAST, Namespace
from tests.deploy.test_chart import SETTINGS
from tests.support.deploy_tools import Podman
from tests.support.prometheus import free_port
from tests.support.wheels import wheel_cache

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
IMAGE = "localhost/herald:test"
SERVICES = ("api", "scheduler", "publisher", "results")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
KEY = "image-test:a passphrase only the image test uses"


def fill_wheel_cache(podman: Podman, cache: Path) -> None:
    """Every wheel the image's build installs offline: the build backend and the
    dependencies. pip runs in the base itself, whose Python's markers may differ from this
    one's (Debian's 3.11.2 needs async-timeout), and reaches the index, with this
    machine's CA bundle, only when the cache lacks a wheel."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [*project["build-system"]["requires"], *project["project"]["dependencies"]]
    download = (
        "/tmp/venv/bin/pip download -q --dest /wheels --find-links /wheels --only-binary :all:"
    )
    script = f'python3 -m venv /tmp/venv && ({download} --no-index "$@" || {download} "$@")'
    podman(
        "run",
        "--rm",
        "--network=host",
        f"--volume={cache}:/wheels",
        f"--volume={CA_BUNDLE}:/etc/ssl/certs/host-ca.crt:ro",
        "--env=PIP_CERT=/etc/ssl/certs/host-ca.crt",
        podman.base_image(),
        *("sh", "-c", script, "sh", *wanted),
        timeout=900,
    )


def build(podman: Podman) -> None:
    """Build IMAGE. When the sources changed, the image it replaces and the untagged build
    stages are removed, so repeated runs do not fill the storage; when nothing changed,
    every layer comes from podman's cache."""
    cache = wheel_cache()
    fill_wheel_cache(podman, cache)
    before = podman("image", "inspect", "--format={{.Id}}", IMAGE) if podman.exists(IMAGE) else ""
    podman(
        "build",
        "--format=docker",  # keeps HEALTHCHECK
        "--network=host",
        f"--build-arg=BASE={podman.base_image()}",
        "--build-arg=PIP_NO_INDEX=1",
        "--build-arg=PIP_FIND_LINKS=/wheels",
        f"--volume={cache}:/wheels:ro",
        f"--tag={IMAGE}",
        f"--file={ROOT / 'Dockerfile'}",
        ROOT,
        timeout=1500,
    )
    if before != podman("image", "inspect", "--format={{.Id}}", IMAGE):
        if before:
            with contextlib.suppress(RuntimeError):  # still used by a container of another run
                podman.run("rmi", before)
        podman("image", "prune", "--force")  # the replaced builds' untagged build stages


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def call(url: str, key: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url,
        data=orjson.dumps(body) if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return orjson.loads(answer.read())


def host_address() -> str:
    """An address of this machine other than loopback."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout
    addresses = [a for a in out.split() if ":" not in a and not a.startswith("127.")]
    assert addresses, f"no address beyond loopback: {out!r}"
    return addresses[0]


class Containers:
    """The test's containers (named `<run>-<name>`), removed at the end whatever happens."""

    def __init__(self, podman: Podman, ns: Namespace) -> None:
        self.podman = podman
        self.run_id = f"herald-image-{uuid.uuid4().hex[:8]}"
        self.started: list[str] = []
        base: Settings = ns.base
        self.env = {
            "HERALD_KAFKA_BOOTSTRAP": base.kafka_bootstrap,
            "HERALD_REDIS_URL": base.redis_url,
            "HERALD_DATABASE_URL": base.database_url,
            "HERALD_TOPIC_PREFIX": ns.topic_prefix,
            "HERALD_REDIS_PREFIX": ns.redis_prefix,
            "HERALD_DB_SCHEMA": ns.db_schema,
            "HERALD_SECRET_KEY": KEY,
            **{f"HERALD_{k.upper()}": str(v) for k, v in FAST.items()},
        }

    def args(self, env: dict[str, str]) -> list[str]:
        # The key passes by name from this process's environment, never on a command line.
        flags = [
            f"--env={k}" if k == "HERALD_SECRET_KEY" else f"--env={k}={v}" for k, v in env.items()
        ]
        return ["--network=host", *flags]

    def once(self, *command: str) -> subprocess.CompletedProcess[str]:
        """A one-shot container; its stdout and stderr."""
        return self.podman.run("run", "--rm", *self.args(self.env), IMAGE, *command, env=self.env)

    def start(self, name: str, command: str, **env: str) -> str:
        container = f"{self.run_id}-{name}"
        self.started.append(container)
        self.podman.run(
            "run",
            "--detach",
            f"--name={container}",
            *self.args(self.env | env),
            IMAGE,
            command,
            env=self.env,
        )
        return container

    def state(self, container: str) -> dict[str, Any]:
        (info,) = orjson.loads(self.podman("inspect", container))
        return dict(info["State"])

    def logs(self, container: str) -> str:
        """The container's output; herald logs to stderr, which podman replays on stderr."""
        return self.podman.run("logs", container).stderr[-4000:]

    def check_running(self) -> None:
        for container in self.started:
            state = self.state(container)
            assert state["Running"], (
                f"{container} exited {state['ExitCode']}: {self.logs(container)}"
            )

    def remove(self) -> None:
        for container in self.started:
            subprocess.run(
                [*self.podman.argv, "rm", "--force", "--time=0", container],
                env=self.podman.env,
                capture_output=True,
            )


@pytest.fixture
def containers(base_settings: Settings) -> Iterator[Containers]:
    podman = Podman()
    ns = Namespace(base_settings)  # migrated and given topics by the image itself
    running = Containers(podman, ns)
    try:
        yield running
    finally:
        running.remove()
        ns.teardown()


def ns_prefix(running: Containers) -> str:
    return running.env["HERALD_TOPIC_PREFIX"]


def wait_for(what: str, check: Any, running: Containers, timeout: float = 90.0) -> Any:

    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        running.check_running()
        try:
            last = check()
        except (OSError, ValueError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def test_the_image_runs_every_service_and_publishes(containers: Containers, tmp_path: Path) -> None:
    podman = containers.podman
    build(podman)

    # The image: non-root, herald as the entrypoint, a HEALTHCHECK on /healthz, only real
    # settings in its environment, and no compiler.
    (image,) = orjson.loads(podman("image", "inspect", IMAGE))
    config = image["Config"]
    assert config["User"] == "herald:herald"
    assert config["Entrypoint"] == ["herald"]
    assert "/healthz" in " ".join(image["Healthcheck"]["Test"])
    env = dict(e.split("=", 1) for e in config["Env"])
    assert {k for k in env if k.startswith("HERALD_")} <= SETTINGS
    assert env["HERALD_BIND_ADDRESS"] == "0.0.0.0"
    tools = "command -v gcc cc c++ make pip || true; id -u"
    probe = podman("run", "--rm", "--entrypoint=/bin/sh", IMAGE, "-c", tools)
    assert probe.splitlines() == ["10001"], probe
    print(f"\nimage size: {image['Size'] / 1e6:.0f} MB")

    assert "applied 0001_init" in containers.once("migrate").stderr
    assert f"{ns_prefix(containers)}publish.request" in containers.once("topics", "create").stderr
    admin_key = containers.once("apikey", "create", "--admin").stdout.strip()

    ports = {s: free_port() for s in SERVICES}
    api_port = free_port()
    names = {
        service: containers.start(
            service,
            service,
            HERALD_METRICS_PORT=str(ports[service]),
            HERALD_API_PORT=str(api_port),
            HERALD_REPLICA=f"image-{service}",
        )
        for service in SERVICES
    }
    for service in SERVICES:
        url = f"http://127.0.0.1:{ports[service]}/readyz"
        wait_for(f"{service} ready", lambda url=url: get(url)[0] == 200, containers)
        # The image's HEALTHCHECK, run by podman inside the container.
        podman("healthcheck", "run", names[service])

    # HERALD_BIND_ADDRESS=0.0.0.0: reachable on the machine's own address, not only loopback.
    api = f"http://{host_address()}:{api_port}"
    assert get(f"{api}/readyz")[0] == 200

    connection = call(
        f"{api}/publishing/connections",
        admin_key,
        {"platform": "sandbox", "name": "image", "access_token": "sandbox-token-of-the-image"},
    )
    job = call(
        f"{api}/publishing/jobs",
        admin_key,
        {
            "platform": "sandbox",
            "connection_id": connection["id"],
            "media_asset_ids": ["https://cdn.example.com/image.jpg"],
            "caption": "from the image",
        },
    )

    def published() -> bool:
        return call(f"{api}/publishing/jobs/{job['id']}", admin_key)["status"] == "PUBLISHED"

    wait_for("the job PUBLISHED", published, containers)
    attempts = call(f"{api}/publishing/jobs/{job['id']}/attempts", admin_key)["items"]
    assert [a["outcome"] for a in attempts] == ["published"]
    assert attempts[0]["worker"].startswith("publisher-image-publisher-")

    # SIGTERM (podman stop); the grace is far above the drain, so exit 0 means each
    # container drained and stopped by itself rather than being killed.
    for service in SERVICES:
        podman("stop", "--time=60", names[service], timeout=120)
        state = containers.state(names[service])
        logs = containers.logs(names[service])
        assert state["ExitCode"] == 0, f"{service}: {logs}"
        last = orjson.loads(logs.strip().splitlines()[-1])
        assert last["msg"] == "stopped", logs
