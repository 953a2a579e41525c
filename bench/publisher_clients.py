"""Which Kafka client for the publisher: a faust-streaming agent or the confluent-kafka
ConcurrentConsumer, consuming the same messages, each in a process of its own.

    python -m bench.publisher_clients --messages 20000 --handler-ms 0 5

One topic of 12 partitions gets `--messages` publish.request-sized records keyed by 50
connection ids. Each run is a fresh consumer group reading the topic from the beginning with
at most `--in-flight` messages in flight (faust: an agent with that `concurrency`; confluent:
`ConcurrentConsumer(max_in_flight=...)`), a handler that awaits `--handler-ms` (0: none; 5:
a stand-in for a platform call) and both committing as they go. The figure is messages /
(last handled - first handled), so start-up and group joins are not counted. Prints one line
per run; the figures in docs/decisions/0002 come from this script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from herald.shared.infra.kafka.admin import TopicSpec, create_topics, delete_topics
from herald.shared.infra.kafka.client import Message, Producer
from herald.shared.infra.kafka.concurrent_consumer import ConcurrentConsumer
from herald.shared.infra.settings import Settings

PAYLOAD_BYTES = 620  # about one publish.request value


class Clock:
    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.first = 0.0

    def tick(self) -> bool:
        """Count one handled message; True at the last one (and prints the result)."""
        self.count += 1
        if self.count == 1:
            self.first = time.perf_counter()
        if self.count < self.total:
            return False
        seconds = time.perf_counter() - self.first
        line = json.dumps(
            {"messages": self.count, "seconds": seconds, "rate": self.count / max(seconds, 1e-9)}
        )
        os.write(1, f"{line}\n".encode())  # faust redirects sys.stdout into its logging
        return True


def run_faust(
    bootstrap: str, topic: str, group: str, total: int, handler_ms: float, in_flight: int
) -> None:
    import faust

    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        store="memory://",
        datadir=str(Path(tempfile.gettempdir()) / f"herald-faust-{group}"),  # not the cwd
        topic_partitions=12,
    )  # faust's own defaults otherwise (commits every 2.8 s)
    source = app.topic(topic, value_type=bytes, key_type=bytes)
    clock = Clock(total)

    @app.agent(source, concurrency=in_flight)
    async def consume(stream: Any) -> None:
        async for _ in stream:
            if handler_ms:
                await asyncio.sleep(handler_ms / 1000)
            if clock.tick():
                os._exit(0)  # measured; faust's orderly shutdown takes seconds

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


def run_confluent(
    bootstrap: str, topic: str, group: str, total: int, handler_ms: float, in_flight: int
) -> None:
    clock = Clock(total)

    async def main() -> None:
        stopping = asyncio.Event()

        async def handle(_msg: Message) -> bool:
            if handler_ms:
                await asyncio.sleep(handler_ms / 1000)
            if clock.tick():
                stopping.set()
            return True

        consumer = ConcurrentConsumer(bootstrap, group, [topic], handle, max_in_flight=in_flight)
        await consumer.run(stopping)

    asyncio.run(main())


def child(args: argparse.Namespace) -> None:
    run = run_faust if args.child == "faust" else run_confluent
    run(
        args.bootstrap, args.topic, args.group, args.messages, args.child_handler_ms, args.in_flight
    )


def measure(client: str, args: argparse.Namespace, topic: str, handler_ms: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "bench.publisher_clients",
        "--child",
        client,
        "--bootstrap",
        args.bootstrap,
        "--topic",
        topic,
        "--group",
        f"{topic}.{client}-{uuid.uuid4().hex[:6]}",
        "--messages",
        str(args.messages),
        "--child-handler-ms",
        str(handler_ms),
        "--in-flight",
        str(args.in_flight),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
    found = re.findall(r'\{"messages".*?\}', out.stdout)  # faust may write escape codes
    if not found:
        return {"error": (out.stderr or out.stdout)[-500:]}
    result: dict[str, Any] = json.loads(found[-1])
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--handler-ms", type=float, nargs="*", default=[0.0, 5.0])
    p.add_argument("--in-flight", type=int, default=256)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--bootstrap", default=Settings().kafka_bootstrap)
    p.add_argument("--child", choices=["faust", "confluent"])
    p.add_argument("--topic")
    p.add_argument("--group")
    p.add_argument("--child-handler-ms", type=float, default=0.0)
    args = p.parse_args()
    if args.child:
        child(args)
        return 0

    prefix = f"bench{uuid.uuid4().hex[:6]}."
    create_topics(args.bootstrap, [TopicSpec("clients", 12, 3_600_000)], prefix)
    topic = prefix + "clients"
    try:
        value = b"x" * PAYLOAD_BYTES
        Producer(args.bootstrap).send_batch(
            (topic, f"connection-{i % 50}", value) for i in range(args.messages)
        )
        for handler_ms in args.handler_ms:
            for _ in range(args.rounds):
                for client in ("faust", "confluent"):
                    r = measure(client, args, topic, handler_ms)
                    figure = (
                        f"{r['rate']:.0f} msgs/s ({r['messages']} in {r['seconds']:.2f}s)"
                        if "rate" in r
                        else f"failed: {r['error']}"
                    )
                    print(
                        f"{client:<9} handler={handler_ms:g}ms in_flight={args.in_flight}: "
                        f"{figure}",
                        flush=True,
                    )
    finally:
        delete_topics(args.bootstrap, [topic])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
