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
