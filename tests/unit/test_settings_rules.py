"""Settings that contradict each other stop a process at start, with one line each."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from herald.shared.infra.paths import ROOT
from herald.shared.infra.settings import Settings


def test_the_stuck_sweep_must_wait_longer_than_an_attempt() -> None:
    with pytest.raises(ValidationError, match="HERALD_STUCK_AFTER_SECONDS"):
        Settings(stuck_after_seconds=400, container_poll_seconds=300, call_timeout_seconds=30)
    ok = Settings(stuck_after_seconds=421, container_poll_seconds=300, call_timeout_seconds=30)
    assert ok.stuck_after_seconds == 421


def test_a_bad_setting_is_one_line_and_exit_2() -> None:
    env = {**os.environ, "HERALD_STUCK_AFTER_SECONDS": "10", "HERALD_MAX_ATTEMPTS": "zero"}
    run = subprocess.run(
        [sys.executable, "-m", "herald", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert lines == [line for line in lines if line.startswith("herald: ")], run.stderr
    assert any(line.startswith("herald: HERALD_MAX_ATTEMPTS: ") for line in lines), lines
    assert "Traceback" not in run.stderr
