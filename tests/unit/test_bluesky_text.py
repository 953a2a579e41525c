"""Bluesky text rules: graphemes (not code points) against the 300 limit, facets on UTF-8
byte offsets, and the job's record key (a valid TID, the same for every attempt)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from herald.services.publisher.platforms.bluesky.text import (
    facets,
    grapheme_count,
    record_key,
    too_long,
)

TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


def test_graphemes_count_what_a_reader_sees() -> None:
    assert grapheme_count("abc") == 3
    assert grapheme_count("e\u0301") == 1  # e + combining acute
    assert grapheme_count("👍🏽") == 1  # skin tone
    assert grapheme_count("👨‍👩‍👧") == 1  # ZWJ family
    assert grapheme_count("🇫🇷🇩🇪") == 2  # two flags
    assert grapheme_count("a\r\nb") == 3


def test_the_limit_is_300_graphemes_and_3000_bytes() -> None:
    assert too_long("é" * 300) is None  # 300 graphemes, 600 bytes
    assert too_long("é" * 301) and "301 graphemes" in str(too_long("é" * 301))
    assert too_long("👨‍👩‍👧" * 200) is not None  # 200 graphemes but 3,600 bytes (18 each)


def test_facets_use_utf8_byte_offsets() -> None:
    text = "héllo 👋 https://example.com/a?b=1. and #Herald #2024 #日本"
    found = facets(text)
    raw = text.encode()
    spans = [raw[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in found]
    assert spans == ["https://example.com/a?b=1", "#Herald", "#日本"]
    assert found[0]["features"][0] == {
        "$type": "app.bsky.richtext.facet#link",
        "uri": "https://example.com/a?b=1",
    }
    assert found[1]["features"][0] == {"$type": "app.bsky.richtext.facet#tag", "tag": "Herald"}


def test_a_hash_inside_a_link_is_not_a_tag() -> None:
    found = facets("see https://example.com/#section")
    assert [f["features"][0]["$type"] for f in found] == ["app.bsky.richtext.facet#link"]


def test_the_record_key_is_a_tid_fixed_per_job() -> None:
    at = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    key = record_key("job-1", at)
    assert TID.match(key)
    assert key == record_key("job-1", at)
    assert key != record_key("job-2", at)
