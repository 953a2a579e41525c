"""What both consumer loops share: every call on a confluent consumer runs on one
dedicated thread (it is not thread-safe), and error records are logged and dropped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import confluent_kafka

from herald.shared.infra.kafka.client import Message

log = logging.getLogger(__name__)


class SerialCalls:
    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kafka-{name}")

    async def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False)


def take(consumer: confluent_kafka.Consumer, limit: int, timeout: float) -> list[Message]:
    """Up to `limit` records without waiting for more than are there: what the client holds
    already, or else the first to arrive within `timeout` and whatever came with it.
    (`consume(limit, timeout)` alone waits until `limit` records came or `timeout` passed,
    so below that rate every record would wait out the whole timeout.)"""
    records: list[Message] = consumer.consume(limit, 0)
    if records or limit < 1:
        return records
    records = consumer.consume(1, timeout)
    if records and limit > 1:
        records += consumer.consume(limit - 1, 0)
    return records


def without_errors(raw: list[Message]) -> list[Message]:
    """The records of a consume() batch; errors other than end-of-partition are logged."""
    out = []
    for msg in raw:
        err = msg.error()
        if err is None:
            out.append(msg)
        elif err.code() != confluent_kafka.KafkaError._PARTITION_EOF:
            log.warning("consume error", extra={"kafka_error": str(err)})
    return out
