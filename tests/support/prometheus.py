"""A Prometheus of a test's own: config rendered from deploy/prometheus/prometheus.yml with
tiny intervals, a file_sd targets file in `herald run`'s format, and its HTTP API."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from stack.config import PROMETHEUS_DIR, PROMETHEUS_TEMPLATE
from stack.render import render_prometheus_config

# The alert rules deploy/prometheus/alerts.yml must define (written out here on purpose, as
# the tests' own expectation, not read from the file).
EXPECTED_ALERTS = frozenset(
    {
        "HeraldServiceDown",
        "HeraldServiceMissing",
        "HeraldConsumerLagGrowing",
        "HeraldDueBacklogGrowing",
        "HeraldDispatchLagHigh",
        "HeraldSuccessRatioLow",
        "HeraldDeadLetters",
        "HeraldUnreadableResults",
        "HeraldConnectionNeedsReauth",
    }
)

IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is missing (Debian package `prometheus`, installed by herald stack up)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def fast_config(targets_file: Path, interval: str = "1s") -> str:
    """The shipped template rendered like `herald stack up` does, every interval `interval`."""
    rendered = render_prometheus_config(
        PROMETHEUS_TEMPLATE.read_text(), targets_file=targets_file, rules_dir=PROMETHEUS_DIR
    )
    for key in ("scrape_interval", "evaluation_interval", "scrape_timeout", "refresh_interval"):
        assert f"{key}: " in rendered, f"{PROMETHEUS_TEMPLATE} has no {key}"
        rendered = "\n".join(
            line.split(f"{key}:")[0] + f"{key}: {interval}" if f"{key}:" in line else line
            for line in rendered.splitlines()
        )
    return rendered + "\n"


def write_targets(path: Path, targets: list[tuple[str, str, int]]) -> None:
    """(service, replica, metrics port) rows as `herald run` writes them."""
    groups = [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"service": s, "replica": r}}
        for s, r, port in targets
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups, indent=2))
    tmp.replace(path)


class Prometheus:
    def __init__(self, workdir: Path, targets: list[tuple[str, str, int]]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.targets_file = workdir / "targets.json"
        self.config = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        write_targets(self.targets_file, targets)
        self.config.write_text(fast_config(self.targets_file))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> Prometheus:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log()[-3000:]}")
            try:
                http_get(f"{self.base}/-/ready", timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"prometheus not ready in {timeout}s: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        payload = json.loads(http_get(f"{self.base}/api/v1/{path}{query}", timeout=15))
        assert payload.get("status") == "success", payload
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; a PromQL error fails with Prometheus' message."""
        body = urllib.parse.urlencode({"query": expr}).encode()
        request = urllib.request.Request(f"{self.base}/api/v1/query", data=body)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr!r}: {exc.read().decode(errors='replace')}") from None
        assert payload["status"] == "success", payload
        data = payload["data"]
        if data["resultType"] == "vector":
            return list(data["result"])
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        raise AssertionError(f"{expr!r}: unexpected result type {data['resultType']}")

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def targets_up(self) -> dict[str, str]:
        active = self.api("targets", state="active")["activeTargets"]
        return {
            t["labels"].get("replica", t["scrapeUrl"]): t["health"]
            for t in active
            if t["labels"].get("job") == "herald"
        }

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def rules(self) -> list[dict[str, Any]]:
        return [r for g in self.api("rules")["groups"] for r in g["rules"]]


def has_finite_value(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)
