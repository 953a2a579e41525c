"""A media host on loopback, standing in for the CDN a job's media URLs point at (the plugins
that upload media download it first).

    async with MediaHost() as cdn:
        cdn.url("a/photo.jpg")       # a small JPEG
        cdn.url("big/photo.jpg")     # 1.5 MB: over Bluesky's image size
        cdn.url("a/clip.mp4")        # a small MP4 of 10 s (any path: its name is its bytes)
        cdn.url("long/clip.mp4")     # an MP4 of 200 s
        cdn.url("gone/photo.jpg")    # 404
        cdn.url("slow/photo.jpg")    # answers after ``slow_seconds``
        cdn.url("hop/a/photo.jpg")   # 302 to a/photo.jpg

With ``tls`` (``tests.fakes.tls``) it serves https, as job media URLs must be.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from typing import Any

from aiohttp import web

from tests.fakes.http_fake import HttpFake, Refusal

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 2000


def movie(seconds: float, *, version: int = 0, pad: int = 4000) -> bytes:
    """A minimal MP4 (``ftyp``, ``moov/mvhd``, ``mdat`` of ``pad`` bytes) lasting
    ``seconds``."""
    scale = 1000
    if version == 1:
        head = struct.pack(">B3xQQIQ", 1, 0, 0, scale, int(seconds * scale))
    else:
        head = struct.pack(">B3xIIII", 0, 0, 0, scale, int(seconds * scale))
    moov = _box(b"moov", _box(b"mvhd", head + b"\x00" * 80))
    return _box(b"ftyp", b"mp42\x00\x00\x00\x00mp42isom") + moov + _box(b"mdat", b"\x00" * pad)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


MP4 = movie(10.0)  # ten seconds
LONG_MP4 = movie(200.0)  # over three minutes
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 1500
TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4", ".gif": "image/gif"}


class MediaHost(HttpFake):
    CALLS = ("get",)

    def __init__(self, *, slow_seconds: float = 30.0, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls=tls)
        self.slow_seconds = slow_seconds

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def route(self, method: str, path: str) -> str:
        return "get"

    async def act(self, call: str, request: web.Request, body: Any) -> web.StreamResponse:
        path = request.path
        if path.startswith("/hop/"):
            raise web.HTTPFound(path.removeprefix("/hop"))
        if path.startswith("/gone/"):
            raise Refusal(404, {"error": "not found"})
        if path.startswith("/slow/"):
            await asyncio.sleep(self.slow_seconds)
        ext = path[path.rfind(".") :]
        kind = TYPES.get(ext, "application/octet-stream")
        data = {".mp4": MP4, ".png": PNG}.get(ext, JPEG)
        if path.startswith("/long/"):
            data = LONG_MP4
        if ext == ".mp4":
            data += path.encode()  # after the boxes: a video per path, found by its path
        if path.startswith("/big/"):
            data = data + b"\x00" * 1_500_000
        return web.Response(body=data, content_type=kind)
