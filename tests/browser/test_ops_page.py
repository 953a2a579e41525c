"""The ops page as people use it, in chromium, against the live pipeline: schedule and see
the post published, reschedule and cancel, re-authorise a connection, redrive a dead
letter; a tenant's key sees only its rows; hostile text stays text; every view passes
axe-core's serious and critical rules, and each leaves a screenshot."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Pipeline, axe_violations, log_in, shoot, wait_for

IMAGE = "https://cdn.example.com/cat.jpg"
IG_TOKEN = "IGtoken-" + "x" * 40
LATER = (datetime.now(UTC) + timedelta(days=30)).isoformat()
SLOW = 60_000  # ms: a post goes through Kafka, a publisher and the results service


def tenant(pipeline: Pipeline) -> str:
    return pipeline.tenant_key(f"t-{uuid.uuid4().hex[:8]}")


def sandbox(pipeline: Pipeline, key: str, name: str, **metadata: Any) -> str:
    body: dict[str, Any] = {"platform": "sandbox", "name": name}
    if metadata:
        body["metadata"] = metadata
    return str(pipeline.ok("POST", "/publishing/connections", key, body)["id"])


def instagram(pipeline: Pipeline, key: str, name: str) -> str:
    body = {
        "platform": "instagram",
        "name": name,
        "access_token": IG_TOKEN,
        "metadata": {"instagramBusinessAccountId": "1784"},
    }
    return str(pipeline.ok("POST", "/publishing/connections", key, body)["id"])


def job(pipeline: Pipeline, key: str, connection: str, **extra: Any) -> dict[str, Any]:
    body = {"platform": "sandbox", "connection_id": connection, "media_asset_ids": [IMAGE]}
    answer: dict[str, Any] = pipeline.ok("POST", "/publishing/jobs", key, body | extra)
    return answer


def status_of(pipeline: Pipeline, key: str, job_id: str) -> str:
    return str(pipeline.ok("GET", f"/publishing/jobs/{job_id}", key)["status"])


def test_schedule_across_connections_with_live_limits_and_see_it_published(
    page: Page, pipeline: Pipeline
) -> None:
    key = tenant(pipeline)
    shop_a, shop_b = sandbox(pipeline, key, "Shop A"), sandbox(pipeline, key, "Shop B")
    ig = instagram(pipeline, key, "Brand IG")
    log_in(page, pipeline, key)

    page.locator(f"#pick-{shop_a}").check()
    page.locator(f"#pick-{ig}").check()
    page.get_by_label("Media URLs").fill(IMAGE)
    expect(page.locator("#previews img")).to_have_attribute("src", IMAGE)
    page.get_by_label("Caption").fill(" ".join(f"#t{i}" for i in range(31)))
    # The counts and the refusal come from POST /publishing/jobs:validate, per platform.
    expect(page.locator("#caption-counts")).to_contain_text("31 / 30 hashtags")
    expect(page.locator("#err-caption")).to_contain_text("at most 30 hashtags on instagram")
    expect(page.get_by_label("Caption")).to_have_attribute("aria-invalid", "true")
    page.locator(f"#pick-{ig}").uncheck()
    expect(page.locator("#err-caption")).to_be_empty()
    page.locator(f"#pick-{shop_b}").check()
    page.get_by_label("Caption").fill("Launch day")
    expect(page.locator("#caption-counts")).to_contain_text("10 / 2200 characters")

    # A time the API refuses: the error sits next to the time field, nothing is scheduled.
    page.locator("#when").fill("2020-01-01T10:00")
    page.locator("#schedule-form").get_by_role("button", name="Schedule").click()
    expect(page.locator("#err-when")).to_contain_text("7 days in the past")
    assert pipeline.ok("GET", "/publishing/jobs", key)["items"] == []

    page.locator("#when").fill("")
    page.locator("#schedule-form").get_by_role("button", name="Schedule").click()
    links = page.locator("#schedule-result a")
    expect(links).to_have_count(2)
    jobs = pipeline.ok("GET", "/publishing/jobs", key)["items"]
    assert {j["connection_id"] for j in jobs} == {shop_a, shop_b}
    assert {j["caption"] for j in jobs} == {"Launch day"}

    links.first.click()
    expect(page.locator("#view-job")).to_be_visible()
    # The job's page refreshes by itself until the post is live.
    expect(page.locator("#job-fields dd").first).to_have_text("PUBLISHED", timeout=SLOW)
    expect(page.locator("#attempts")).to_contain_text("published")
    shoot(page, "job")


def test_reschedule_in_local_time_then_cancel(browser: Browser, pipeline: Pipeline) -> None:
    key = tenant(pipeline)
    conn = sandbox(pipeline, key, "Shop")
    scheduled = job(
        pipeline, key, conn, scheduled_at=(datetime.now(UTC) + timedelta(days=1)).isoformat()
    )
    context = browser.new_context(timezone_id="Europe/Paris")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        log_in(page, pipeline, key, f"job/{scheduled['id']}")
        expect(page.locator("#job-fields")).to_contain_text("SCHEDULED")
        page.get_by_label("New time").fill("2020-01-01T10:00")
        page.get_by_role("button", name="Reschedule").click()
        expect(page.locator("#err-reschedule")).to_contain_text("7 days in the past")

        paris = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=2)).replace(
            hour=9, minute=30, second=0, microsecond=0
        )
        page.get_by_label("New time").fill(paris.strftime("%Y-%m-%dT%H:%M"))
        page.get_by_role("button", name="Reschedule").click()
        expect(page.locator("#notice")).to_contain_text("now publishes at")
        stored = pipeline.ok("GET", f"/publishing/jobs/{scheduled['id']}", key)["scheduled_at"]
        assert stored.endswith("Z")  # stored and answered in UTC
        assert datetime.fromisoformat(stored) == paris.astimezone(UTC)
        expect(page.get_by_label("New time")).to_have_value(paris.strftime("%Y-%m-%dT%H:%M"))

        page.get_by_role("button", name="Cancel").click()
        expect(page.locator("#job-fields dd").first).to_have_text("CANCELLED")
        assert status_of(pipeline, key, scheduled["id"]) == "CANCELLED"
    finally:
        context.close()


def test_reauthorise_a_connection_without_the_token_coming_back(
    page: Page, pipeline: Pipeline
) -> None:
    key = tenant(pipeline)
    ig = instagram(pipeline, key, "Brand IG")
    pipeline.sql("UPDATE connections SET status = 'needs_reauth' WHERE id = %s", ig)
    log_in(page, pipeline, key, "connections")
    row = page.locator(f'tr[data-connection="{ig}"]')
    expect(row).to_contain_text("needs_reauth")
    new_token = "IGfresh-" + uuid.uuid4().hex * 2
    row.get_by_label("New access token for Brand IG").fill(new_token)
    row.get_by_role("button", name="Re-authorise").click()
    expect(page.locator("#notice")).to_contain_text("re-authorised")
    expect(page.locator(f'tr[data-connection="{ig}"]')).to_contain_text("active")
    assert pipeline.ok("GET", f"/publishing/connections/{ig}", key)["status"] == "active"
    assert new_token not in page.content()
    assert new_token not in str(pipeline.ok("GET", f"/publishing/connections/{ig}", key))


@pytest.mark.parametrize("view", ["connections", "schedule", "queue", "dlq"])
def test_opening_the_page_loads_the_connections_once(
    page: Page, pipeline: Pipeline, view: str
) -> None:
    """Loaded a second time, the connections table was rebuilt under a token being typed:
    "Re-authorise" then sent an empty token. Views that do not show them still get the
    connections for their filters."""
    key = tenant(pipeline)
    sandbox(pipeline, key, "Only Shop")
    lists: list[str] = []
    page.on(
        "request",
        lambda r: lists.append(r.url) if "/publishing/connections?" in r.url else None,
    )
    log_in(page, pipeline, key, view)
    expect(page.locator("#job-connection")).to_contain_text("Only Shop")
    expect(page.locator("#dlq-connection")).to_contain_text("Only Shop")
    page.wait_for_load_state("networkidle")
    assert len(lists) == 1, lists


def test_a_sign_in_per_instance_asks_for_the_instance(page: Page, pipeline: Pipeline) -> None:
    log_in(page, pipeline, tenant(pipeline), "connections")
    instance = page.locator("#connect-instance")
    page.locator("#connect-platform").select_option("instagram")
    expect(instance).to_be_hidden()
    page.locator("#connect-platform").select_option("mastodon")
    expect(instance).to_be_visible()
    expect(page.get_by_label("Instance (its https address)")).to_have_attribute("required", "")


def test_redrive_a_dead_letter_after_a_dry_run(page: Page, pipeline: Pipeline) -> None:
    key = tenant(pipeline)
    conn = sandbox(pipeline, key, "Flaky", permanent_rate=1)
    dead = job(pipeline, key, conn)
    wait_for(lambda: status_of(pipeline, key, dead["id"]) == "DEAD_LETTERED", 60)
    pipeline.ok("PATCH", f"/publishing/connections/{conn}", key, {"metadata": {}})
    log_in(page, pipeline, key, "dlq")
    expect(page.locator("#dlq")).to_contain_text(dead["id"])
    page.get_by_label("Reason").select_option("permanent_error")
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator("#redrive-result")).to_contain_text(
        f"would re-queue 1 job(s): {dead['id']}"
    )
    assert status_of(pipeline, key, dead["id"]) == "DEAD_LETTERED"  # a dry run changes nothing
    page.get_by_role("button", name="Redrive").click()
    expect(page.locator("#redrive-result")).to_contain_text("Redrove 1 job(s)")
    wait_for(lambda: status_of(pipeline, key, dead["id"]) == "PUBLISHED", 60)


def test_a_tenant_key_never_sees_another_tenants_rows(page: Page, pipeline: Pipeline) -> None:
    mine, theirs = tenant(pipeline), tenant(pipeline)
    my_job = job(pipeline, mine, sandbox(pipeline, mine, "Mine"), scheduled_at=LATER)
    their_conn = sandbox(pipeline, theirs, "Theirs")
    their_job = job(pipeline, theirs, their_conn, scheduled_at=LATER)
    log_in(page, pipeline, mine, "queue")
    expect(page.locator("#jobs")).to_contain_text(my_job["id"])
    assert their_job["id"] not in page.locator("#jobs").inner_text()
    page.goto(f"{pipeline.base}/#connections")
    expect(page.get_by_label("Name of Mine")).to_have_value("Mine")
    assert page.locator(f'tr[data-connection="{their_conn}"]').count() == 0
    page.goto(f"{pipeline.base}/#job/{their_job['id']}")
    expect(page.locator("#notice")).to_contain_text("no job")
    assert their_job["id"] not in page.locator("#job-fields").inner_text()


def test_hostile_text_in_a_caption_and_a_connection_name_stays_text(
    page: Page, pipeline: Pipeline
) -> None:
    key = tenant(pipeline)
    name = '<img src=x onerror="window.__xss=1">'
    caption = "<script>window.__xss=2</script><b id=bold>bold</b>"
    conn = sandbox(pipeline, key, name)
    hostile = job(pipeline, key, conn, caption=caption, scheduled_at=LATER)
    log_in(page, pipeline, key, "schedule")
    expect(page.locator("#pick-connections")).to_contain_text(name)
    page.goto(f"{pipeline.base}/#job/{hostile['id']}")
    expect(page.locator("#job-fields")).to_contain_text(caption)
    expect(page.locator("#job-fields")).to_contain_text(name)
    page.goto(f"{pipeline.base}/#connections")
    expect(page.locator(f'tr[data-connection="{conn}"] input').first).to_have_value(name)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#bold").count() == 0 and page.locator("img[src='x']").count() == 0


@pytest.mark.parametrize(
    "view", ["schedule", "calendar", "queue", "job", "connections", "health", "dlq"]
)
def test_each_view_passes_axe_and_leaves_a_screenshot(
    page: Page, pipeline: Pipeline, view: str
) -> None:
    key = tenant(pipeline)
    conn = sandbox(pipeline, key, "Shop")
    soon = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    planned = job(pipeline, key, conn, caption="New arrivals #spring", scheduled_at=soon)
    target = f"job/{planned['id']}" if view == "job" else view
    log_in(page, pipeline, key, target)
    if view == "schedule":
        page.locator(f"#pick-{conn}").check()
        page.get_by_label("Caption").fill("Hello @friends #launch")
        expect(page.locator("#caption-counts")).to_contain_text("characters")
    if view == "health":
        expect(page.locator("#health-at")).to_contain_text("updated")
    if view == "calendar":
        expect(page.locator("#calendar")).to_contain_text("Shop")
    assert axe_violations(page) == []
    shoot(page, view)


def tab_to(page: Page, script: str, key: str = "Tab", presses: int = 12) -> None:
    """Press Tab (or Shift+Tab) until `script` (about document.activeElement) is true."""
    for _ in range(presses):
        page.keyboard.press(key)
        if page.evaluate(f"(() => {{ const el = document.activeElement; return {script}; }})()"):
            return
    raise AssertionError(f"Tab never reached {script}")


def test_the_page_works_with_the_keyboard_alone(page: Page, pipeline: Pipeline) -> None:
    key = tenant(pipeline)
    page.goto(pipeline.base + "/")
    tab_to(page, "el.id === 'key'")
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.locator("#view-schedule")).to_be_visible()
    # The view shows at once, and its heading takes focus once its data is in: from there,
    # back up through Forget key and the views' buttons. (`expect` polls from outside the
    # page: `wait_for_function` evaluates a string in it, which the page's CSP refuses.)
    expect(page.locator("#schedule-title")).to_be_focused()
    tab_to(page, "el.dataset.view === 'queue'", "Shift+Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # visible focus
    page.keyboard.press("Enter")
    expect(page.locator("#view-queue")).to_be_visible()
    expect(page.locator("#queue-title")).to_be_focused()  # focus follows
