"""Tokens through the whole pipeline (`herald run`: API, scheduler, publisher, results as
processes) against the fake Graph server: a token due for a refresh is refreshed before it
expires and the next post goes out with the new one; a refresh the platform refuses moves
the connection to needs_reauth, a job scheduled then is held without any platform call,
and signing in again by OAuth releases it: one post per job."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psycopg

from bench.graph_fake.model import DAY
from herald.shared.infra.paths import ROOT
from tests.conftest import Namespace, eventually
from tests.fakes.graph_server import INSTAGRAM, FakeGraph
from tests.support.helpers import free_ports

FRESH, DYING = "17841400000000101", "17841400000000102"
OLD_FRESH, OLD_DYING = "IGAA" + "fresh" * 8, "IGAA" + "dying" * 8
APP_ID, APP_SECRET = "5550001", "e2e-app-secret-0123456789abcdef"
MEDIA = ["https://cdn.example.com/e2e/cat.jpg"]

Call = Callable[..., Awaitable[tuple[int, Any]]]


async def test_refresh_before_expiry_and_a_refused_refresh_held_then_released_by_oauth(
    ns: Namespace, tmp_path: Path
) -> None:
    api_port = free_ports(5)
    base = f"http://127.0.0.1:{api_port}"
    callback = f"{base}/publishing/connections/oauth/instagram/callback"
    async with FakeGraph() as fake:
        fake.add_account(FRESH, OLD_FRESH, login=INSTAGRAM)
        fake.set_token_life(OLD_FRESH, expires_in=60 * DAY, age=50 * DAY)  # 10 days left
        fake.add_account(DYING, OLD_DYING, login=INSTAGRAM)
        fake.set_token_life(OLD_DYING, expires_in=60 * DAY, age=61 * DAY)  # already dead
        fake.register_app(APP_ID, APP_SECRET, [callback])
        fake.consent_account = DYING
        root = fake.instagram_base_url.rsplit("/", 1)[0]
        env = ns.env(
            stack_dir=str(tmp_path / "stack"),
            api_port=api_port,
            metrics_port=api_port + 1,
            instagram_login_graph_url=fake.instagram_base_url,
            token_check_seconds=0.5,
            meta_app_id=APP_ID,
            oauth_redirect_base_url=base,
            instagram_authorize_url=f"{root}/oauth/authorize",
            instagram_code_exchange_url=f"{root}/oauth/access_token",
        )
        env["HERALD_META_APP_SECRET"] = APP_SECRET
        log_path = tmp_path / "run.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "herald", "run", "--publishers", "1"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            await _run(ns, fake, base, log_path)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                code = await asyncio.to_thread(proc.wait, 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        text = log_path.read_text()
        assert code == 0, text[-3000:]
        for secret in (OLD_FRESH, OLD_DYING, APP_SECRET, *(new for _, new in fake.refreshed)):
            assert secret not in text  # never in a log line


async def _run(ns: Namespace, fake: FakeGraph, base: str, log_path: Path) -> None:
    async def key_printed() -> str | None:
        text = await asyncio.to_thread(log_path.read_text)
        match = re.search(r"admin key\s+(hk_\S+)", text)
        return match.group(1) if match else None

    key = await eventually(key_printed, timeout=60)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:

        async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            async with http.request(method, base + path, json=body) as r:
                return r.status, await r.json()

        async def ready() -> bool:
            try:
                async with http.get(f"{base}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout=60)
        fresh = await _connect(call, FRESH, OLD_FRESH)
        dying = await _connect(call, DYING, OLD_DYING)
        # Both tokens were pasted with no known expiry: make their first refresh due now.
        await _execute(ns, "UPDATE connections SET token_refresh_at = now() - interval '1 s'")

        # 1. Refreshed before it expires; the post goes out with the new token.
        async def refreshed() -> dict[str, Any] | None:
            _, shown = await call("GET", f"/publishing/connections/{fresh}")
            return shown if shown["token"]["expires_at"] else None

        shown = await eventually(refreshed, timeout=60, interval=0.3)
        assert shown["status"] == "active" and [old for old, _ in fake.refreshed] == [OLD_FRESH]
        job = await _schedule(call, fresh)
        await _wait_status(call, job, "PUBLISHED")
        assert len(fake.posts[FRESH]) == 1

        # 2. The dying token's refresh is refused (190): needs_reauth, and a job is held.
        async def reauth() -> bool:
            _, shown = await call("GET", f"/publishing/connections/{dying}")
            return bool(shown["status"] == "needs_reauth")

        await eventually(reauth, timeout=60, interval=0.3)
        held = await _schedule(call, dying)
        row = await _wait_status(call, held, "RETRY_SCHEDULED")
        assert row["last_error"]["code"] == "needs_reauth" and row["attempt_count"] == 1
        assert not [r for r in fake.requests if r.call == "create_container"][1:]  # only FRESH's

        # 3. Signing in again by OAuth releases it; it publishes once.
        status, start = await call(
            "POST", "/publishing/connections/oauth/instagram/start", {"connection_id": dying}
        )
        assert status == 200, start
        async with (
            aiohttp.ClientSession() as browser,
            browser.get(start["authorize_url"], allow_redirects=False) as consent,
        ):
            assert consent.status == 302
            back = consent.headers["Location"].split("#")[0]
            assert urlsplit(back).path.endswith("/oauth/instagram/callback")
            async with browser.get(back, allow_redirects=False) as landed:
                assert landed.status == 303, await landed.text()
                assert landed.headers["Location"] == f"/?connected={dying}"
        await _wait_status(call, held, "PUBLISHED")
        assert len(fake.posts[DYING]) == 1 and len(fake.posts[FRESH]) == 1
        _, shown = await call("GET", f"/publishing/connections/{dying}")
        assert shown["status"] == "active" and shown["token"]["expires_at"]


async def _connect(call: Call, account: str, token: str) -> str:
    status, made = await call(
        "POST",
        "/publishing/connections",
        {
            "platform": "instagram",
            "name": account,
            "access_token": token,
            "metadata": {"instagramBusinessAccountId": account, "login": "instagram"},
        },
    )
    assert status == 201, made
    return str(made["id"])


async def _schedule(call: Call, connection: str) -> str:
    status, made = await call(
        "POST",
        "/publishing/jobs",
        {"platform": "instagram", "connection_id": connection, "media_asset_ids": MEDIA},
    )
    assert status == 201, made
    return str(made["id"])


async def _wait_status(call: Call, job_id: str, wanted: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        _, body = await call("GET", f"/publishing/jobs/{job_id}")
        return body if body["status"] == wanted else None

    found: dict[str, Any] = await eventually(reached, timeout=90, interval=0.3)
    return found


async def _execute(ns: Namespace, sql: str) -> None:
    """A statement in this test's own schema."""

    def run() -> None:
        with psycopg.connect(ns.base.database_url) as conn:
            conn.execute(f'SET search_path TO "{ns.db_schema}"')
            conn.execute(sql)

    await asyncio.to_thread(run)
