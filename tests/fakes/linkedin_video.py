"""The Videos API of the fake LinkedIn (``FakeLinkedIn`` mixes it in), from LinkedIn's public
documentation:

- ``videos`` (``POST /rest/videos?action=initializeUpload``, ``{initializeUploadRequest:
  {owner, fileSizeBytes, uploadCaptions, uploadThumbnail}}``): the owner must be the
  member or its Page (else 403), the size 75 KB to 500 MB (else 400); the answer's ``value``
  holds ``video`` (``urn:li:video:…``), ``uploadToken`` and ``uploadInstructions``, one
  ``{uploadUrl, firstByte, lastByte}`` per ``part_bytes`` (4 MiB) of the file.
- ``video_part`` (``PUT`` to an upload URL): exactly the part's bytes (else 400), before the
  URL expires (``url_seconds``, an hour; ``expired_uploads`` hands out URLs already
  expired; else 403); 200 with an ``ETag``.
- ``videos`` (``POST /rest/videos?action=finalizeUpload``, ``{finalizeUploadRequest:
  {video, uploadToken, uploadedPartIds}}``): the token of that upload and every part's ETag
  in order (else 400); the video is then ``PROCESSING`` for ``processing_seconds`` (or a
  ``hold``), then ``AVAILABLE``, or ``PROCESSING_FAILED`` (an MP4 under 3 s or over 30 min,
  a file without a movie header, or bytes ``fail_processing`` marks).
- ``video`` (``GET /rest/videos/{urn}``, the urn URL-encoded; else 400): ``{id, status,
  processingFailureReason?}``; 404 for an unknown video.

A post's ``content.media.id`` may name a video of its author only once it is ``AVAILABLE``
(else 400).
Faults aim at a part by the bytes it holds (``video_part``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from herald.services.publisher.platforms.rest.mp4 import duration_seconds
from tests.fakes.http_fake import Refusal

PART_BYTES = 4 * 1024 * 1024
MIN_BYTES, MAX_BYTES = 75 * 1024, 500 * 1024 * 1024
MIN_SECONDS, MAX_SECONDS = 3.0, 1800.0
VIDEO_CALLS = ("videos", "video_part", "video")


def error(status: int, message: str, **extra: Any) -> Refusal:
    return Refusal(status, {"status": status, "message": message, **extra})


@dataclass
class Part:
    first: int
    last: int
    expires: float
    etag: str | None = None
    data: bytes = b""


@dataclass
class Video:
    urn: str
    owner: str
    size: int
    token: str
    parts: list[Part]
    status: str = "WAITING_UPLOAD"
    ready_at: float = 0.0
    failure: str | None = None
    text: str = ""  # the bytes as latin-1, once finalized: faults find a video by them
    finalized: list[str] = field(default_factory=list)


class VideoApi:
    """State and calls of the Videos API; the host class gives ``base_url``, ``now`` and
    ``author``."""

    base_url: str
    author: str

    if TYPE_CHECKING:

        def now(self) -> float: ...

        def may_act_as(self, who: object) -> bool: ...

    def init_videos(self) -> None:
        self.videos: dict[str, Video] = {}
        self.part_bytes = PART_BYTES
        self.url_seconds = 3600.0
        self.processing_seconds = 0.3
        self.failing: list[str] = []
        self.holds: list[tuple[str, float]] = []
        self.expired_uploads = 0  # the next n uploads get URLs that have already expired

    # ---- for tests ---------------------------------------------------------------------

    def fail_processing(self, marker: str) -> None:
        self.failing.append(marker)

    def hold(self, marker: str, seconds: float) -> None:
        self.holds.append((marker, seconds))

    def videos_with(self, marker: str) -> list[Video]:
        return [v for v in self.videos.values() if marker in v.text]

    # ---- calls -------------------------------------------------------------------------

    def video_call(self, call: str, request: web.Request, body: Any) -> Any:
        if call == "video_part":
            return self._part(request, body)
        if call == "video":
            return self._status(request)
        action = request.query.get("action")
        if action == "initializeUpload":
            return self._initialize(body)
        if action == "finalizeUpload":
            return self._finalize(body)
        raise error(400, "action must be initializeUpload or finalizeUpload")

    def _initialize(self, body: Any) -> dict[str, Any]:
        ask = body.get("initializeUploadRequest") if isinstance(body, dict) else None
        if not isinstance(ask, dict):
            raise error(400, "/initializeUploadRequest is required")
        owner = ask.get("owner")
        if not self.may_act_as(owner):
            raise error(
                403, f"Not enough permissions to act as {ask.get('owner')}", code="ACCESS_DENIED"
            )
        size = ask.get("fileSizeBytes")
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or not MIN_BYTES <= size <= MAX_BYTES
        ):
            raise error(400, f"/fileSizeBytes must be {MIN_BYTES} to {MAX_BYTES}, got {size}")
        for flag in ("uploadCaptions", "uploadThumbnail"):
            if not isinstance(ask.get(flag, False), bool):
                raise error(400, f"/{flag} must be a boolean")
        urn = f"urn:li:video:C5F{secrets.token_hex(8)}"
        expires = self.now() + self.url_seconds
        if self.expired_uploads > 0:
            self.expired_uploads -= 1
            expires = self.now() - 1
        parts = [
            Part(first, min(first + self.part_bytes, size) - 1, expires)
            for first in range(0, size, self.part_bytes)
        ]
        token = secrets.token_hex(8) if len(parts) > 1 else ""
        self.videos[urn] = Video(urn, str(owner), size, token, parts)
        instructions = [
            {
                "uploadUrl": f"{self.base_url}/upload/video/{urn}/{i}",
                "firstByte": p.first,
                "lastByte": p.last,
            }
            for i, p in enumerate(parts)
        ]
        value = {
            "uploadUrlsExpireAt": int(expires * 1000),
            "video": urn,
            "uploadInstructions": instructions,
            "uploadToken": token,
        }
        return {"value": value}

    def _part(self, request: web.Request, data: bytes) -> web.Response:
        _, _, _, urn, index = request.path.split("/", 4)
        video = self.videos.get(urn)
        if video is None or not index.isdigit() or int(index) >= len(video.parts):
            raise error(404, "no such upload")
        part = video.parts[int(index)]
        if part.expires <= self.now():
            raise error(403, "The upload URL has expired")
        if video.status != "WAITING_UPLOAD":
            raise error(400, f"{urn} is {video.status}, not waiting for an upload")
        if len(data) != part.last - part.first + 1:
            raise error(
                400, f"part {index} is bytes {part.first}-{part.last}, got {len(data)} bytes"
            )
        part.data, part.etag = data, hashlib.md5(data).hexdigest()
        return web.Response(status=200, headers={"ETag": f'"{part.etag}"'})

    def _finalize(self, body: Any) -> dict[str, Any]:
        ask = body.get("finalizeUploadRequest") if isinstance(body, dict) else None
        if not isinstance(ask, dict):
            raise error(400, "/finalizeUploadRequest is required")
        video = self.videos.get(str(ask.get("video")))
        if video is None:
            raise error(404, f"no video {ask.get('video')}")
        if ask.get("uploadToken") != video.token:
            raise error(400, "/uploadToken does not match the upload")
        etags = [f'"{p.etag}"' for p in video.parts]
        if None in (p.etag for p in video.parts) or ask.get("uploadedPartIds") != etags:
            raise error(400, "/uploadedPartIds must be every part's ETag, in order")
        if video.status != "WAITING_UPLOAD":
            raise error(400, f"{video.urn} is already {video.status}")
        data = b"".join(p.data for p in video.parts)
        video.text = data.decode("latin-1")
        seconds = duration_seconds(data)
        if seconds is None:
            video.failure = "not a readable MP4"
        elif not MIN_SECONDS <= seconds <= MAX_SECONDS:
            video.failure = f"duration {seconds:.0f} s is outside 3 s to 30 min"
        elif any(m in video.text for m in self.failing):
            video.failure = "the video could not be processed"
        takes = max([t for m, t in self.holds if m in video.text], default=self.processing_seconds)
        video.status, video.ready_at = "PROCESSING", self.now() + takes
        return {}

    def _status(self, request: web.Request) -> dict[str, Any]:
        raw = request.raw_path.split("?", 1)[0].removeprefix("/rest/videos/")
        if ":" in raw:
            raise error(400, "the video urn must be URL-encoded in the path")
        video = self.videos.get(unquote(raw))
        if video is None:
            raise error(404, f"no video {unquote(raw)}")
        return {"id": video.urn, "owner": video.owner, "status": self.status_of(video)} | (
            {"processingFailureReason": video.failure}
            if self.status_of(video) == "PROCESSING_FAILED"
            else {}
        )

    def status_of(self, video: Video) -> str:
        if video.status == "PROCESSING" and self.now() >= video.ready_at:
            video.status = "AVAILABLE" if video.failure is None else "PROCESSING_FAILED"
        return video.status
