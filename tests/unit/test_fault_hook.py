"""The test-only fault hook pauses exactly at its point and nowhere else, and the product's
settings have no fault knob left."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from herald.services.results.consumer import ResultsConsumer
from herald.shared.infra.delayed_queue import DelayedQueue
from herald.shared.infra.kafka.client import Producer
from herald.shared.infra.settings import Settings
from tests.support import faulty

PAUSE = 0.2


class Calls:
    """A stand-in for the real method: records its calls, answers `answer`."""

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []

    async def __call__(self, _self: Any, *args: Any) -> Any:
        self.calls.append(args)
        return self.answer


async def timed(call: Any) -> tuple[Any, float]:
    began = time.monotonic()
    answer = await call
    return answer, time.monotonic() - began


def pauses(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "herald.fault"]


async def test_a_claim_pauses_only_when_it_took_jobs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    real = Calls(answer=[])
    monkeypatch.setattr(DelayedQueue, "claim", real)
    faulty.pause_after_claim(PAUSE)
    answer, took = await timed(DelayedQueue.claim(object(), 10, 3.0))  # type: ignore[arg-type]
    assert answer == [] and took < PAUSE and pauses(caplog) == []
    real.answer = ["job"]
    answer, took = await timed(DelayedQueue.claim(object(), 10, 3.0))  # type: ignore[arg-type]
    assert answer == ["job"] and took >= PAUSE
    assert pauses(caplog) == ["fault injection: pausing after claim"]
    assert real.calls == [(10, 3.0), (10, 3.0)]


async def test_only_the_dispatchers_produce_pauses_after_its_mark(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    real = Calls(answer=1)
    monkeypatch.setattr(Producer, "send_batch_async", real)
    faulty.pause_after_mark(PAUSE)
    status = [("t1.publish.status", "k", b"{}")]
    _, took = await timed(Producer.send_batch_async(object(), status))  # type: ignore[arg-type]
    assert took < PAUSE and pauses(caplog) == []
    request = [("t1.publish.request", "k", b"{}", 3)]
    _, took = await timed(Producer.send_batch_async(object(), request))  # type: ignore[arg-type]
    assert took >= PAUSE and pauses(caplog) == ["fault injection: pausing after mark"]
    assert real.calls == [(status,), (request,)]  # and then produced, as the real one does


async def test_results_pause_between_their_commit_and_their_redis_writes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    real = Calls()
    monkeypatch.setattr(ResultsConsumer, "_mirror", real)
    faulty.HOOKS["--pause-after-commit"][1](PAUSE)
    _, took = await timed(ResultsConsumer._mirror(object(), "plan"))  # type: ignore[arg-type]
    assert took >= PAUSE and real.calls == [("plan",)]
    assert pauses(caplog) == ["fault injection: pausing after a commit"]


def test_a_pause_belongs_to_its_service() -> None:
    with pytest.raises(SystemExit) as exit_:
        faulty.main(["publisher", "--pause-after-mark", "5"])
    assert exit_.value.code == 2


def test_the_product_has_no_fault_settings() -> None:
    assert not [name for name in Settings.model_fields if "fault" in name]
