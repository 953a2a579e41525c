"""Fault injection for chaos tests: a service run with a pause at one chosen point, so a test
can SIGKILL it exactly there. Only tests load this module; the product has no such knob.

    python -m tests.support.faulty scheduler --pause-after-claim 600
    python -m tests.support.faulty scheduler --pause-after-mark 600
    python -m tests.support.faulty results --pause-after-commit 600

Each option wraps one method of the real service with a pause (logged once per pause as
`fault injection: pausing after ...`, which the test waits for), then runs the service
exactly as `python -m herald <service>` would:

- `--pause-after-claim`: the scheduler's delayed queue answered a claim (the batch is in
  flight in Redis, nothing marked yet): `DelayedQueue.claim`;
- `--pause-after-mark`: the dispatcher committed a batch's IN_PROGRESS mark and is about to
  produce its `publish.request` records: the producer's `send_batch_async` for that topic;
- `--pause-after-commit`: the results service committed a batch in Postgres, before its
  Redis writes and its offset commit: `ResultsConsumer._mirror`.

A hook that no longer finds its point (the method renamed, say) never logs its line, so the
test that waits for it fails instead of passing without the fault.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from herald.services.results.consumer import ResultsConsumer
from herald.shared.infra.delayed_queue import DelayedQueue
from herald.shared.infra.kafka.client import Producer
from herald.shared.infra.names import REQUEST

log = logging.getLogger("herald.fault")
Method = Callable[..., Awaitable[Any]]


def pause_before(owner: type, name: str, seconds: float, point: str) -> None:
    """`owner.name` pauses `seconds` before it runs."""
    method: Method = getattr(owner, name)

    @functools.wraps(method)
    async def paused(self: Any, *args: Any, **kwargs: Any) -> Any:
        log.warning(f"fault injection: pausing after {point}", extra={"seconds": seconds})
        await asyncio.sleep(seconds)
        return await method(self, *args, **kwargs)

    setattr(owner, name, paused)


def pause_after_claim(seconds: float) -> None:
    """A claim that took jobs pauses before answering them to the dispatcher."""
    claim: Method = DelayedQueue.claim

    @functools.wraps(claim)
    async def paused(self: DelayedQueue, *args: Any, **kwargs: Any) -> Any:
        claimed = await claim(self, *args, **kwargs)
        if claimed:
            log.warning(
                "fault injection: pausing after claim",
                extra={"count": len(claimed), "seconds": seconds},
            )
            await asyncio.sleep(seconds)
        return claimed

    DelayedQueue.claim = paused  # type: ignore[method-assign]


def pause_after_mark(seconds: float) -> None:
    """The dispatcher's produce of `publish.request` records (its mark is committed by then)
    pauses first; the outbox relay's and the publisher's produces go on."""
    send: Method = Producer.send_batch_async

    @functools.wraps(send)
    async def paused(self: Producer, records: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        if any(str(record[0]).endswith(REQUEST) for record in records):
            log.warning(
                "fault injection: pausing after mark",
                extra={"count": len(records), "seconds": seconds},
            )
            await asyncio.sleep(seconds)
        return await send(self, records, *args, **kwargs)

    Producer.send_batch_async = paused  # type: ignore[method-assign]


HOOKS: dict[str, tuple[str, Callable[[float], None]]] = {
    "--pause-after-claim": ("scheduler", pause_after_claim),
    "--pause-after-mark": ("scheduler", pause_after_mark),
    "--pause-after-commit": (
        "results",
        lambda seconds: pause_before(ResultsConsumer, "_mirror", seconds, "a commit"),
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.faulty")
    parser.add_argument("service", choices=["scheduler", "publisher", "results", "api"])
    for option in HOOKS:
        parser.add_argument(option, type=float, metavar="SECONDS")
    args = parser.parse_args(argv)
    for option, (service, install) in HOOKS.items():
        seconds = getattr(args, option.removeprefix("--").replace("-", "_"))
        if seconds is None:
            continue
        if service != args.service:
            parser.error(f"{option} pauses the {service} service, not {args.service}")
        install(seconds)

    from herald.services.cli import main as herald

    return herald([args.service])


if __name__ == "__main__":
    sys.exit(main())
