"""The token keeper against real Postgres and the fake Graph server: a due Instagram Login
token is refreshed before it expires and stored encrypted with its new expiry; two keepers
never refresh one token twice; a refused refresh moves the connection to needs_reauth; a
transient failure is tried again later; tokens of other logins are never refreshed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from bench.graph_fake.model import DAY
from herald.shared.accounts.tokens import TokenKeeper
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra import metrics
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.codec import now_utc
from herald.shared.platforms.registry import platforms
from herald.shared.stores import connections as connections_store
from tests.conftest import Namespace
from tests.fakes.graph_server import DEFAULT_ACCOUNT, INSTAGRAM, FakeGraph

pytestmark = pytest.mark.integration
TOKEN = "IGAA" + "s3cr3t" * 8
NEW_TOKEN = "IGAA" + "n3wt0k3n" * 6


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph() as graph:
        graph.add_account(DEFAULT_ACCOUNT, TOKEN, login=INSTAGRAM)
        graph.set_token_life(TOKEN, expires_in=60 * DAY, age=50 * DAY)
        yield graph


@pytest.fixture
async def keeper_rt(ns: Namespace, fake: FakeGraph) -> AsyncIterator[Runtime]:
    rt = Runtime.build(ns.settings(instagram_login_graph_url=fake.instagram_base_url))
    await rt.open()
    try:
        yield rt
    finally:
        await rt.close()


async def connect(rt: Runtime, login: str = INSTAGRAM) -> str:
    made = await rt.connections().create(
        ADMIN,
        {
            "platform": "instagram",
            "name": "ig",
            "access_token": TOKEN,
            "metadata": {"instagramBusinessAccountId": DEFAULT_ACCOUNT, "login": login},
        },
    )
    return str(made["id"])


async def make_due(rt: Runtime, cid: str) -> None:
    await rt.db.execute(
        "UPDATE connections SET token_refresh_at = now() - interval '1 s' WHERE id = %s", (cid,)
    )


async def token_of(rt: Runtime, cid: str) -> str:
    connection = await rt.connections().load_for_publish(cid)
    assert connection is not None
    return connection.access_token


def counted(platform: str, result: str) -> float:
    return metrics.TOKEN_REFRESHES.labels(platform, result)._value.get()  # type: ignore[no-any-return]


async def put_off_as_the_round_goes_on(rt: Runtime, fake: FakeGraph, broken: str, good: str) -> str:
    """One round with `broken` due first and `good` due after it: `good` is refreshed,
    `broken` stays active, put off 15 to 30 minutes and counted failed; its kept reason."""
    await make_due(rt, good)
    before = counted("instagram", "failed")
    assert await TokenKeeper(rt.connections(), rt.platform_env()).refresh_due() == 1
    [(old, new)] = fake.refreshed
    assert old == TOKEN and await token_of(rt, good) == new
    shown: dict[str, Any] = await rt.connections().get(ADMIN, broken)
    assert shown["status"] == "active"
    [row] = await rt.db.fetch("SELECT token_refresh_at FROM connections WHERE id = %s", (broken,))
    assert timedelta(minutes=14) < row["token_refresh_at"] - now_utc() <= timedelta(minutes=31)
    assert counted("instagram", "failed") == before + 1
    return str(shown["token"]["refresh_error"])


async def test_a_due_token_is_refreshed_and_stored_with_its_new_expiry(
    keeper_rt: Runtime, fake: FakeGraph
) -> None:
    rt = keeper_rt
    cid = await connect(rt)
    shown = await rt.connections().get(ADMIN, cid)
    # No expiry known for a pasted token: the first refresh comes a day after it was stored.
    first = shown["token"]["refresh_at"]
    assert first is not None and shown["token"]["expires_at"] is None
    keeper = TokenKeeper(rt.connections(), rt.platform_env())
    assert await keeper.refresh_due() == 0  # not due yet
    await make_due(rt, cid)
    before = counted("instagram", "refreshed")
    assert await keeper.refresh_due() == 1
    [(old, new)] = fake.refreshed
    assert old == TOKEN and await token_of(rt, cid) == new
    [row] = await rt.db.fetch(
        "SELECT token_ciphertext, token_expires_at, token_refresh_at, token_refresh_error"
        " FROM connections WHERE id = %s",
        (cid,),
    )
    assert new.encode() not in bytes(row["token_ciphertext"])  # encrypted at rest
    expires = row["token_expires_at"]
    assert abs(expires - (now_utc() + timedelta(seconds=5_183_944))) < timedelta(minutes=5)
    # Refreshed again 10 to 15 days before the new expiry (jitter), never twice at once.
    assert expires - timedelta(days=15) <= row["token_refresh_at"] <= expires - timedelta(days=10)
    assert row["token_refresh_error"] is None
    assert counted("instagram", "refreshed") == before + 1
    shown = await rt.connections().get(ADMIN, cid)
    assert shown["token"]["expires_at"] is not None and new not in str(shown)


async def test_two_keepers_refresh_one_token_once(keeper_rt: Runtime, fake: FakeGraph) -> None:
    rt = keeper_rt
    cid = await connect(rt)
    await make_due(rt, cid)
    fake.delay_next("refresh_access_token", 0.5)  # the first keeper is still at it
    keepers = [TokenKeeper(rt.connections(), rt.platform_env()) for _ in range(2)]
    results = await asyncio.gather(*(k.refresh_one(cid) for k in keepers))
    assert sorted(results, key=str) == sorted([True, None], key=str)
    assert len(fake.calls("refresh_access_token")) == 1
    assert await keepers[1].refresh_one(cid) is None  # no longer due


async def test_a_refused_refresh_needs_reauth_and_a_transient_one_is_retried_later(
    keeper_rt: Runtime, fake: FakeGraph
) -> None:
    rt = keeper_rt
    keeper = TokenKeeper(rt.connections(), rt.platform_env())
    flaky = await connect(rt)
    await make_due(rt, flaky)
    fake.fail_next("refresh_access_token", code=1)
    assert await keeper.refresh_one(flaky) is False
    shown: dict[str, Any] = await rt.connections().get(ADMIN, flaky)
    assert shown["status"] == "active" and await token_of(rt, flaky) == TOKEN
    later = shown["token"]["refresh_at"]
    assert later is not None and "code 1" in shown["token"]["refresh_error"]
    [row] = await rt.db.fetch("SELECT token_refresh_at FROM connections WHERE id = %s", (flaky,))
    assert timedelta(minutes=14) < row["token_refresh_at"] - now_utc() <= timedelta(minutes=31)

    dead = await connect(rt)
    await make_due(rt, dead)
    fake.advance(11 * DAY)  # the token has expired
    before = counted("instagram", "auth_lost")
    assert await keeper.refresh_one(dead) is False
    shown = await rt.connections().get(ADMIN, dead)
    assert shown["status"] == "needs_reauth" and shown["token"]["refresh_at"] is None
    assert "190" in shown["token"]["refresh_error"] and TOKEN not in str(shown)
    assert counted("instagram", "auth_lost") == before + 1


async def test_facebook_login_tokens_are_not_refreshed(keeper_rt: Runtime, fake: FakeGraph) -> None:
    rt = keeper_rt
    cid = await connect(rt, login="facebook")
    assert (await rt.connections().get(ADMIN, cid))["token"]["refresh_at"] is None
    await make_due(rt, cid)  # even if it were due: its platform says it does not refresh
    assert await TokenKeeper(rt.connections(), rt.platform_env()).refresh_due() == 0
    assert fake.calls("refresh_access_token") == []
    [row] = await rt.db.fetch("SELECT token_refresh_at FROM connections WHERE id = %s", (cid,))
    assert row["token_refresh_at"] is None


async def test_a_token_that_does_not_decrypt_is_put_off_and_the_round_goes_on(
    keeper_rt: Runtime, fake: FakeGraph
) -> None:
    """One row the keeper cannot decrypt (here: the ciphertext of another connection, which
    is bound to that one's id) comes first in every round; it must not stop the refreshes of
    the connections due after it."""
    rt = keeper_rt
    broken, good = await connect(rt), await connect(rt)
    await rt.db.execute(
        "UPDATE connections SET token_ciphertext ="
        " (SELECT token_ciphertext FROM connections WHERE id = %s),"
        " token_refresh_at = now() - interval '1 min' WHERE id = %s",
        (good, broken),
    )
    error = await put_off_as_the_round_goes_on(rt, fake, broken, good)
    assert "decrypt" in error


async def test_a_plugin_that_raises_on_one_token_does_not_stop_the_round(
    keeper_rt: Runtime, fake: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin's `refreshes` that raises on one connection (a bug meeting one row's
    metadata) puts that row off, with the reason scrubbed of its token, and refreshes the
    connections due after it in the same round."""
    rt = keeper_rt
    plugin = platforms()["instagram"]
    decides = plugin.refreshes

    def buggy(metadata: Mapping[str, Any], token: str) -> bool:
        if metadata.get("tag") == "bug":
            raise KeyError(f"no refresh rule for {token}")
        return decides(metadata, token)

    monkeypatch.setattr(plugin, "refreshes", buggy)
    broken, good = await connect(rt), await connect(rt)
    await rt.db.execute(
        'UPDATE connections SET metadata = metadata || \'{"tag": "bug"}\','
        " token_refresh_at = now() - interval '1 min' WHERE id = %s",
        (broken,),
    )
    error = await put_off_as_the_round_goes_on(rt, fake, broken, good)
    assert error.startswith("KeyError") and TOKEN not in error


async def test_metadata_that_changes_the_login_changes_whether_the_token_is_refreshed(
    keeper_rt: Runtime, fake: FakeGraph
) -> None:
    """A connection stored as a Facebook Login one, then told its token is an Instagram
    Login token, is refreshed from then on (else it would expire unrefreshed); told the
    reverse, it no longer is. A change that keeps the decision keeps the schedule."""
    rt = keeper_rt
    cid = await connect(rt, login="facebook")
    stored = await rt.connections().get(ADMIN, cid)
    assert stored["token"]["refresh_at"] is None
    account = {"instagramBusinessAccountId": DEFAULT_ACCOUNT}
    told = await rt.connections().patch(ADMIN, cid, {"metadata": account | {"login": INSTAGRAM}})
    issued = datetime.fromisoformat(stored["token"]["issued_at"])
    first = datetime.fromisoformat(told["token"]["refresh_at"])
    assert issued + timedelta(days=1) <= first <= issued + timedelta(days=1, hours=1)
    assert told["token"]["issued_at"] == stored["token"]["issued_at"]
    assert await token_of(rt, cid) == TOKEN
    renamed = await rt.connections().patch(
        ADMIN, cid, {"name": "renamed", "metadata": account | {"login": INSTAGRAM}}
    )
    assert renamed["token"]["refresh_at"] == told["token"]["refresh_at"]
    back = await rt.connections().patch(ADMIN, cid, {"metadata": account | {"login": "facebook"}})
    assert back["token"]["refresh_at"] is None


async def test_a_token_pasted_during_a_metadata_change_keeps_its_own_life(
    keeper_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A metadata change works out the kept token's life from the token it read; a token
    pasted between that read and the change's write keeps the life it was stored with,
    not the old token's issue time and refresh."""
    rt = keeper_rt
    cid = await connect(rt, login="facebook")
    stored = await rt.connections().get(ADMIN, cid)
    read = connections_store.token
    pasted: list[dict[str, Any]] = []

    async def read_then_paste(db: Any, connection_id: Any) -> Any:
        blob = await read(db, connection_id)
        if not pasted:
            pasted.append(await rt.connections().patch(ADMIN, cid, {"access_token": NEW_TOKEN}))
        return blob

    monkeypatch.setattr(connections_store, "token", read_then_paste)
    account = {"instagramBusinessAccountId": DEFAULT_ACCOUNT}
    told = await rt.connections().patch(ADMIN, cid, {"metadata": account | {"login": INSTAGRAM}})
    [paste] = pasted
    assert paste["token"]["issued_at"] > stored["token"]["issued_at"]
    assert told["token"] == paste["token"] and told["metadata"]["login"] == INSTAGRAM
    assert await token_of(rt, cid) == NEW_TOKEN
