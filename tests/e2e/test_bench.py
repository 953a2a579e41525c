"""`herald bench` works end to end (a tiny burst); figures are printed, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.paths import ROOT
from tests.conftest import Namespace


def test_a_tiny_burst_prints_figures_and_writes_json_and_png(ns: Namespace, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "bench",
            "burst",
            "-n",
            "200",
            "--no-limits",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=ns.env(),
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout)
    assert figures["jobs"] == 200 and figures["published"] == 200
    assert {"p50", "p99"} <= set(figures["end_to_end_lag_s"])
    assert list(tmp_path.glob("burst-*.json")) and list(tmp_path.glob("burst-*.png"))
