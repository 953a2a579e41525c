"""Graph's usage headers (``X-App-Usage``, ``X-Business-Use-Case-Usage``) and ``Retry-After``:
how close an app and an account are to their limits, and how long to stop calling."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# A throttled call without a usable estimate in the usage headers waits this long.
DEFAULT_THROTTLE_SECONDS = 900.0
# Usage headers at or above this percentage mean "stop calling".
USAGE_STOP_PERCENT = 90.0


@dataclass(frozen=True)
class Usage:
    """What the usage headers say: the highest percentage and the BUC wait, if any."""

    app_percent: float = 0.0
    account_percent: float = 0.0
    regain_seconds: float | None = None

    @property
    def percent(self) -> float:
        return max(self.app_percent, self.account_percent)


def parse_usage(headers: Mapping[str, str], account_id: str | None) -> Usage:
    """Read ``X-App-Usage`` and ``X-Business-Use-Case-Usage`` (values are percentages;
    ``estimated_time_to_regain_access`` is in minutes). The BUC header is keyed by business
    object; the entry for ``account_id`` is preferred, else every entry counts."""
    app = _json_header(headers, "X-App-Usage")
    app_percent = _max_percent(app) if isinstance(app, dict) else 0.0
    buc = _json_header(headers, "X-Business-Use-Case-Usage")
    entries: list[Any] = []
    if isinstance(buc, dict):
        chosen = [buc[account_id]] if account_id in buc else list(buc.values())
        entries = [e for group in chosen if isinstance(group, list) for e in group]
    account_percent = 0.0
    regain: float | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        account_percent = max(account_percent, _max_percent(entry))
        minutes = entry.get("estimated_time_to_regain_access")
        if isinstance(minutes, int | float) and minutes > 0:
            regain = max(regain or 0.0, float(minutes) * 60.0)
    return Usage(app_percent=app_percent, account_percent=account_percent, regain_seconds=regain)


def throttle_seconds(headers: Mapping[str, str], account_id: str | None) -> float | None:
    """How long to stop calling per the usage headers, or None when they allow calls."""
    usage = parse_usage(headers, account_id)
    if usage.regain_seconds:
        return usage.regain_seconds
    if usage.percent >= 100.0:
        return DEFAULT_THROTTLE_SECONDS
    return None


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    """HTTP ``Retry-After`` in seconds (a bare 429 may carry it), when positive."""
    raw = (headers.get("Retry-After") or "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _json_header(headers: Mapping[str, str], name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _max_percent(values: Mapping[str, Any]) -> float:
    keys = ("call_count", "total_cputime", "total_time")
    numbers = [float(v) for k in keys if isinstance(v := values.get(k), int | float)]
    return max(numbers, default=0.0)
