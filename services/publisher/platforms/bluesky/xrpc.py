"""XRPC calls for one Bluesky connection, on a session kept in the publisher's memory.

The app password is exchanged for a session (``createSession``) once per publisher process
and app password: the PDS allows few logins a day, so every later call reuses the session's
access JWT, an expired one (400 ExpiredToken) is renewed with ``refreshSession`` and the call
sent again (it was refused before any write), and only a refused refresh logs in again. The
JWTs are never written anywhere: a restarted publisher logs in once more.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from herald.platforms import Connection, Outcome
from herald.services.publisher.platforms.bluesky.plugin import pds_url
from herald.services.publisher.platforms.rest.calls import Answer, Client, Failed, wait_seconds

AUTH_ERRORS = frozenset(
    {
        "AuthenticationRequired",
        "AuthMissing",
        "InvalidToken",
        "ExpiredToken",
        "AccountTakedown",
        "AccountDeactivated",
        "AuthFactorTokenRequired",
    }
)


def failure(nsid: str, answer: Answer) -> Failed:
    """What an answer other than 200 means."""
    name, status = answer.field("error"), answer.status
    what = f"{nsid}: HTTP {status} {name or ''} {answer.field('message')}".rstrip()
    if status == 429 or name == "RateLimitExceeded":
        return Failed(Outcome.RATE_LIMITED, what, answer, wait_seconds(answer.headers))
    if status == 401 or name in AUTH_ERRORS:
        return Failed(Outcome.AUTH_ERROR, what, answer)
    if status >= 500 or status == 408:
        return Failed(Outcome.RETRYABLE_ERROR, what, answer)
    return Failed(Outcome.PERMANENT_ERROR, what, answer)


@dataclass
class Session:
    access: str
    refresh: str
    did: str
    pds: str = ""  # the account's own PDS, from the session's DID document


class Xrpc:
    def __init__(
        self, client: Client, sessions: dict[str, Session], connection: Connection, timeout: float
    ) -> None:
        self.client, self.sessions, self.timeout = client, sessions, timeout
        self.base = pds_url(connection.metadata) + "/xrpc/"
        self.identifier = str(connection.metadata.get("identifier") or "")
        self.password = connection.access_token
        secret = f"{self.base}|{self.identifier}|{connection.access_token}".encode()
        self.key = f"{connection.id}:{hashlib.sha256(secret).hexdigest()}"

    async def did(self) -> str:
        return (await self._session()).did

    async def session(self) -> Session:
        return await self._session()

    async def call(self, method: str, nsid: str, **kwargs: Any) -> Answer:
        """An authenticated call: 200 answered, anything else raises Failed (NoAnswer
        passes through: the caller knows whether the call may have taken effect)."""
        session = await self._session()
        answer = await self._send(method, nsid, session.access, kwargs)
        if answer.status == 400 and answer.field("error") == "ExpiredToken":
            session = await self._renew(session)
            answer = await self._send(method, nsid, session.access, kwargs)
        if answer.status != 200:
            raise failure(nsid, answer)
        return answer

    async def _send(self, method: str, nsid: str, token: str, kwargs: dict[str, Any]) -> Answer:
        return await self.client.call(
            method, self.base + nsid, timeout=self.timeout, token=token, **kwargs
        )

    async def _session(self) -> Session:
        session = self.sessions.get(self.key)
        return session if session is not None else await self._login()

    async def _login(self) -> Session:
        body = {"identifier": self.identifier, "password": self.password}
        answer = await self.client.call(
            "POST", self.base + "com.atproto.server.createSession", timeout=self.timeout, json=body
        )
        if answer.status != 200:
            raise failure("createSession", answer)
        return self._keep(answer)

    async def _renew(self, old: Session) -> Session:
        answer = await self._send("POST", "com.atproto.server.refreshSession", old.refresh, {})
        if answer.status == 200:
            return self._keep(answer)
        if answer.status == 429:
            raise failure("refreshSession", answer)
        self.sessions.pop(self.key, None)
        return await self._login()

    def _keep(self, answer: Answer) -> Session:
        session = Session(
            answer.field("accessJwt"),
            answer.field("refreshJwt"),
            answer.field("did"),
            _pds_endpoint(answer.body.get("didDoc") if isinstance(answer.body, dict) else None),
        )
        if not (session.access and session.refresh and session.did):
            raise Failed(Outcome.RETRYABLE_ERROR, "session answered without its JWTs or DID")
        self.sessions[self.key] = session
        return session


def _pds_endpoint(doc: Any) -> str:
    """The ``#atproto_pds`` service endpoint of a DID document ('' when absent)."""
    services = doc.get("service") if isinstance(doc, dict) else None
    for service in services if isinstance(services, list) else []:
        if isinstance(service, dict) and service.get("id") in ("#atproto_pds", "atproto_pds"):
            endpoint = service.get("serviceEndpoint")
            return endpoint if isinstance(endpoint, str) else ""
    return ""
