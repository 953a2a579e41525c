"""The ops page in Debian's chromium, driven by Playwright, against the live pipeline:
`herald run` (scheduler, API, one publisher, results) on the shared stack in a namespace of
its own. Chromium and axe-core come from `herald stack up` (deploy/local/stack/browser.py);
when one is missing the tests fail under CI=true and skip elsewhere, naming it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from herald.shared.infra.paths import ROOT
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.stores.tenants import create_api_key
from stack.browser import AXE_SCRIPT, CHROMIUM, missing
from tests.conftest import IN_CI, Namespace
from tests.support.helpers import free_ports

# Where each view's screenshot goes (one of them is docs/img/ops.png).
SHOTS = Path(os.environ.get("HERALD_SCREENSHOT_DIR", ROOT / ".pytest_cache" / "ops-page"))


@dataclass
class Pipeline:
    base: str
    admin_key: str
    settings: Settings

    def call(self, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def ok(self, method: str, path: str, key: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, key, body)
        assert status < 300, (status, answer)
        return answer

    def tenant_key(self, tenant: str) -> str:
        async def create() -> str:
            rt = Runtime.build(self.settings)
            await rt.open()
            try:
                return (await create_api_key(rt.db, tenant_id=tenant, admin=False))[1]
            finally:
                await rt.close()

        return off_loop(create)

    def sql(self, statement: str, *params: Any) -> None:
        async def run() -> None:
            rt = Runtime.build(self.settings)
            await rt.open()
            try:
                await rt.db.execute(statement, params)
            finally:
                await rt.close()

        off_loop(run)


def off_loop(make: Any) -> Any:
    """Run a coroutine on a thread of its own: Playwright's sync API holds this thread's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def wait_for(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"not true within {timeout} s (last: {last!r})")


@pytest.fixture(scope="module")
def pipeline(
    base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    ns = Namespace(base_settings)
    ns.setup()
    tmp = tmp_path_factory.mktemp("ops-run")
    api_port = free_ports(5)
    env = ns.env(stack_dir=str(tmp / "stack"), api_port=api_port, metrics_port=api_port + 1)
    log_path = tmp / "run.log"
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

        def key_printed() -> str | None:
            match = re.search(r"admin key\s+(hk_\S+)", log_path.read_text())
            return match.group(1) if match else None

        key = wait_for(key_printed, 90)

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                return False

        wait_for(ready, 90)
        yield Pipeline(base, key, ns.settings())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        ns.teardown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    absent = missing()
    if absent:
        message = f"missing {', '.join(absent)}: run `herald stack up` (or `make stack`)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, pipeline: Pipeline) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("dialog", lambda dialog: dialog.accept())  # confirm() before cancel and redrive
    yield tab
    context.close()
    assert errors == [], errors  # no script error, a CSP refusal included


def log_in(page: Page, pipeline: Pipeline, key: str, view: str = "schedule") -> None:
    page.goto(f"{pipeline.base}/#{view}")
    page.get_by_label("Key", exact=True).fill(key)
    page.get_by_role("button", name="Use this key").click()
    page.locator(f"#view-{view.split('/')[0]}").wait_for(state="visible")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings; its source runs through page.evaluate, so
    the page's CSP stays exactly as the server sends it."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT.read_text())
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document)).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.html).slice(0, 3)}))"
    )
    return found


def shoot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
