"""The wheel works outside the checkout: built from the project's files, installed into a
fresh virtualenv in a temporary folder, it installs the import name `herald` alone, and its
own `herald` command migrates, creates topics, runs the services and the API, and publishes
a post, from a working directory outside the checkout and with no stack folder.

Dependencies come from a wheel cache outside the checkout (`/var/cache/herald/wheels`, or
`~/.cache/herald/wheels` where that cannot be written; `HERALD_TEST_WHEEL_CACHE` names
another): every install is `--no-index` from it, and only what it lacks (a first run, a new
dependency) is fetched from the package index into it.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from herald.shared.infra.paths import ROOT
from herald.shared.infra.settings import Settings
from tests.conftest import Namespace
from tests.support.prometheus import free_port
from tests.support.wheels import build_wheel, install, wheel_cache

pytestmark = pytest.mark.e2e
SERVICES = ("scheduler", "publisher", "results", "api")
LEFT_OUT = ("shared", "services", "bench", "stack", "schemas", "tests", "deploy")


SITE_REPORT = """
import importlib.metadata, json, pathlib, sysconfig, herald
dist = importlib.metadata.distribution("herald")
site = pathlib.Path(sysconfig.get_paths()["purelib"])
print(json.dumps({
    "top": sorted({f.parts[0] for f in dist.files or []} - {".."}),
    "top_level_txt": dist.read_text("top_level.txt"),
    "site": sorted(p.name for p in site.iterdir()),
    "herald": herald.__file__,
}))
"""


class Installed:
    """The installed `herald` command, run from `work` with `env`."""

    def __init__(self, venv: Path, work: Path, env: dict[str, str], logs: Path) -> None:
        self.bin = venv / "bin"
        self.work = work
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin / "herald"), *args],
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, f"herald {' '.join(args)}: {done.stderr[-3000:]}"
        return done

    def json(self, *args: str) -> Any:
        return orjson.loads(self.run(*args).stdout)

    def start(self, service: str) -> None:
        with open(self.logs / f"{service}.log", "wb") as log:
            self.procs[service] = subprocess.Popen(
                [str(self.bin / "herald"), service],
                cwd=self.work,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited with {proc.returncode}: {self.log(name)}"

    def log(self, service: str) -> str:
        return (self.logs / f"{service}.log").read_text(errors="replace")[-3000:]

    @contextmanager
    def services(self) -> Iterator[None]:
        try:
            for service in SERVICES:
                self.start(service)
            yield
            self.check_alive()
        finally:
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.terminate()
            for name, proc in self.procs.items():
                try:
                    code = proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                assert code == 0, f"{name} stopped with {code}: {self.log(name)}"


def outside_env(ns: Namespace, state: Path, api_port: int) -> dict[str, str]:
    """No setting of this checkout's shell, no stack folder: only what names the stack, the
    test's own namespace, and a key of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HERALD_", "PYTHON", "VIRTUAL_ENV", "PIP_"))
    }
    base: Settings = ns.base
    return env | {
        "XDG_STATE_HOME": str(state),
        "HERALD_KAFKA_BOOTSTRAP": base.kafka_bootstrap,
        "HERALD_REDIS_URL": base.redis_url,
        "HERALD_DATABASE_URL": base.database_url,
        "HERALD_TOPIC_PREFIX": ns.topic_prefix,
        "HERALD_REDIS_PREFIX": ns.redis_prefix,
        "HERALD_DB_SCHEMA": ns.db_schema,
        "HERALD_SECRET_KEY": "wheel-test-key:a passphrase of the wheel test",
        "HERALD_API_PORT": str(api_port),
    }


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read().decode()


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError:
            raise
        except Exception as exc:  # not up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def test_the_wheel_installs_herald_alone_and_publishes_outside_the_checkout(
    base_settings: Settings, tmp_path: Path
) -> None:
    assert not tmp_path.is_relative_to(ROOT)
    cache = wheel_cache()
    wheel = build_wheel(cache, tmp_path)
    venv = tmp_path / "venv"
    python = install(cache, wheel, venv)

    report = orjson.loads(
        subprocess.run(
            [python, "-c", SITE_REPORT], cwd=tmp_path, check=True, capture_output=True
        ).stdout
    )
    assert report["top"] == ["herald", f"herald-{wheel.name.split('-')[1]}.dist-info"]
    assert report["top_level_txt"].split() == ["herald"]
    assert not set(LEFT_OUT) & set(report["site"]), report["site"]
    assert Path(report["herald"]).is_relative_to(venv)  # the copy, never this checkout

    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "logs").mkdir()
    ns = Namespace(base_settings)  # migrated and given topics by the installed command
    api_port = free_port()
    herald = Installed(venv, work, outside_env(ns, tmp_path / "state", api_port), tmp_path / "logs")
    try:
        # Only a checkout has the local stack and the benchmarks: one clear line each.
        for command in (["stack", "status"], ["bench", "burst"]):
            refused = herald.run(*command, ok=False)
            assert refused.returncode == 1 and refused.stdout == ""
            assert refused.stderr.splitlines() == [
                f"herald: `herald {command[0]}` needs a checkout of Herald (git clone, then"
                " make run): the installed package has no local stack or benchmarks"
            ]
        keyless = herald.env | {"HERALD_SECRET_KEY": ""}
        refused = subprocess.run(
            [herald.bin / "herald", "jobs", "list"], cwd=work, env=keyless, capture_output=True
        )
        line = refused.stderr.decode().strip()
        assert refused.returncode == 1 and line.startswith("herald: HERALD_SECRET_KEY is not set")
        assert "site-packages" not in line and str(tmp_path / "state" / "herald") in line

        assert "applied 0001_init" in herald.run("migrate").stderr
        assert f"{ns.topic_prefix}publish.request" in herald.run("topics", "create").stderr
        with herald.services():
            connection = herald.run("connections", "add", "--platform", "sandbox", "--name", "w")
            connection_id = connection.stdout.strip()
            scheduled = herald.run(
                "schedule",
                "--platform",
                "sandbox",
                "--connection",
                connection_id,
                "--media",
                "https://cdn.example.com/wheel.jpg",
                "--caption",
                "from the wheel",
            )
            job_id = scheduled.stdout.strip()

            def published() -> bool:
                herald.check_alive()
                return herald.json("jobs", "show", job_id, "--json")["status"] == "PUBLISHED"

            wait_for("the job PUBLISHED", published)
            jobs = herald.json("jobs", "list", "--json")
            assert [(j["id"], j["status"]) for j in jobs] == [(job_id, "PUBLISHED")]
            posts = herald.json("sandbox", "posts", "--json")
            assert [p["job_id"] for p in posts] == [job_id]
            # The ops page, its static files and the spec (built from the shipped schemas).
            api = f"http://127.0.0.1:{api_port}"

            def ops_page() -> tuple[int, str]:
                herald.check_alive()
                return get(f"{api}/")

            status, page = wait_for("the API", ops_page)
            assert status == 200 and "/static/app.js" in page
            assert get(f"{api}/static/app.js")[0] == get(f"{api}/static/style.css")[0] == 200
            spec = orjson.loads(get(f"{api}/openapi.json")[1])
            assert "/publishing/jobs" in spec["paths"] and spec["components"]["schemas"]["Job"]
        assert not (tmp_path / "state").exists()  # with a key given, no local file is made
    finally:
        ns.teardown()
