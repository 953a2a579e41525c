"""`herald run` as a newcomer uses it: every service starts, the admin key is printed, a
sandbox post scheduled over HTTP reaches PUBLISHED, and Ctrl-C stops everything."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from herald.shared.infra.paths import ROOT
from tests.conftest import Namespace, eventually
from tests.support.helpers import free_ports


async def test_herald_run_publishes_a_post_scheduled_over_http(
    ns: Namespace, tmp_path: Path
) -> None:
    # The API, then the metrics ports of its 4 children (scheduler, api, publisher, results).
    api_port = free_ports(5)
    metrics_base = api_port + 1
    env = ns.env(stack_dir=str(tmp_path / "stack"), api_port=api_port, metrics_port=metrics_base)
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
        assert (tmp_path / "stack" / "admin.key").stat().st_mode & 0o777 == 0o600
        text = log_path.read_text()
        assert f"http://127.0.0.1:{api_port}/" in text
        assert f"metrics http://127.0.0.1:{metrics_base}/metrics" in text
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(headers=headers) as http:

            async def api_ready() -> bool:
                try:
                    async with http.get(f"{base}/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(api_ready, timeout=60)
            async with http.post(
                f"{base}/publishing/connections", json={"platform": "sandbox", "name": "demo"}
            ) as r:
                assert r.status == 201, await r.text()
                connection = await r.json()
            async with http.post(
                f"{base}/publishing/jobs",
                json={
                    "platform": "sandbox",
                    "connection_id": connection["id"],
                    "media_asset_ids": ["https://cdn.example.com/cat.jpg"],
                    "caption": "hello",
                },
            ) as r:
                assert r.status == 201, await r.text()
                job = await r.json()

            async def published() -> dict[str, object] | None:
                async with http.get(f"{base}/publishing/jobs/{job['id']}") as r:
                    body = await r.json()
                    return body if body["status"] == "PUBLISHED" else None

            done = await eventually(published, timeout=90, interval=0.5)
            assert done["published_at"] and done["attempt_count"] == 1
            async with http.get(f"{base}/publishing/jobs/{job['id']}/attempts") as r:
                attempts = (await r.json())["items"]
            assert [a["outcome"] for a in attempts] == ["published"]
        targets = (tmp_path / "stack" / "prometheus" / "targets.json").read_text()
        assert str(metrics_base) in targets
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
    assert "stopped" in log_path.read_text()
