"""A strict fake of a Bluesky PDS (AT Protocol XRPC) on loopback, from the public lexicons and
the reference PDS's behaviour.

    async with FakePDS() as pds:
        pds.base_url, pds.handle, pds.did, pds.app_password
        pds.expire_sessions()                  # every access JWT answers 400 ExpiredToken
        pds.fail_next("createRecord", 429, {...}, headers={...}, marker="[rl]")
        pds.drop_next("createRecord", commit=True, marker="[drop]")
        pds.posts_with("[job-3]")              # the repo's posts whose text holds it

Calls: ``createSession`` (identifier + app password; 401 AuthenticationRequired; 30 per
5 min per account, then 429), ``refreshSession`` (Bearer refresh JWT: a new pair; the old
refresh JWT keeps working 2 h; an unknown one is 400 ExpiredToken "Token has been revoked"),
``uploadBlob`` (raw body; over 5 MiB is 413 PayloadTooLarge), ``getServiceAuth`` (a token
for ``aud`` and ``lxm``: ``exp`` at most an hour ahead, 60 s without ``lxm``, else 400
BadExpiration; ``expire_service_tokens()`` ages them), ``createRecord``
(``app.bsky.feed.post`` validated: text at most 300 graphemes and 3,000 UTF-8 bytes,
``createdAt`` with a timezone, facets on byte offsets inside the text and not overlapping,
images at most 4 with ``alt``, each blob uploaded, an image and at most 1,000,000 bytes
(400 BlobTooLarge), or one ``app.bsky.embed.video`` of a ``video/mp4`` blob of at most
100,000,000 bytes (``bluesky_video.py`` stores it); a client-chosen ``rkey`` must be a
TID; a taken rkey is 500 InternalServerError, as the reference PDS answers) and
``getRecord`` (400 RecordNotFound).
Access JWTs: expired 400 ExpiredToken, unknown 400 InvalidToken, none 401 AuthMissing.
Every write answers ``RateLimit-Limit/Remaining/Reset/Policy`` (5,000 points per hour,
a create costs 3); a 429 adds ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.fakes.http_fake import HttpFake, Refusal

POST = "app.bsky.feed.post"
INVALID = "Invalid app.bsky.feed.post record: "
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
ACCESS_LIFE, REFRESH_GRACE = 7200.0, 7200.0
SESSION_LIMIT, SESSION_WINDOW = 30, 300.0
BLOB_CAP, IMAGE_MAX, VIDEO_MAX = 5 * 1024 * 1024, 1_000_000, 100_000_000
WRITE_POINTS, CREATE_COST = 5000, 3
CALLS = (
    "createSession",
    "refreshSession",
    "uploadBlob",
    "getServiceAuth",
    "createRecord",
    "getRecord",
    "unknown",
)


def xrpc_error(status: int, name: str, message: str, **headers: str) -> Refusal:
    return Refusal(status, {"error": name, "message": message}, dict(headers))


def graphemes(text: str) -> int:
    """The fake's grapheme count (the plugin has its own: they must agree on the tests)."""
    from herald.services.publisher.platforms.bluesky.text import grapheme_count

    return grapheme_count(text)


@dataclass
class Session:
    kind: str  # "access" | "refresh"
    expires_at: float


@dataclass
class ServiceToken:
    iss: str  # the account's DID
    aud: str
    lxm: str | None
    expires_at: float


class FakePDS(HttpFake):
    CALLS = CALLS

    def __init__(self, *, handle: str = "herald.test") -> None:
        super().__init__()
        self.handle = handle
        self.did = "did:plc:" + secrets.token_hex(12)[:24]
        self.app_password = "abcd-efgh-ijkl-mnop"
        self.jwts: dict[str, Session] = {}
        self.records: dict[str, dict[str, Any]] = {}  # rkey → {uri, cid, value}
        self.blobs: dict[str, tuple[str, int]] = {}  # cid → (mime, size)
        self.service_tokens: dict[str, ServiceToken] = {}
        self.sessions_created: list[float] = []
        self.write_points = 0

    # ---- for tests --------------------------------------------------------------------

    def expire_sessions(self) -> None:
        for jwt in self.jwts.values():
            if jwt.kind == "access":
                jwt.expires_at = self.now() - 1

    def expire_service_tokens(self) -> None:
        for token in self.service_tokens.values():
            token.expires_at = self.now() - 1

    def posts_with(self, marker: str) -> list[dict[str, Any]]:
        return [r for r in self.records.values() if marker in r["value"].get("text", "")]

    # ---- HTTP -------------------------------------------------------------------------

    def route(self, method: str, path: str) -> str:
        nsid = path.removeprefix("/xrpc/")
        name = nsid.rsplit(".", 1)[-1]
        known = {
            "com.atproto.server.createSession": "POST",
            "com.atproto.server.refreshSession": "POST",
            "com.atproto.repo.uploadBlob": "POST",
            "com.atproto.server.getServiceAuth": "GET",
            "com.atproto.repo.createRecord": "POST",
            "com.atproto.repo.getRecord": "GET",
        }
        return name if known.get(nsid) == method else "unknown"

    async def read_body(self, call: str, request: web.Request) -> Any:
        if call == "uploadBlob":
            return {"data": await request.read(), "mime": request.content_type}
        if call == "refreshSession":
            return {}
        return await super().read_body(call, request)

    def bad_request(self, message: str) -> Refusal:
        return xrpc_error(400, "InvalidRequest", message)

    def text_of(self, call: str, body: Any) -> str:
        if call == "createRecord" and isinstance(body, dict):
            record = body.get("record")
            return str(record.get("text", "")) if isinstance(record, dict) else ""
        return ""

    def headers_for(self, call: str, request: web.Request) -> dict[str, str]:
        if call not in ("createRecord", "uploadBlob"):
            return {}
        reset = int(self.now()) + 3600
        return {
            "RateLimit-Limit": str(WRITE_POINTS),
            "RateLimit-Remaining": str(max(WRITE_POINTS - self.write_points, 0)),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{WRITE_POINTS};w=3600",
        }

    def act(self, call: str, request: web.Request, body: Any) -> Any:
        if call == "unknown":
            raise xrpc_error(501, "MethodNotImplemented", "Method Not Implemented")
        if call == "createSession":
            return self._create_session(body)
        if call == "refreshSession":
            return self._refresh(request)
        if call == "getRecord":
            return self._get_record(body)
        self._access(request)
        if call == "uploadBlob":
            return self._upload(body)
        if call == "getServiceAuth":
            return self._service_auth(body)
        return self._create_record(body)

    # ---- sessions ---------------------------------------------------------------------

    def _issue(self) -> dict[str, Any]:
        access, refresh = f"ey.{secrets.token_urlsafe(40)}", f"ey.{secrets.token_urlsafe(40)}"
        self.jwts[access] = Session("access", self.now() + ACCESS_LIFE)
        self.jwts[refresh] = Session("refresh", self.now() + 90 * 86400)
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": self.handle,
            "did": self.did,
            "didDoc": {
                "id": self.did,
                "service": [
                    {
                        "id": "#atproto_pds",
                        "type": "AtprotoPersonalDataServer",
                        "serviceEndpoint": self.base_url,
                    }
                ],
            },
            "active": True,
        }

    def _create_session(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("identifier"), str):
            raise self.bad_request('Input must have the property "identifier"')
        if not isinstance(body.get("password"), str):
            raise self.bad_request('Input must have the property "password"')
        recent = [t for t in self.sessions_created if t > self.now() - SESSION_WINDOW]
        if len(recent) >= SESSION_LIMIT:
            reset = str(int(recent[0] + SESSION_WINDOW))
            raise xrpc_error(
                429,
                "RateLimitExceeded",
                "Rate Limit Exceeded",
                **{
                    "RateLimit-Reset": reset,
                    "Retry-After": str(int(recent[0] + SESSION_WINDOW - self.now()) + 1),
                },
            )
        self.sessions_created.append(self.now())
        who = body["identifier"].lower()
        if who not in (self.handle, self.did) or body["password"] != self.app_password:
            raise xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        return self._issue()

    def _bearer(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise xrpc_error(401, "AuthMissing", "Authentication Required")
        return auth[7:].strip()

    def _access(self, request: web.Request) -> None:
        jwt = self.jwts.get(self._bearer(request))
        if jwt is None or jwt.kind != "access":
            raise xrpc_error(400, "InvalidToken", "Token could not be verified")
        if jwt.expires_at <= self.now():
            raise xrpc_error(400, "ExpiredToken", "Token has expired")

    def _refresh(self, request: web.Request) -> dict[str, Any]:
        token = self._bearer(request)
        jwt = self.jwts.get(token)
        if jwt is None or jwt.kind != "refresh" or jwt.expires_at <= self.now():
            raise xrpc_error(400, "ExpiredToken", "Token has been revoked")
        jwt.expires_at = min(jwt.expires_at, self.now() + REFRESH_GRACE)
        return self._issue()

    def _service_auth(self, query: dict[str, str]) -> dict[str, str]:
        aud, lxm = query.get("aud"), query.get("lxm")
        if not aud or not aud.startswith("did:"):
            raise self.bad_request('Params must have the property "aud"')
        try:
            exp = float(query.get("exp") or self.now() + 60)
        except ValueError:
            raise self.bad_request("exp must be an integer") from None
        if exp - self.now() > (3600 if lxm else 60):
            raise xrpc_error(400, "BadExpiration", "expiration too far in the future")
        if exp <= self.now():
            raise xrpc_error(400, "BadExpiration", "expiration is in past")
        token = f"svc.{secrets.token_urlsafe(30)}"
        self.service_tokens[token] = ServiceToken(self.did, aud, lxm, exp)
        return {"token": token}

    # ---- repo -------------------------------------------------------------------------

    def _upload(self, body: dict[str, Any]) -> dict[str, Any]:
        data: bytes = body["data"]
        if len(data) > BLOB_CAP:
            raise xrpc_error(413, "PayloadTooLarge", "request entity too large")
        cid = "bafkrei" + hashlib.sha256(data).hexdigest()[:52]
        mime = body["mime"] or "application/octet-stream"
        self.blobs[cid] = (mime, len(data))
        blob = {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(data)}
        return {"blob": blob}

    def _create_record(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise self.bad_request("Input must be an object")
        if body.get("repo") not in (self.did, self.handle):
            raise self.bad_request(f"Could not find repo: {body.get('repo')}")
        if body.get("collection") != POST:
            raise self.bad_request("Invalid collection")
        record = body.get("record")
        if not isinstance(record, dict):
            raise self.bad_request('Input must have the property "record"')
        rkey = body.get("rkey")
        validate = body.get("validate") is not False
        if rkey is None:
            rkey = _tid(self.now())
        elif not isinstance(rkey, str) or (validate and not TID.match(rkey)):
            raise self.bad_request("Invalid record key: must be a TID")
        if validate:
            self._validate(record)
        if rkey in self.records:  # the reference PDS: the MST refuses, the API answers 500
            raise xrpc_error(500, "InternalServerError", "Internal Server Error")
        self.write_points += CREATE_COST
        uri = f"at://{self.did}/{POST}/{rkey}"
        cid = "bafyrei" + hashlib.sha256(repr(record).encode()).hexdigest()[:52]
        self.records[rkey] = {"uri": uri, "cid": cid, "value": {"$type": POST, **record}}
        commit = {"cid": "bafyrei" + secrets.token_hex(20), "rev": _tid(self.now())}
        return {"uri": uri, "cid": cid, "commit": commit, "validationStatus": "valid"}

    def _validate(self, record: dict[str, Any]) -> None:
        bad = self.bad_request
        if record.get("$type", POST) != POST:
            raise bad("Invalid $type: expected app.bsky.feed.post")
        text = record.get("text")
        if not isinstance(text, str):
            raise bad('Invalid app.bsky.feed.post record: Record must have the property "text"')
        size = len(text.encode())
        if size > 3000:
            raise bad(INVALID + "Record/text must not be longer than 3000 characters")
        if graphemes(text) > 300:
            raise bad(INVALID + "Record/text must not be longer than 300 graphemes")
        created = record.get("createdAt")
        try:
            when = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        except ValueError:
            raise bad(INVALID + "Record/createdAt must be an valid atproto datetime") from None
        if when.tzinfo is None:
            raise bad(INVALID + "Record/createdAt must include a timezone")
        _check_facets(record.get("facets", []), size)
        embed = record.get("embed")
        if isinstance(embed, dict) and embed.get("$type") == "app.bsky.embed.video":
            self._check_video(embed)
        elif embed is not None:
            self._check_images(embed)

    def _check_images(self, embed: Any) -> None:
        bad = self.bad_request
        if not isinstance(embed, dict) or embed.get("$type") != "app.bsky.embed.images":
            raise bad(INVALID + "Record/embed has an unsupported type")
        images = embed.get("images")
        if not isinstance(images, list) or not 1 <= len(images) <= 4:
            raise bad(INVALID + "embed/images must not have more than 4 elements")
        for i, image in enumerate(images):
            if not isinstance(image, dict) or not isinstance(image.get("alt"), str):
                raise bad(INVALID + f'embed/images/{i} must have the property "alt"')
            blob = image.get("image")
            cid = blob.get("ref", {}).get("$link") if isinstance(blob, dict) else None
            if cid not in self.blobs:
                raise bad(f"Could not find blob: {cid}")
            mime, size = self.blobs[cid]
            if not mime.startswith("image/"):
                raise bad(INVALID + f"embed/images/{i}/image has the wrong mimeType: {mime}")
            if size > IMAGE_MAX:
                raise xrpc_error(
                    400,
                    "BlobTooLarge",
                    f"This file is too large. It is {size / 1e6:.2f}MB but the maximum size is "
                    "976.56KB.",
                )

    def _check_video(self, embed: dict[str, Any]) -> None:
        blob = embed.get("video")
        cid = blob.get("ref", {}).get("$link") if isinstance(blob, dict) else None
        if cid not in self.blobs:
            raise self.bad_request(f"Could not find blob: {cid}")
        mime, size = self.blobs[cid]
        if mime != "video/mp4":
            raise self.bad_request(INVALID + f"embed/video has the wrong mimeType: {mime}")
        if size > VIDEO_MAX:
            raise xrpc_error(400, "BlobTooLarge", "This file is too large.")
        if not isinstance(embed.get("alt", ""), str):
            raise self.bad_request(INVALID + "embed/alt must be a string")

    def _get_record(self, query: dict[str, str]) -> dict[str, Any]:
        for key in ("repo", "collection", "rkey"):
            if not query.get(key):
                raise self.bad_request(f'Params must have the property "{key}"')
        found = self.records.get(query["rkey"])
        uri = f"at://{query['repo']}/{query['collection']}/{query['rkey']}"
        if query["repo"] not in (self.did, self.handle) or query["collection"] != POST or not found:
            raise xrpc_error(400, "RecordNotFound", f"Could not locate record: {uri}")
        return found


def _check_facets(facets: Any, size: int) -> None:
    if not isinstance(facets, list):
        raise xrpc_error(400, "InvalidRequest", "Record/facets must be an array")
    spans: list[tuple[int, int]] = []
    for i, facet in enumerate(facets):
        index = facet.get("index", {}) if isinstance(facet, dict) else {}
        start, end = index.get("byteStart"), index.get("byteEnd")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= size):
            raise xrpc_error(400, "InvalidRequest", f"Record/facets/{i}/index is out of range")
        features = facet.get("features")
        kinds = {
            "app.bsky.richtext.facet#link",
            "app.bsky.richtext.facet#tag",
            "app.bsky.richtext.facet#mention",
        }
        if not features or any(f.get("$type") not in kinds for f in features):
            raise xrpc_error(400, "InvalidRequest", f"Record/facets/{i}/features are invalid")
        spans.append((start, end))
    spans.sort()
    if any(a[1] > b[0] for a, b in itertools.pairwise(spans)):
        raise xrpc_error(400, "InvalidRequest", "Record/facets must not overlap")


_B32 = "234567abcdefghijklmnopqrstuvwxyz"


def _tid(now: float) -> str:
    value = (int(now * 1_000_000) << 10) | secrets.randbelow(1024)
    return "".join(_B32[(value >> (5 * i)) & 31] for i in reversed(range(13)))
