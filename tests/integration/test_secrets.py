"""Tokens at rest on the real stack: the connection id is bound in, tokens written before
the key ring are published and then rewritten by `herald secrets rekey`, and a token
changed during a rekey is neither lost nor encrypted twice."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from herald.services.publisher.main import serve
from herald.services.publisher.platforms.sandbox import SandboxPublisher
from herald.shared.accounts.connections import ConnectionService
from herald.shared.accounts.oauth_apps import HostApps
from herald.shared.domain.outcomes import PublishOutcome
from herald.shared.domain.requests import Connection, PublishRequest
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.crypto import DecryptError, TokenCipher, new_secret_key
from herald.shared.infra.db.migrate import migrate
from herald.shared.infra.db.pool import connect_sync
from herald.shared.infra.names import RESULT
from herald.shared.infra.paths import ROOT
from herald.shared.infra.runtime import Runtime
from herald.shared.platforms.contract import AttemptContext
from herald.shared.platforms.registry import platforms
from herald.shared.stores import oauth_apps
from tests.conftest import Namespace
from tests.integration.publisher_support import TopicReader, dispatch, produce, schedule
from tests.support.helpers import older_schema
from tests.support.legacy_tokens import legacy_encrypt

pytestmark = pytest.mark.integration
TOKENS = ["EAAG-legacy-token-" + uuid.uuid4().hex * 2 for _ in range(2)]


@dataclass
class Recorder:
    """The sandbox, remembering the token each call was given."""

    inner: SandboxPublisher
    name: str = "sandbox"
    posts_without_container: bool = True
    tokens: list[str] = field(default_factory=list)

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        self.tokens.append(connection.access_token)
        return await self.inner.publish(request, connection, ctx)

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        return await self.inner.confirm(request, connection, ctx)

    async def close(self) -> None:
        await self.inner.close()


@asynccontextmanager
async def publisher(rt: Runtime) -> AsyncIterator[tuple[Recorder, TopicReader]]:
    recorder = Recorder(SandboxPublisher(rt.db))
    stopping = asyncio.Event()
    task = asyncio.create_task(serve(rt, stopping, registry={"sandbox": recorder}, worker="w1"))
    results = TopicReader(rt.settings.kafka_bootstrap, rt.names.topic(RESULT))
    try:
        yield recorder, results
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=30)
        results.close()


async def publish_one(rt: Runtime, connection_id: str) -> tuple[dict[str, Any], list[str]]:
    """Schedule a job on the connection and run it through the publisher: its result, and
    the tokens the platform was given."""
    async with publisher(rt) as (recorder, results):
        produce(
            rt.producer,
            rt.names.topic("publish.request"),
            await dispatch(rt, await schedule(rt, [connection_id])),
        )
        for _ in range(300):
            if await results.poll():
                return results.values[0], recorder.tokens
            await asyncio.sleep(0.1)
    raise AssertionError("no result")


def herald(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "herald", *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )


async def test_a_token_copied_to_another_connection_does_not_decrypt(rt: Runtime) -> None:
    store = rt.connections()
    body = {"platform": "sandbox", "name": "s", "access_token": TOKENS[0]}
    source, target = [(await store.create(ADMIN, body))["id"] for _ in range(2)]
    await rt.db.execute(
        "UPDATE connections SET token_ciphertext ="
        " (SELECT token_ciphertext FROM connections WHERE id = %s) WHERE id = %s",
        (source, target),
    )
    with pytest.raises(DecryptError):
        await store.load_for_publish(target)
    result, tokens = await publish_one(rt, target)
    assert result["outcome"] == "permanent_error" and tokens == []
    assert "cannot be decrypted" in result["error_message"]


async def test_tokens_written_before_the_key_ring_publish_and_are_rekeyed(
    ns: Namespace, tmp_path: Path
) -> None:
    schema = ns.db_schema + "_ring"
    url = ns.base.database_url
    local_key = ns.settings().secret_key_ring()  # what the older Herald stretched with HKDF
    ids = [str(uuid.uuid4()) for _ in range(3)]
    with older_schema(url, schema, tmp_path, last=5):
        with connect_sync(url, schema) as conn:  # rows as the older Herald wrote them
            conn.execute("INSERT INTO tenants (id) VALUES ('acme')")
            for cid, token in zip(ids, [*TOKENS, None], strict=True):
                conn.execute(
                    "INSERT INTO connections (id, tenant_id, platform, name, metadata,"
                    " token_ciphertext) VALUES (%s, 'acme', 'sandbox', 'old', %s, %s)",
                    (cid, Jsonb({}), legacy_encrypt(local_key, token) if token else None),
                )
        migrate(url, schema)
        rt = Runtime.build(ns.settings(db_schema=schema))
        await rt.open()
        try:
            store = rt.connections()
            for cid, token in zip(ids, [*TOKENS, ""], strict=True):
                loaded = await store.load_for_publish(cid)
                assert loaded is not None and loaded.access_token == token
            result, given = await publish_one(rt, ids[0])
            assert result["outcome"] == "published" and given == [TOKENS[0]]

            env = ns.env(db_schema=schema)
            first = herald(env, "secrets", "rekey")
            assert first.returncode == 0, first.stderr
            assert orjson.loads(first.stdout) == {"count": 2}
            rows = await rt.db.fetch(
                "SELECT id::text, token_ciphertext FROM connections"
                " WHERE token_ciphertext IS NOT NULL"
            )
            assert {r["id"] for r in rows} == set(ids[:2])
            assert all(rt.cipher.is_current(bytes(r["token_ciphertext"])) for r in rows)
            for cid, token in zip(ids, TOKENS, strict=False):
                loaded = await store.load_for_publish(cid)
                assert loaded is not None and loaded.access_token == token
            again = herald(env, "secrets", "rekey")
            assert again.returncode == 0 and orjson.loads(again.stdout) == {"count": 0}
            for out in (first, again):
                assert all(t not in out.stdout + out.stderr for t in TOKENS)
        finally:
            await rt.close()


async def test_rekey_to_a_new_key_loses_no_token_changed_meanwhile(
    ns: Namespace, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key = rt.settings.secret_key_ring()
    ids = []
    for token in (*TOKENS, "sbx-third-token"):
        body = {"platform": "sandbox", "name": "s", "access_token": token}
        ids.append((await rt.connections().create(ADMIN, body))["id"])
    new_key = new_secret_key()
    rotated = Runtime.build(ns.settings(secret_key=SecretStr(f"k2:{new_key},{old_key}")))
    await rotated.open()
    try:
        cipher = rotated.cipher
        decrypt = cipher.decrypt
        changed = "EAAG-changed-during-rekey-" + uuid.uuid4().hex

        def decrypt_while_the_api_changes_it(blob: bytes, connection_id: object) -> str:
            plain = decrypt(blob, connection_id)
            if str(connection_id) == ids[1]:  # a PATCH with a new token lands now
                with connect_sync(ns.base.database_url, ns.db_schema) as conn:
                    conn.execute(
                        "UPDATE connections SET token_ciphertext = %s WHERE id = %s",
                        (cipher.encrypt(changed, connection_id), connection_id),
                    )
            return plain

        monkeypatch.setattr(cipher, "decrypt", decrypt_while_the_api_changes_it)
        count, failed = await rotated.connections().rekey(batch=2)
        monkeypatch.undo()
        assert (count, failed) == (2, [])
        # The old key can go: every token reads with the new one alone.
        store = ConnectionService(rotated.db, TokenCipher(f"k2:{new_key}"))
        found = [await store.load_for_publish(cid) for cid in ids]
        assert [c.access_token if c else None for c in found] == [
            TOKENS[0],
            changed,
            "sbx-third-token",
        ]
        rows = await rotated.db.fetch("SELECT token_ciphertext FROM connections")
        assert all(cipher.key_id(bytes(r["token_ciphertext"])) == "k2" for r in rows)
        assert await rotated.connections().rekey() == (0, [])
    finally:
        await rotated.close()


async def test_rekey_re_encrypts_the_registered_apps_client_secrets(
    ns: Namespace, rt: Runtime
) -> None:
    """A Mastodon instance's app secret, stored under the old key, reads with the new key
    alone after `herald secrets rekey`; the secret appears in no output."""
    old_key = rt.settings.secret_key_ring()
    secret = "mastodon-client-secret-" + uuid.uuid4().hex
    app_id = str(uuid.uuid4())
    await oauth_apps.insert(
        rt.db,
        app_id=app_id,
        platform="mastodon",
        host="https://social.example.org",
        redirect_uri="https://herald.example.com/oauth/callback",
        client_id="client-1",
        ciphertext=rt.cipher.encrypt(secret, app_id),
    )
    new_key = new_secret_key()
    env = ns.env() | {"HERALD_SECRET_KEY": f"k2:{new_key},{old_key}"}
    first = herald(env, "secrets", "rekey")
    assert first.returncode == 0, first.stderr
    assert orjson.loads(first.stdout) == {"count": 1}
    assert secret not in first.stdout + first.stderr
    plugin = platforms()["mastodon"]
    apps = HostApps(rt.db, TokenCipher(f"k2:{new_key}"), rt.platform_env())  # old key gone
    stored = await apps.stored(
        plugin, "https://social.example.org", "https://herald.example.com/oauth/callback"
    )
    assert stored is not None and (stored.client_id, stored.client_secret) == ("client-1", secret)
    again = herald(env, "secrets", "rekey")
    assert again.returncode == 0 and orjson.loads(again.stdout) == {"count": 0}
