"""A platform added as a third party adds one: a package and its entry point in the group
`herald.platforms`, nothing in Herald's code. `herald run` with the toy plugin's folder on
PYTHONPATH lists it, validates jobs by its declared rules, publishes a job through it once,
and lists the job by its platform."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from herald.shared.infra.paths import ROOT
from tests.conftest import Namespace, eventually
from tests.support.helpers import free_ports
from tests.support.toy_platform import install_toy


async def test_a_toy_platform_registered_by_entry_point_is_scheduled_published_and_listed(
    ns: Namespace, tmp_path: Path
) -> None:
    plugin_dir = install_toy(tmp_path / "site")
    posts = tmp_path / "toy-posts.txt"
    api_port = free_ports(5)
    env = ns.env(stack_dir=str(tmp_path / "stack"), api_port=api_port, metrics_port=api_port + 1)
    env["PYTHONPATH"] = str(plugin_dir)
    env["HERALD_TOY_POSTS"] = str(posts)
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "herald", "run", "--publishers", "1"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{api_port}"
    try:

        async def key_printed() -> str | None:
            match = re.search(r"admin key\s+(hk_\S+)", log_path.read_text())
            return match.group(1) if match else None

        key = await eventually(key_printed, timeout=60)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:

            async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
                async with http.request(method, base + path, json=body) as r:
                    return r.status, await r.json()

            async def api_ready() -> bool:
                try:
                    async with http.get(f"{base}/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(api_ready, timeout=60)
            status, listed = await call("GET", "/publishing/platforms")
            assert status == 200
            toy = {p["name"]: p for p in listed["items"]}["toy"]
            assert [k["media_type"] for k in toy["media_kinds"]] == ["TEXT", "SQUARE"]
            caption = {"chars": 40, "hashtags": 2, "mentions": None, "unit": "characters"}
            assert toy["caption"] == caption
            status, spec = await call("GET", "/openapi.json")
            assert "toy" in spec["components"]["schemas"]["PlatformName"]["enum"]

            # The toy's account rules: its metadata is required and checked.
            status, body = await call(
                "POST", "/publishing/connections", {"platform": "toy", "name": "t"}
            )
            assert status == 422 and "metadata.board" in body["error"]["fields"]
            status, connection = await call(
                "POST",
                "/publishing/connections",
                {"platform": "toy", "name": "t", "metadata": {"board": "cats"}},
            )
            assert status == 201, connection

            job = {"platform": "toy", "connection_id": connection["id"], "media_asset_ids": []}
            refused = [
                ({**job, "media_type": "TEXT", "caption": "x" * 41}, "caption"),
                ({**job, "media_type": "TEXT", "caption": "#a #b #c"}, "caption"),
                ({**job, "media_type": "IMAGE"}, "media_type"),
                ({**job, "caption": "no kind"}, "media_type"),
                (
                    {
                        **job,
                        "media_type": "SQUARE",
                        "media_asset_ids": ["https://cdn.example.com/a.mp4"],
                    },
                    "media_asset_ids",
                ),
                ({**job, "platform": "toys", "media_type": "TEXT"}, "platform"),
            ]
            for bad, field in refused:
                status, body = await call("POST", "/publishing/jobs", bad)
                assert status == 422 and field in body["error"]["fields"], (bad, body)

            status, created = await call(
                "POST", "/publishing/jobs", {**job, "media_type": "TEXT", "caption": "hello #toy"}
            )
            assert status == 201, created

            async def published() -> dict[str, Any] | None:
                _, body = await call("GET", f"/publishing/jobs/{created['id']}")
                return body if body["status"] == "PUBLISHED" else None

            done = await eventually(published, timeout=90, interval=0.5)
            lines = posts.read_text().split("\n")
            assert [line.split()[0] for line in lines if line] == [created["id"]]
            assert done["provider_ids"]["post_id"] == lines[0].split()[1]

            status, page = await call("GET", "/publishing/jobs?platform=toy")
            assert status == 200 and [j["id"] for j in page["items"]] == [created["id"]]
            status, page = await call("GET", "/publishing/connections?platform=toy")
            assert [c["id"] for c in page["items"]] == [connection["id"]]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, log_path.read_text()[-3000:]
