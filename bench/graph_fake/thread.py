"""The fake Graph server on an event loop of its own, in a thread, for synchronous programs
(`herald bench soak`). `run` executes a function on that loop (reads of the fake's state
happen there, never concurrently with a request)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from bench.graph_fake.server import FakeGraph

T = TypeVar("T")


class FakeGraphThread:
    def __init__(self, fake: FakeGraph) -> None:
        self.fake = fake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-graph", daemon=True
        )

    def __enter__(self) -> FakeGraphThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(timeout=30)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    def run(self, fn: Callable[[FakeGraph], T]) -> T:
        async def call() -> T:
            return fn(self.fake)

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=60)
