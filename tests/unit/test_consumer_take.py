"""Consumers take what is there without waiting for a full batch: `consume(n, timeout)`
alone blocks until n records came or the timeout passed, so at a trickle every record would
wait out the whole poll timeout before it is handled."""

from __future__ import annotations

from typing import Any

from herald.shared.infra.kafka.serial import take


class Broker:
    """A consumer whose `consume` behaves as librdkafka's: it returns at once when it holds
    `n` records (or when the timeout is 0), else it waits out the timeout."""

    def __init__(self, held: int, arriving: int = 0) -> None:
        self.held = held  # records in the client's local queue
        self.arriving = arriving  # records that come in during a wait
        self.waited = 0.0

    def consume(self, n: int, timeout: float) -> list[Any]:
        if self.held < n and timeout > 0:
            self.waited += timeout
            self.held += self.arriving
            self.arriving = 0
        got = min(n, self.held)
        self.held -= got
        return [object()] * got


def test_records_already_there_are_taken_without_waiting() -> None:
    broker = Broker(held=3)
    assert len(take(broker, 500, 0.2)) == 3  # type: ignore[arg-type]
    assert broker.waited == 0


def test_an_empty_queue_waits_for_the_first_record_only() -> None:
    broker = Broker(held=0, arriving=2)
    assert len(take(broker, 500, 0.2)) == 2  # type: ignore[arg-type]
    assert broker.waited == 0.2  # one wait, for the first record, not for 500


def test_a_full_batch_is_capped_at_the_limit() -> None:
    broker = Broker(held=1200)
    assert len(take(broker, 500, 0.2)) == 500  # type: ignore[arg-type]
    assert broker.held == 700


def test_nothing_arriving_answers_empty_after_the_timeout() -> None:
    broker = Broker(held=0)
    assert take(broker, 10, 0.2) == []  # type: ignore[arg-type]
