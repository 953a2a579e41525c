"""Consume with up to N messages in flight at once, committing only what is done, gap-free.

Every message becomes an asyncio task running `handler(msg)`; the handler answers True when
the message's effects are durable (its offset may be committed) and False when it gave up
(stopping): the message stays uncommitted and Kafka redelivers it. A handler that raises
stops the consumer (the service exits non-zero and restarts; Kafka redelivers).

- All confluent-kafka calls run on one dedicated thread (the client is not thread-safe);
  rebalance callbacks run there too, inside `consume`.
- Up to `max_in_flight` messages run at once. Up to `read_ahead` more (and while they
  hold less than `READ_AHEAD_BYTES`) are taken from Kafka and wait for a slot in
  `KeyTurns`: the record keys take turns, each key's messages in order. A partition is
  read in order, so without this a message would wait behind every message before it in
  its partition; with it, a key with one message waiting (another tenant's account,
  behind one account's thousands) is started within a round of the keys that have
  messages waiting.
- With fewer than `min_batch` slots free and more messages waiting, it waits up to
  `gather_seconds` for more slots, so messages start in groups rather than one per freed
  slot (each group shares the handler's batched transactions: at 200 ms platform latency,
  64 instead of 1 halved the publisher's CPU per message); and at most `batch_size` start
  at once, as they came from Kafka before there was a read-ahead: all the free slots
  filled at once made the handler's batches move in step, its transactions one after the
  other with the slots all but empty in between.
- With every slot taken and `read_ahead` messages (or `READ_AHEAD_BYTES`) waiting, the
  loop waits for a slot. When none frees within `pause_after` seconds (slow platform
  calls), every assigned partition is paused and the loop keeps polling, so group
  membership and rebalances are served while no new message arrives; the partitions
  resume when capacity frees. (Pausing at every full moment would cost a fresh fetch on
  each resume: measured, it cut a sandbox backlog drain from ~3,000 to ~500 messages/s.)
- Commit positions come from `OffsetTracker`: per partition, up to the lowest offset still
  outstanding. They are committed every `commit_interval` seconds, on revoke (for the
  partitions leaving) and once more on stop, after in-flight work drained (within `drain_grace`
  seconds; what is still running then is cancelled and left uncommitted). Commits are
  asynchronous (`client.consumer` says why); the tracker records a position once Kafka
  accepted it.
- On revoke or loss the partitions are forgotten: their in-flight work still finishes but its
  completion is ignored, their waiting messages are dropped; the new owner redelivers those
  messages (effects are idempotent). Messages still waiting at stop are left uncommitted.
  A consumer that knows no broker any more is replaced (`BrokerWatch`), and what it owned
  counts as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import confluent_kafka
from confluent_kafka import TopicPartition

from herald.shared.infra.kafka.client import BrokerWatch, Message, abandon, consumer, partition_of
from herald.shared.infra.kafka.offset_tracker import OffsetTracker, Partition
from herald.shared.infra.kafka.serial import SerialCalls, take, without_errors

log = logging.getLogger(__name__)
Handler = Callable[[Message], Awaitable[bool]]
# What messages read ahead may hold (keys, values and headers): about 50,000 requests of the
# usual size, a few hundred with the longest captions, where a count alone could hold
# gigabytes.
READ_AHEAD_BYTES = 32 * 1024 * 1024


class ConcurrentConsumer:
    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: list[str],
        handler: Handler,
        *,
        max_in_flight: int = 256,
        batch_size: int = 500,
        poll_timeout: float = 0.1,
        commit_interval: float = 0.2,
        drain_grace: float = 8.0,
        pause_after: float = 2.0,
        min_batch: int = 1,
        gather_seconds: float = 0.02,
        read_ahead: int = 0,
        **overrides: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.topics = topics
        self.handler = handler
        self.max_in_flight = max_in_flight
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.commit_interval = commit_interval
        self.drain_grace = drain_grace
        self.pause_after = pause_after
        self.min_batch = max(1, min(min_batch, max_in_flight, batch_size))
        self.gather_seconds = gather_seconds
        self.read_ahead = read_ahead
        self.overrides = overrides
        self.tracker = OffsetTracker()
        self._lock = threading.Lock()  # the tracker is touched by the loop and the kafka thread
        self._assigned: set[Partition] = set()
        self._paused = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting = KeyTurns()  # taken, not started (under `_lock`: revokes drop from it)
        self._slot_freed: asyncio.Event | None = None  # set whenever a task finishes
        self._failure: BaseException | None = None
        self._call = SerialCalls(group)
        self._consumer: confluent_kafka.Consumer | None = None
        self._watch = BrokerWatch()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # ---- main loop ----------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        await self._connect()
        committer = asyncio.create_task(self._commit_loop(stopping), name="kafka-commits")
        try:
            await self._intake(stopping)
        finally:
            committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await committer
            await self._drain()
            await self._commit()
            if self._consumer is not None:
                await self._call(self._consumer.close)
            self._call.shutdown()
        if self._failure is not None:
            raise self._failure

    async def _connect(self) -> confluent_kafka.Consumer:
        self._watch = BrokerWatch()
        config = self._watch.config() | {"on_commit": self._on_commit} | self.overrides
        c: confluent_kafka.Consumer = await self._call(
            consumer, self.bootstrap, self.group, **config
        )
        await self._call(
            c.subscribe,
            self.topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._consumer = c
        return c

    async def _replace(self) -> confluent_kafka.Consumer:
        """A consumer that knows no broker any more (`BrokerWatch`) gives way to a new one;
        what it owned counts as lost."""
        log.warning("kafka consumer knows no broker; replaced", extra={"group": self.group})
        with self._lock:
            owned = sorted(self._assigned)
        self._forget(owned, "lost")
        await self._call(self._let_go)  # on the kafka thread: no commit is using it then
        return await self._connect()

    def _let_go(self) -> None:
        if self._consumer is not None:
            abandon(self._consumer)
            self._consumer = None

    async def _intake(self, stopping: asyncio.Event) -> None:
        assert self._consumer is not None
        c = self._consumer
        loop = asyncio.get_running_loop()
        read_at = loop.time()
        while not stopping.is_set() and self._failure is None:
            if self._watch.lost:
                c = await self._replace()
            if self._waiting:
                await self._start_waiting()
            free = self.max_in_flight - self.in_flight
            room = self._room(free)
            if room <= 0 and not self._paused:
                # Full: usually a slot frees within moments (no pause, whose resume costs a
                # fresh fetch). Still full after `pause_after`: pause every partition and keep
                # polling, so the group's rebalances and liveness are served meanwhile.
                await self._wait_for_slot(self.pause_after)
                if self.in_flight < self.max_in_flight:
                    continue
                await self._call(self._pause_all)
            elif room > 0 and self._paused:
                await self._call(self._resume_all)
            # Messages waiting: read on without blocking, so that a slot that frees is not
            # left empty for a poll's timeout. With every slot taken, wait for one first,
            # and read again at most every `gather_seconds`: reading after every slot that
            # frees cost the publishers a tenth of their burst throughput.
            if self._waiting and free <= 0:
                await self._wait_for_slot(self.poll_timeout)
                if loop.time() - read_at < self.gather_seconds:
                    continue
            timeout = 0.0 if self._waiting else self.poll_timeout
            read_at = loop.time()
            raw = await self._call(take, c, max(1, min(self.batch_size, room)), timeout)
            if not self._usable(raw) and free <= 0 and not self._waiting:
                await self._wait_for_slot(self.poll_timeout)

    def _room(self, free: int) -> int:
        """How many more messages may be taken: the free slots plus the read-ahead, less
        what waits; none ahead while what waits holds `READ_AHEAD_BYTES` or more (a count
        alone would let a few thousand large records take gigabytes)."""
        ahead = self.read_ahead if self._waiting.bytes < READ_AHEAD_BYTES else 0
        return free + ahead - len(self._waiting)

    async def _start_waiting(self) -> None:
        """Start waiting messages in the keys' turns, as many as there are free slots."""
        free = self.max_in_flight - self.in_flight
        if 0 < free < self.min_batch and len(self._waiting) > free:
            free = await self._gather_slots()
        if free <= 0:
            return
        with self._lock:
            messages = self._waiting.take(min(free, self.batch_size))
        for msg in messages:
            self._start(msg)

    def _usable(self, raw: list[Message]) -> int:
        """Queue the batch's messages of partitions still owned; answers how many."""
        count = 0
        with self._lock:
            for msg in without_errors(raw):
                part = partition_of(msg)
                if part not in self._assigned:
                    continue  # revoked while the batch was being fetched: the new owner reads it
                self.tracker.add(part, int(msg.offset() or 0))
                self._waiting.add(msg)
                count += 1
        return count

    def _start(self, msg: Message) -> None:
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._slot_freed is not None:
            self._slot_freed.set()

    async def _handle(self, msg: Message) -> None:
        part = partition_of(msg)
        offset = int(msg.offset() or 0)
        try:
            finished = await self.handler(msg)
        except asyncio.CancelledError:
            return  # drained out: left uncommitted
        except Exception as exc:
            log.error(
                "message handler failed; stopping the consumer",
                extra={
                    "group": self.group,
                    "topic": part[0],
                    "partition": part[1],
                    "offset": offset,
                },
                exc_info=exc,
            )
            if self._failure is None:
                self._failure = exc
            return
        if finished:
            with self._lock:
                self.tracker.done(part, offset)

    async def _gather_slots(self) -> int:
        """Wait up to `gather_seconds` for `min_batch` free slots; answers the free count.
        Taking messages as single slots free makes batches of a few, and every batch
        costs a claim, a call and an emit transaction."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.gather_seconds
        while (free := self.max_in_flight - self.in_flight) < self.min_batch:
            left = deadline - loop.time()
            if left <= 0:
                break
            await self._wait_for_slot(left)
        return free

    async def _wait_for_slot(self, timeout: float) -> None:
        """Until some task finishes (or `timeout`). One event rather than `asyncio.wait` on
        every task, which adds and removes a callback on each in-flight task per call."""
        if not self._tasks:
            return
        if self._slot_freed is None:
            self._slot_freed = asyncio.Event()
        self._slot_freed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._slot_freed.wait()

    async def _drain(self) -> None:
        tasks = set(self._tasks)
        if self._waiting:
            log.info(
                "messages read ahead left uncommitted for the next owner",
                extra={"group": self.group, "count": len(self._waiting)},
            )
        if not tasks:
            return
        log.info("draining in-flight messages", extra={"group": self.group, "count": len(tasks)})
        _, pending = await asyncio.wait(tasks, timeout=self.drain_grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "in-flight messages left uncommitted after the grace period",
                extra={"group": self.group, "count": len(pending)},
            )
            await asyncio.gather(*pending, return_exceptions=True)

    # ---- commits ------------------------------------------------------------------------

    async def _commit_loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await asyncio.sleep(self.commit_interval)
            await self._commit()

    async def _commit(self) -> None:
        await self._call(self._commit_now, None)

    def _commit_now(self, parts: list[Partition] | None) -> None:
        """On the kafka thread: commit the tracker's positions that moved forward."""
        c = self._consumer
        if c is None:
            return
        with self._lock:
            positions = self.tracker.to_commit(parts)
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            c.commit(offsets=offsets, asynchronous=True)
        except confluent_kafka.KafkaException as exc:
            # Typically no partition is owned any more: the positions are committed next time,
            # or the new owner redelivers (effects are idempotent).
            log.warning("commit failed", extra={"group": self.group, "error": str(exc)})

    def _on_commit(
        self, err: confluent_kafka.KafkaError | None, parts: list[TopicPartition]
    ) -> None:
        """On the kafka thread, inside `consume`: what Kafka accepted is committed."""
        if err is not None:
            log.warning("commit failed", extra={"group": self.group, "error": str(err)})
            return
        accepted = {
            (str(p.topic), int(p.partition)): int(p.offset)
            for p in parts
            if p.error is None and p.offset >= 0
        }
        with self._lock:
            self.tracker.committed(accepted)

    # ---- rebalance callbacks (on the kafka thread, inside consume) ----------------------

    def _on_assign(self, c: confluent_kafka.Consumer, parts: list[TopicPartition]) -> None:
        new = {(str(p.topic), int(p.partition)) for p in parts}
        with self._lock:
            self._assigned |= new
        if parts:
            # Cooperative: assign the increment now, paused like the rest while we are full,
            # and otherwise resumed: librdkafka keeps a partition's pause across a revoke or
            # a loss, so one paused when it was taken away (a coordinator lost, a copy that
            # joined) would come back paused and never be read again.
            c.incremental_assign(parts)
            (c.pause if self._paused else c.resume)(parts)
        log.info(
            "partitions assigned",
            extra={"group": self.group, "partitions": sorted(p for _, p in new)},
        )

    def _on_revoke(self, c: confluent_kafka.Consumer, parts: list[TopicPartition]) -> None:
        leaving = [(str(p.topic), int(p.partition)) for p in parts]
        self._commit_now(leaving)  # what is done so far, while we still own them
        self._forget(leaving, "revoked")

    def _on_lost(self, c: confluent_kafka.Consumer, parts: list[TopicPartition]) -> None:
        self._forget([(str(p.topic), int(p.partition)) for p in parts], "lost")

    def _forget(self, parts: list[Partition], why: str) -> None:
        with self._lock:
            self._assigned.difference_update(parts)
            dropped = self.tracker.forget(parts)
            self._waiting.drop(parts)
        log.info(
            f"partitions {why}",
            extra={
                "group": self.group,
                "partitions": sorted(p for _, p in parts),
                "in_flight_dropped": dropped,
            },
        )

    def _pause_all(self) -> None:
        assert self._consumer is not None
        self._paused = True
        parts = self._consumer.assignment()
        if parts:
            self._consumer.pause(parts)

    def _resume_all(self) -> None:
        assert self._consumer is not None
        self._paused = False
        parts = self._consumer.assignment()
        if parts:
            self._consumer.resume(parts)


class KeyTurns:
    """Messages waiting for a slot: each record key's in the order they came, and the keys
    with messages waiting in turn, one message each, round and round. A key that had none
    waiting joins the round at its end."""

    def __init__(self) -> None:
        self._by_key: dict[bytes | None, deque[tuple[Message, int]]] = {}  # (message, size)
        self._turns: deque[bytes | None] = deque()
        self._count = 0
        self.bytes = 0  # of the waiting messages' keys, values and headers

    def __len__(self) -> int:
        return self._count

    def add(self, msg: Message) -> None:
        self._add(msg, _size(msg))

    def _add(self, msg: Message, size: int) -> None:
        key = msg.key()
        waiting = self._by_key.get(key)
        if waiting is None:
            waiting = self._by_key[key] = deque()
            self._turns.append(key)
        waiting.append((msg, size))
        self._count += 1
        self.bytes += size

    def take(self, n: int) -> list[Message]:
        return [msg for msg, _ in self._take(n)]

    def _take(self, n: int) -> list[tuple[Message, int]]:
        out: list[tuple[Message, int]] = []
        while len(out) < n and self._turns:
            key = self._turns.popleft()
            waiting = self._by_key[key]
            out.append(waiting.popleft())
            if waiting:
                self._turns.append(key)
            else:
                del self._by_key[key]
        self._count -= len(out)
        self.bytes -= sum(size for _, size in out)
        return out

    def drop(self, parts: Iterable[Partition]) -> None:
        """Forget the messages of these partitions (revoked or lost)."""
        gone = set(parts)
        if not gone or not self._count:
            return
        for msg, size in self._take(self._count):
            if partition_of(msg) not in gone:
                self._add(msg, size)


def _size(msg: Message) -> int:
    """A message's key, value and headers, in bytes."""
    size = len(msg.key() or b"") + len(msg.value() or b"")
    headers = msg.headers() or []
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        size += len(name) + len(value or b"")
    return size
