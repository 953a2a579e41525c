"""Progress lines of ``herald stack`` on stderr (stdout carries only results)."""

from __future__ import annotations

import sys
from collections.abc import Iterable


def say(message: str) -> None:
    print(f"[stack] {message}", file=sys.stderr, flush=True)


def show_lines(header: str, lines: Iterable[str]) -> None:
    """A block of lines (e.g. the tail of a log) under a header, on stderr."""
    print(f"[stack] {header}", file=sys.stderr)
    for line in lines:
        print(f"    {line}", file=sys.stderr)
    sys.stderr.flush()
