"""What a retry wrapper costs on a step that succeeds: `python -m bench.retry_overhead`.

Awaits a no-op step N times inline (no wrapper), through the hand-written loop
`PublishWorker._store` had, through `herald.shared.infra.retry.Retry.call`, and through
tenacity and stamina when they are installed (they are not Herald's dependencies: install
them into a scratch environment to compare). Prints the median µs per call as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

from herald.shared.errors import StoreUnavailable
from herald.shared.infra.retry import Backoff, Retry, sleep_or_stop

Step = Callable[[], Awaitable[Any]]


async def noop() -> None:
    return None


def hand_written(stopping: asyncio.Event) -> Callable[[Step], Awaitable[Any]]:
    """The loop `PublishWorker._store` was before the helper."""

    async def store(fn: Step) -> Any:
        delay = 0.2
        while True:
            try:
                return await fn()
            except StoreUnavailable:
                pass
            if await sleep_or_stop(stopping, delay):
                raise RuntimeError("stopped")
            delay = min(delay * 2, 5.0)

    return store


def candidates(stopping: asyncio.Event) -> dict[str, Callable[[Step], Awaitable[Any]]]:
    retry = Retry(Backoff(first=0.2, cap=5.0), on=(StoreUnavailable,), stopping=stopping, what="x")
    found: dict[str, Callable[[Step], Awaitable[Any]]] = {
        "hand_written": hand_written(stopping),
        "herald_retry": retry.call,
    }
    try:
        import tenacity

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(StoreUnavailable),
            wait=tenacity.wait_random_exponential(multiplier=0.2, max=5.0),
        )
        found[f"tenacity {version('tenacity')}"] = retrying
    except ImportError:
        pass
    try:
        import stamina

        async def with_stamina(fn: Step) -> Any:
            async for attempt in stamina.retry_context(
                on=StoreUnavailable, attempts=None, timeout=None, wait_initial=0.2, wait_max=5.0
            ):
                with attempt:
                    return await fn()
            return None

        found[f"stamina {version('stamina')}"] = with_stamina
    except ImportError:
        pass
    return found


async def measure(calls: int, rounds: int) -> dict[str, float]:
    stopping = asyncio.Event()
    results: dict[str, list[float]] = {}
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(calls):
            await noop()
        results.setdefault("inline", []).append((time.perf_counter() - began) / calls * 1e6)
        for name, wrap in candidates(stopping).items():
            began = time.perf_counter()
            for _ in range(calls):
                await wrap(noop)
            results.setdefault(name, []).append((time.perf_counter() - began) / calls * 1e6)
    return {name: round(statistics.median(us), 3) for name, us in results.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    figures = asyncio.run(measure(args.calls, args.rounds))
    print(json.dumps({"us_per_call": figures}, indent=2))


if __name__ == "__main__":
    main()
