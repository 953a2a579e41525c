"""The results service yields the CPU to the publish path (decision 0009)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Coroutine
from typing import Any

import pytest

import herald.services.results.main as results_main
from herald.shared.infra.paths import ROOT
from herald.shared.infra.settings import Settings


def test_lowering_sets_the_niceness_and_never_raises_priority_again() -> None:
    # In a child process: a process cannot take back a priority it gave up.
    code = (
        "from herald.shared.infra.process import lower_cpu_priority as low\n"
        "print(low(7), low(3), low(0))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, text=True, capture_output=True, check=True
    )
    assert out.stdout.split() == ["7", "7", "7"]


def test_the_results_service_lowers_its_priority_before_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, int]] = []

    def nice(niceness: int) -> int:
        calls.append(("nice", niceness))
        return niceness

    def loop(main: Coroutine[Any, Any, int]) -> int:
        main.close()  # the service itself is not started here
        calls.append(("loop", 0))
        return 0

    monkeypatch.setattr(results_main, "lower_cpu_priority", nice)
    monkeypatch.setattr(results_main, "run_loop", loop)
    assert results_main.run(Settings(results_nice=12)) == 0
    assert calls == [("nice", 12), ("loop", 0)]


def test_the_default_niceness_is_ten_and_bounded() -> None:
    assert Settings().results_nice == 10
    with pytest.raises(ValueError):
        Settings(results_nice=20)
