"""The Instagram throttle is shared by every publisher copy (Redis) and kept per Instagram
account: the wait a result reports, the pause every copy keeps and Meta's estimate agree."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from herald.services.publisher.platforms.instagram import InstagramPublisher
from herald.services.publisher.platforms.meta.throttle import Throttle
from herald.shared.domain.outcomes import Outcome
from herald.shared.domain.requests import Connection
from herald.shared.infra.runtime import Runtime
from tests.fakes.graph_server import DEFAULT_ACCOUNT, DEFAULT_TOKEN, FakeGraph
from tests.unit.conftest import instagram
from tests.unit.test_instagram_publisher import IMG, Ctx, request

pytestmark = pytest.mark.integration
OTHER_ACCOUNT, OTHER_TOKEN = "17841400000000002", "EAAGotherACCOUNTtoken"


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def connection(cid: str, account: str = DEFAULT_ACCOUNT, token: str = DEFAULT_TOKEN) -> Connection:
    metadata = {"instagramBusinessAccountId": account}
    return Connection(cid, "t", "instagram", cid, "active", metadata, token)


@pytest.fixture
async def copies(rt: Runtime) -> AsyncIterator[tuple[FakeGraph, Clock, list[InstagramPublisher]]]:
    clock = Clock()
    async with FakeGraph() as fake:
        fake.add_account(OTHER_ACCOUNT, OTHER_TOKEN)
        # Two publisher copies: each its own Throttle object, one Redis between them.
        pubs = [instagram(fake, Throttle(rt.redis, rt.names, clock=clock)) for _ in range(2)]
        yield fake, clock, pubs
        for pub in pubs:
            await pub.close()


async def test_a_throttle_pauses_the_account_in_every_copy_for_exactly_its_estimate(
    copies: tuple[FakeGraph, Clock, list[InstagramPublisher]],
) -> None:
    fake, clock, (first, second) = copies
    fake.fail_next("create_container", code=80002, regain_minutes=1)
    out = await first.publish(request([IMG]), connection("c1"), Ctx(fake).context)
    assert out.outcome is Outcome.RATE_LIMITED and out.retry_after_seconds == 60

    calls = len(fake.requests)
    # Another copy, another connection to the same Instagram account: no call, the same wait.
    again = await second.publish(request([IMG]), connection("c2"), Ctx(fake).context)
    assert again.outcome is Outcome.RATE_LIMITED and len(fake.requests) == calls
    assert again.retry_after_seconds is not None and 0 < again.retry_after_seconds <= 60
    # Another account is not paused.
    other = connection("c3", OTHER_ACCOUNT, OTHER_TOKEN)
    elsewhere = await second.publish(request([IMG]), other, Ctx(fake).context)
    assert elsewhere.outcome is Outcome.PUBLISHED

    clock.offset += 60  # the retry, as due: 60 s after the answer
    retried = await second.publish(request([IMG]), connection("c2"), Ctx(fake).context)
    assert retried.outcome is Outcome.PUBLISHED  # not refused by a pause still running


async def test_usage_headers_near_the_limit_pause_every_copy(
    copies: tuple[FakeGraph, Clock, list[InstagramPublisher]],
) -> None:
    fake, _, (first, second) = copies
    fake.set_usage(buc=95)
    assert (await first.publish(request([IMG]), connection("c1"), Ctx(fake).context)).outcome is (
        Outcome.PUBLISHED
    )
    calls = len(fake.requests)
    out = await second.publish(request([IMG]), connection("c1"), Ctx(fake).context)
    assert out.outcome is Outcome.RATE_LIMITED and len(fake.requests) == calls
