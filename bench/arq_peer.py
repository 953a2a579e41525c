"""arq (a Redis job queue) beside Herald in the latency run: a no-op job, deferred to its due
instant one second ahead, at the same steady rate, on the same Redis and machine. Its worker
runs as its own process (`max_jobs=500`, `poll_delay=0.01`); the lag is arq's own record:
the job's start time minus its due instant.

arq 0.28 needs redis-py < 6 and Herald a newer one, so arq lives in a virtualenv of its own,
made on first use under /var/cache/herald (outside the checkout) and reused; this file runs
there as a script and imports nothing from Herald.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ARQ = "arq==0.28.0"
VENV = Path(os.environ.get("HERALD_CACHE_DIR", "/var/cache/herald")) / "arq-0.28.0"


def steady(redis_url: str, *, rate: float, seconds: float) -> dict[str, Any]:
    """Run the peer in its own virtualenv; answers its figures."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"[bench] installing {ARQ} into {VENV} (once)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", ARQ], check=True)
    out = subprocess.run(
        [str(python), __file__, redis_url, repr(rate), repr(seconds)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, Any] = json.loads(out.stdout)
    return figures


# ---- below: runs inside the arq virtualenv ----------------------------------------------------


async def noop(ctx: dict[str, Any], due: float) -> None:
    return None  # `due` rides along for the measurement only


def _percentiles_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(max(0.0, v) for v in values)
    if not ordered:
        return {}

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": pick(1.0)}


async def _run(redis_url: str, queue: str, rate: float, seconds: float) -> list[float]:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.jobs import deserialize_result

    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue)
    ids: list[str] = []
    try:
        began = time.time()
        while time.time() - began < seconds:
            target = int((time.time() - began + 0.01) * rate)
            due = datetime.now(UTC) + timedelta(seconds=1)
            batch = [f"{queue}-{n}" for n in range(len(ids), target)]
            await asyncio.gather(
                *(
                    pool.enqueue_job("noop", due.timestamp(), _job_id=j, _defer_until=due)
                    for j in batch
                )
            )
            ids.extend(batch)
            await asyncio.sleep(max(0.0, began + len(ids) / rate - time.time()))
        deadline = time.time() + 60
        while time.time() < deadline:
            raw = await pool.mget([f"arq:result:{j}" for j in ids])
            if all(raw):
                lags = []
                for blob in raw:
                    result = deserialize_result(blob)
                    lags.append(result.start_time.timestamp() - result.args[0])
                return lags
            await asyncio.sleep(1.0)
        raise SystemExit("arq did not run every job within 60 s")
    finally:
        keys = [k async for k in pool.scan_iter(match=f"*{queue}*")]
        for start in range(0, len(keys), 1000):
            await pool.delete(*keys[start : start + 1000])
        await pool.aclose()


def _worker(redis_url: str, queue: str) -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker

    Worker(
        functions=[noop],
        redis_settings=RedisSettings.from_dsn(redis_url),
        queue_name=queue,
        max_jobs=500,
        poll_delay=0.01,
        keep_result=600,
    ).run()


def _main(argv: list[str]) -> None:
    if argv[0] == "worker":
        _worker(argv[1], argv[2])
        return
    redis_url, rate, seconds = argv[0], float(argv[1]), float(argv[2])
    queue = f"arq:bench-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [sys.executable, __file__, "worker", redis_url, queue],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2.0)
        lags = asyncio.run(_run(redis_url, queue, rate, seconds))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    figures = {
        "peer": "arq 0.28 (max_jobs=500, poll_delay=0.01, no-op job)",
        "rate_per_s": rate,
        "jobs": len(lags),
        "due_to_start_ms": _percentiles_ms(lags),
    }
    sys.stdout.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    _main(sys.argv[1:])
