"""Prometheus from Debian's package, reading ``<stack>/prometheus/targets.json``."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from stack import procs
from stack.argv import prometheus_argv
from stack.base import Service, StackError
from stack.config import ALERTS_FILE, PROMETHEUS_DIR, PROMETHEUS_TEMPLATE
from stack.render import render_prometheus_config

MINIMAL_ALERTS = "# Alert rules for Herald (checked with `promtool check rules`).\ngroups: []\n"


class Prometheus(Service):
    name = "prometheus"
    env_var = "HERALD_PROMETHEUS_PORT"

    def workdir(self) -> Path:
        return self.cfg.root / "prometheus"

    def missing_packages(self) -> list[str]:
        if shutil.which("prometheus") and shutil.which("promtool"):
            return []
        return ["prometheus"]

    def prepare(self) -> None:
        self.workdir().mkdir(parents=True, exist_ok=True)
        self.cfg.prometheus_data.mkdir(parents=True, exist_ok=True)
        if not ALERTS_FILE.exists():
            ALERTS_FILE.write_text(MINIMAL_ALERTS)
        targets = self.cfg.prometheus_targets
        if not targets.exists():
            targets.write_text("[]\n")
        rendered = render_prometheus_config(
            PROMETHEUS_TEMPLATE.read_text(), targets_file=targets, rules_dir=PROMETHEUS_DIR
        )
        config = self.cfg.prometheus_config
        if not config.exists() or config.read_text() != rendered:
            config.write_text(rendered)
        promtool = shutil.which("promtool")
        if promtool:
            check = procs.run([promtool, "check", "config", str(config)], timeout=60)
            if check.returncode != 0:
                raise StackError(
                    f"prometheus: `promtool check config {config}` failed:\n"
                    + (check.stdout + check.stderr).strip()
                )

    def argv(self) -> list[str]:
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("prometheus: no prometheus binary (install the prometheus package)")
        return prometheus_argv(
            binary, self.cfg.prometheus_config, self.cfg.prometheus_data, self.endpoint.port
        )

    def _get(self, path: str) -> bytes:
        url = f"http://{self.endpoint.address}{path}"
        with urllib.request.urlopen(url, timeout=3) as response:
            body: bytes = response.read()
            return body

    def ping(self) -> None:
        self._get("/-/ready")

    def version(self) -> str:
        payload: Any = json.loads(self._get("/api/v1/status/buildinfo"))
        return str(payload.get("data", {}).get("version", "?"))
