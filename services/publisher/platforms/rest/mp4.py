"""An MP4 (ISO BMFF) file's duration, read from its movie header (``moov/mvhd``) so a video
over a network's length limit is refused before it is uploaded. Nothing else is decoded."""

from __future__ import annotations

import struct


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The boxes between ``start`` and ``end``: (type, payload start, box end)."""
    found, at = [], start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        head = 8
        if size == 1:
            if at + 16 > end:
                break
            (size,) = struct.unpack_from(">Q", data, at + 8)
            head = 16
        elif size == 0:
            size = end - at
        if size < head or at + size > end:
            break
        found.append((kind, at + head, at + size))
        at += size
    return found


def duration_seconds(data: bytes) -> float | None:
    """The movie's duration in seconds (its header may come before or after the media
    data), or None when the file has no readable movie header (not an MP4)."""
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for inner, body, stop in _boxes(data, start, end):
            if inner != b"mvhd" or stop - body < 20:
                continue
            version = data[body]
            if version == 1 and stop - body >= 32:
                scale, length = struct.unpack_from(">IQ", data, body + 20)
            else:
                scale, length = struct.unpack_from(">II", data, body + 12)
            return length / scale if scale else None
    return None
