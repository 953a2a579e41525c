"""X's weighted character count (the `twitter-text` v3 rules): text NFC-normalised; every
URL counts 23 (t.co); code points in the Latin and general punctuation ranges count 1, all
others (CJK, emoji) 2; an emoji sequence joined by ZWJ, its variation selectors and skin
tone modifiers count once. The limit is 280."""

from __future__ import annotations

import re
import unicodedata

LIMIT = 280
URL_WEIGHT = 23
URL = re.compile(r"https?://\S+|(?<![\w@.])(?:[a-z0-9-]+\.)+(?:com|org|net|io|co|dev)\b\S*", re.I)
LIGHT = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
JOINER = 0x200D
SILENT = {0xFE0E, 0xFE0F} | set(range(0x1F3FB, 0x1F400))


def weighted_length(text: str) -> int:
    text = unicodedata.normalize("NFC", text)
    parts = URL.split(text)
    return sum(_weight(p) for p in parts) + URL_WEIGHT * (len(parts) - 1)


def _weight(text: str) -> int:
    total, joined = 0, False
    for ch in text:
        point = ord(ch)
        if point == JOINER:
            joined = True
            continue
        if point in SILENT or joined:
            joined = False
            continue
        total += 1 if any(lo <= point <= hi for lo, hi in LIGHT) else 2
    return total


def comparable(text: str) -> str:
    """A post's text for matching what X answers (URLs become t.co links)."""
    return " ".join(URL.sub("URL", unicodedata.normalize("NFC", text)).split())
