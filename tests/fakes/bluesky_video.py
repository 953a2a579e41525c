"""A strict fake of Bluesky's video service on loopback, beside a ``FakePDS`` whose service
tokens it accepts and on which it stores each processed video as a blob.

    async with FakePDS() as pds, FakeVideoService(pds) as video:
        video.base_url                          # the connection's metadata.videoUrl
        video.fail_processing("[bad]")          # a video holding these bytes ends FAILED
        video.processing_seconds = 60           # jobs stay in progress that long
        video.hold("[slow]", 15)                # a video holding these bytes: 15 s
        video.forget_jobs()                     # getJobStatus no longer knows a job

Calls (the ``app.bsky.video`` lexicons):
- ``getUploadLimits`` (a service token of the account with aud = the service's did:web and
  lxm ``app.bsky.video.getUploadLimits``): ``canUpload``, ``remainingDailyVideos``,
  ``remainingDailyBytes`` (25 videos and 10 GB a day by default), ``message``/``error``
  when it cannot.
- ``uploadVideo?did=…&name=…`` (raw ``video/mp4`` body; a service token with aud = the
  PDS's did:web, lxm ``com.atproto.repo.uploadBlob`` and iss = ``did``): ``{jobStatus}`` in
  ``JOB_STATE_CREATED``. A token past its expiry is 401 ``JwtExpired``, another aud, lxm or
  issuer 401 ``BadJwt…``; over ``max_bytes`` (100,000,000) is 413 ``PayloadTooLarge``; an
  account out of its daily videos or bytes 400 ``InvalidRequest``; the same bytes of the same
  account again 409 ``already_exists`` with the first ``jobId``.
- ``getJobStatus?jobId=…`` (no auth): ``JOB_STATE_ENCODING`` with ``progress`` for
  ``processing_seconds`` (or a ``hold``), then ``JOB_STATE_COMPLETED`` with the ``blob``
  (stored on the PDS as ``video/mp4``), or ``JOB_STATE_FAILED`` with ``error``/``message``:
  a video longer than three minutes (its MP4 header), or one marked by ``fail_processing``.
  An unknown job is 400 ``InvalidRequest``.
Faults (``http_fake.py``) aim at a video by bytes it holds (``uploadVideo``, and
``getJobStatus`` of its job).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from herald.services.publisher.platforms.rest.mp4 import duration_seconds
from tests.fakes.bluesky_pds import FakePDS, xrpc_error
from tests.fakes.http_fake import HttpFake, Refusal

LIMITS, UPLOAD, STATUS = "getUploadLimits", "uploadVideo", "getJobStatus"
DAILY_VIDEOS, DAILY_BYTES, MAX_BYTES, MAX_SECONDS = 25, 10 * 1024**3, 100_000_000, 180.0


def did_web(base_url: str) -> str:
    return "did:web:" + base_url.split("://", 1)[1].replace(":", "%3A")


@dataclass
class Job:
    id: str
    did: str
    text: str  # the video's bytes as latin-1: faults and markers find it by them
    size: int
    cid: str
    created: float
    takes: float  # seconds of processing
    failure: str | None  # why it will fail, or None


class FakeVideoService(HttpFake):
    CALLS = (LIMITS, UPLOAD, STATUS, "unknown")

    def __init__(self, pds: FakePDS, *, processing_seconds: float = 0.3) -> None:
        super().__init__()
        self.pds = pds
        self.processing_seconds = processing_seconds
        self.daily_videos, self.daily_bytes, self.max_bytes = DAILY_VIDEOS, DAILY_BYTES, MAX_BYTES
        self.jobs: dict[str, Job] = {}
        self.by_content: dict[str, str] = {}  # sha256(did, bytes) → job id
        self.failing: list[str] = []
        self.holds: list[tuple[str, float]] = []

    # ---- for tests --------------------------------------------------------------------

    def fail_processing(self, marker: str) -> None:
        self.failing.append(marker)

    def hold(self, marker: str, seconds: float) -> None:
        self.holds.append((marker, seconds))

    def forget_jobs(self) -> None:
        self.jobs.clear()
        self.by_content.clear()

    def uploads_with(self, marker: str) -> list[Job]:
        return [j for j in self.jobs.values() if marker in j.text]

    # ---- HTTP -------------------------------------------------------------------------

    def route(self, method: str, path: str) -> str:
        name = path.removeprefix("/xrpc/app.bsky.video.")
        wanted = {LIMITS: "GET", UPLOAD: "POST", STATUS: "GET"}.get(name)
        return name if wanted == method else "unknown"

    async def read_body(self, call: str, request: web.Request) -> Any:
        if call == UPLOAD:
            data = await request.read()
            return {"data": data, "mime": request.content_type, **request.query}
        return dict(request.query)

    def bad_request(self, message: str) -> Refusal:
        return xrpc_error(400, "InvalidRequest", message)

    def text_of(self, call: str, body: Any) -> str:
        if call == UPLOAD and isinstance(body, dict):
            return bytes(body["data"]).decode("latin-1")
        job = self.jobs.get(body.get("jobId", "")) if isinstance(body, dict) else None
        return job.text if job is not None else ""

    def act(self, call: str, request: web.Request, body: Any) -> Any:
        if call == "unknown":
            raise xrpc_error(501, "MethodNotImplemented", "Method Not Implemented")
        if call == STATUS:
            return {"jobStatus": self._status(body.get("jobId", ""))}
        if call == LIMITS:
            did = self._token(request, did_web(self.base_url), f"app.bsky.video.{LIMITS}")
            return self._limits(did)
        did = self._token(request, did_web(self.pds.base_url), "com.atproto.repo.uploadBlob")
        return self._upload(did, body)

    # ---- calls ------------------------------------------------------------------------

    def _token(self, request: web.Request, aud: str, lxm: str) -> str:
        auth = request.headers.get("Authorization", "")
        token = self.pds.service_tokens.get(auth.removeprefix("Bearer ").strip())
        if token is None:
            raise xrpc_error(401, "BadJwtSignature", "jwt signature does not match jwt issuer")
        if token.expires_at <= self.now():
            raise xrpc_error(401, "JwtExpired", "jwt expired")
        if token.aud != aud:
            raise xrpc_error(401, "BadJwtAudience", f"jwt audience does not match {aud}")
        if token.lxm != lxm:
            raise xrpc_error(401, "BadJwtLexiconMethod", "bad jwt lexicon method (lxm)")
        return token.iss

    def _today(self, did: str) -> tuple[int, int]:
        mine = [j for j in self.jobs.values() if j.did == did and j.created > self.now() - 86400]
        return self.daily_videos - len(mine), self.daily_bytes - sum(j.size for j in mine)

    def _limits(self, did: str) -> dict[str, Any]:
        videos, size = self._today(did)
        answer: dict[str, Any] = {
            "canUpload": videos > 0 and size > 0,
            "remainingDailyVideos": max(videos, 0),
            "remainingDailyBytes": max(size, 0),
        }
        if not answer["canUpload"]:
            answer |= {"error": "Daily limit reached", "message": "You have reached your limit"}
        return answer

    def _upload(self, did: str, body: dict[str, Any]) -> dict[str, Any]:
        data: bytes = body["data"]
        if body.get("did") != did:
            raise self.bad_request("did does not match the service token's issuer")
        if body.get("mime") != "video/mp4":
            raise self.bad_request(f"unsupported content type {body.get('mime')}")
        if len(data) > self.max_bytes:
            raise xrpc_error(413, "PayloadTooLarge", "request entity too large")
        videos, size = self._today(did)
        if videos <= 0 or size < len(data):
            raise self.bad_request("daily upload limit exceeded")
        key = hashlib.sha256(did.encode() + data).hexdigest()
        if key in self.by_content and self.by_content[key] in self.jobs:
            body = {"error": "already_exists", "message": "Video already processed"}
            raise Refusal(409, body | {"jobId": self.by_content[key]})
        text = data.decode("latin-1")
        seconds = duration_seconds(data)
        failure = None
        if seconds is None:
            failure = "not a readable MP4"
        elif seconds > MAX_SECONDS:
            failure = f"Video is too long ({seconds:.0f} s; at most {MAX_SECONDS:.0f} s)"
        elif any(m in text for m in self.failing):
            failure = "Video could not be processed"
        cid = "bafkrei" + key[:52]
        takes = max([t for m, t in self.holds if m in text], default=self.processing_seconds)
        job = Job(secrets.token_hex(8), did, text, len(data), cid, self.now(), takes, failure)
        self.jobs[job.id] = job
        self.by_content[key] = job.id
        return {"jobStatus": {"jobId": job.id, "did": did, "state": "JOB_STATE_CREATED"}}

    def _status(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise self.bad_request(f"job not found: {job_id}")
        status: dict[str, Any] = {"jobId": job.id, "did": job.did}
        elapsed = self.now() - job.created
        if elapsed < job.takes:
            progress = int(100 * elapsed / job.takes)
            return status | {"state": "JOB_STATE_ENCODING", "progress": progress}
        if job.failure is not None:
            return status | {"state": "JOB_STATE_FAILED", "error": "failed", "message": job.failure}
        self.pds.blobs[job.cid] = ("video/mp4", job.size)
        blob = {"$type": "blob", "ref": {"$link": job.cid}, "mimeType": "video/mp4"}
        blob["size"] = job.size
        return status | {"state": "JOB_STATE_COMPLETED", "progress": 100, "blob": blob}
