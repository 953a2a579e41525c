"""A faust-streaming worker that forwards every record of one topic to another, keyed the
same way. Run as a process by tests: proves aiokafka and faust speak to the stack's broker.

    python -m tests.support.faust_forwarder <bootstrap> <app id> <source topic> <target topic>
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust


def build(bootstrap: str, app_id: str, source: str, target: str) -> faust.App:
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        web_enabled=False,  # several workers can share a host
        topic_partitions=12,
        topic_disable_leader=True,
        value_serializer="raw",
        key_serializer="raw",
        broker_commit_every=100,
        consumer_auto_offset_reset="earliest",
        store="memory://",
        datadir=str(Path(tempfile.gettempdir()) / f"herald-faust-{app_id}"),  # not the cwd
    )
    source_topic = app.topic(source, value_serializer="raw", key_serializer="raw")
    target_topic = app.topic(target, value_serializer="raw", key_serializer="raw")

    @app.agent(source_topic)
    async def forward(stream: Any) -> AsyncIterator[None]:
        async for event in stream.events():
            await target_topic.send(key=event.key, value=event.value)
            yield None

    return app


if __name__ == "__main__":
    bootstrap, app_id, source, target = sys.argv[1:5]
    sys.argv = [sys.argv[0], "worker", "--loglevel=warn"]
    build(bootstrap, app_id, source, target).main()
