"""Coalesce concurrent single-item calls into batched calls (one round trip for many).

    store = Coalescer(write_many, max_batch=500)
    result = await store.submit(item)   # from many tasks at once

Items submitted while no batch is waiting are picked up on the next turn of the event loop,
so every task that submits within one turn shares a batch; while `concurrency` batches run,
new items accumulate and go out together in the next one (batches grow with the load, and
an idle system adds no delay). The batch function answers one result per item, in order; if
it raises, every item of that batch gets the exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    def __init__(
        self,
        fn: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 500,
        concurrency: int = 1,
    ) -> None:
        self._fn = fn
        self._max_batch = max_batch
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._armed = False  # a flusher is on its way to take the pending items
        self._flushers: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._arm()
        return await future

    def _arm(self) -> None:
        if self._armed:
            return
        self._armed = True
        task = asyncio.create_task(self._flush())
        self._flushers.add(task)
        task.add_done_callback(self._flushers.discard)

    async def _flush(self) -> None:
        async with self._slots:
            self._armed = False
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            if self._pending:
                self._arm()
            batch = [(item, fut) for item, fut in batch if not fut.done()]  # not cancelled
            if not batch:
                return
            try:
                results = await self._fn([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch answered {len(results)} of {len(batch)} items")
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                return
            except BaseException as exc:  # cancelled: the waiting callers must not hang
                for _, fut in batch:
                    if not fut.done():
                        fut.cancel()
                raise exc
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
