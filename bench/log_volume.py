"""How much the services log for N jobs scheduled over HTTP: a whole pipeline (API,
scheduler, publisher, results) on its own prefix, N single-job `POST /publishing/jobs`,
every job published, then each service's log counted (bytes and lines, all and INFO).

    python -m bench.log_volume --jobs 20000
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.pipeline import MEDIA, BenchPipeline, _say, utc_in
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.stores.tenants import create_api_key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _admin_key(settings: Settings) -> str:
    rt = Runtime.build(settings)
    await rt.open()
    try:
        return (await create_api_key(rt.db, tenant_id=None, admin=True, label="bench"))[1]
    finally:
        await rt.close()


async def _schedule(base: str, key: str, connections: list[str], n: int, lead: float) -> None:
    """N single-job requests, 32 at a time, every job due `lead` seconds from now."""
    due = utc_in(lead).isoformat()
    todo = iter(range(n))
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(base, headers=headers) as http:
        for _ in range(600):
            try:
                async with http.get("/readyz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)

        async def worker() -> None:
            for i in todo:
                body = {
                    "platform": "sandbox",
                    "connection_id": connections[i % len(connections)],
                    "media_asset_ids": MEDIA,
                    "caption": f"bench {i}",
                    "scheduled_at": due,
                }
                async with http.post("/publishing/jobs", json=body) as r:
                    if r.status != 201:
                        raise RuntimeError(f"{r.status}: {await r.text()}")

        await asyncio.gather(*(worker() for _ in range(32)))


def _count(path: Path) -> dict[str, int]:
    """Bytes and lines of a service's log, all and by level."""
    sizes: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    with open(path, "rb") as f:
        for line in f:
            try:
                level = str(orjson.loads(line).get("level", "other"))
            except orjson.JSONDecodeError:
                level = "other"
            sizes[level] += len(line)
            lines[level] += 1
    return {
        "bytes": sum(sizes.values()),
        "lines": sum(lines.values()),
        "info_bytes": sizes["info"],
        "info_lines": lines["info"],
    }


def measure(base: Settings, n: int, log_level: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="herald-logs-") as tmp:
        port = _free_port()
        env = {"HERALD_API_PORT": str(port), "HERALD_LOG_LEVEL": log_level}
        with BenchPipeline(base, log_dir=Path(tmp), extra_env=env) as pipe:
            pipe._spawn("api", "api0")
            key = asyncio.run(_admin_key(pipe.settings))
            began = time.monotonic()
            asyncio.run(_schedule(f"http://127.0.0.1:{port}", key, pipe.connections, n, 5.0))
            _say(f"scheduled {n} jobs over HTTP in {time.monotonic() - began:.1f} s")
            done = pipe.wait_terminal(n, timeout=600, label="log volume")
            time.sleep(6)  # the last interval's summary lines
        figures: dict[str, Any] = {"jobs": n, "terminal": done, "log_level": log_level}
        for path in sorted(Path(tmp).glob("*.log")):
            figures[path.stem.split(".")[-1]] = _count(path)
        return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20_000, help="jobs to schedule (default 20000)")
    p.add_argument("--log-level", default="INFO", help="HERALD_LOG_LEVEL of every service")
    args = p.parse_args()
    print(orjson.dumps(measure(Settings(), args.jobs, args.log_level)).decode())


if __name__ == "__main__":
    main()
