"""A Bluesky post's text: its length in graphemes (the limit is 300, and 3,000 UTF-8 bytes),
its link and hashtag facets on UTF-8 byte offsets (Bluesky renders a link or a tag only
where a facet says so), and the record key a job's post gets.

Graphemes are counted as user-perceived characters: a base character with its combining
marks, variation selectors, skin-tone modifiers and tag characters, a ZWJ sequence, a
regional-indicator pair (a flag) and CR LF each count once.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime
from typing import Any

MAX_GRAPHEMES, MAX_BYTES = 300, 3000
MAX_TAG_GRAPHEMES = 64
LINK = re.compile(r"https?://[^\s<>\"]+")
TAG = re.compile(r"(?<![^\s(])[#\uff03]([^\s#\uff03]+)")
TRAILING = ".,;:!?)]}'\"…"
ZWJ = 0x200D
B32 = "234567abcdefghijklmnopqrstuvwxyz"


def _extends(cp: int, ch: str) -> bool:
    return (
        unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or 0xFE00 <= cp <= 0xFE0F
        or 0x1F3FB <= cp <= 0x1F3FF
        or 0xE0020 <= cp <= 0xE007F
        or cp == ZWJ
    )


def grapheme_count(text: str) -> int:
    count, prev, regional, joined = 0, "", 0, False
    for ch in text:
        cp = ord(ch)
        flag = 0x1F1E6 <= cp <= 0x1F1FF
        same = (bool(prev) and (_extends(cp, ch) or joined or (prev == "\r" and ch == "\n"))) or (
            flag and regional % 2 == 1
        )
        if not same:
            count += 1
        joined = cp == ZWJ
        regional = regional + 1 if flag else 0
        prev = ch
    return count


def too_long(text: str) -> str | None:
    """Why the text is over Bluesky's limits, or None."""
    size, length = len(text.encode()), grapheme_count(text)
    if length > MAX_GRAPHEMES:
        return f"text is {length} graphemes; Bluesky takes at most {MAX_GRAPHEMES}"
    if size > MAX_BYTES:
        return f"text is {size} UTF-8 bytes; Bluesky takes at most {MAX_BYTES}"
    return None


def _span(text: str, start: int, end: int) -> dict[str, int]:
    head = len(text[:start].encode())
    return {"byteStart": head, "byteEnd": head + len(text[start:end].encode())}


def facets(text: str) -> list[dict[str, Any]]:
    """Link facets for http(s) URLs and tag facets for #hashtags (not inside a link, not all
    digits, at most 64 graphemes), in text order, never overlapping."""
    found: list[tuple[int, int, dict[str, Any]]] = []
    for m in LINK.finditer(text):
        uri = m.group(0).rstrip(TRAILING)
        feature = {"$type": "app.bsky.richtext.facet#link", "uri": uri}
        found.append((m.start(), m.start() + len(uri), feature))
    for m in TAG.finditer(text):
        tag = m.group(1).rstrip(TRAILING)
        start, end = m.start(), m.start(1) + len(tag)
        inside = any(s <= start < e for s, e, _ in found)
        if not tag or tag.isdigit() or inside or grapheme_count(tag) > MAX_TAG_GRAPHEMES:
            continue
        found.append((start, end, {"$type": "app.bsky.richtext.facet#tag", "tag": tag}))
    found.sort(key=lambda f: f[0])
    return [{"index": _span(text, s, e), "features": [f]} for s, e, f in found]


def record_key(job_id: str, scheduled_at: datetime) -> str:
    """The job's TID: the scheduled time in microseconds, its sub-second part and the 10-bit
    clock id taken from a hash of the job id. The same job always gets the same key, so a
    repeated create finds its first record in the way."""
    digest = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "big")
    micros = int(scheduled_at.timestamp()) * 1_000_000 + digest % 1_000_000
    value = (micros << 10) | ((digest >> 20) & 0x3FF)
    return "".join(B32[(value >> (5 * i)) & 31] for i in reversed(range(13)))
