"""When a Meta API may be called again, per account and app-wide, shared by every publisher
copy through Redis (keys under the run's prefix, `Names.key`, and the platform's own:
`ig` for Instagram, `fb` for Facebook Pages, `th` for Threads).

A pause is an instant ("until", epoch seconds) kept under `<platform>:pause:<account id>`
(one account, whatever connection reaches it) or `<platform>:pause:app` (code 4 and
`X-App-Usage`: the whole app). Pausing only ever moves an instant later, and every caller
learns the resulting wait from the same instant: the wait a result reports, the pause every
copy keeps and Meta's estimate are one number, so a retry due when that wait is over is
never refused.

The throttle is advice (Graph enforces its limits itself): while Redis is away it answers
"no pause" and reports the wait it was given, and the attempt goes on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping

import redis.asyncio as aioredis

from herald.services.publisher.platforms.meta.usage import (
    DEFAULT_THROTTLE_SECONDS,
    USAGE_STOP_PERCENT,
    parse_usage,
)
from herald.shared.infra import redis_client
from herald.shared.infra.names import Names

log = logging.getLogger(__name__)

NEAR_LIMIT_PAUSE_SECONDS = 60.0  # usage headers at >= 90 %: stop calling for a while
APP_WIDE = "app"

# KEYS[1] the pause; ARGV[1] until (epoch seconds), ARGV[2] ttl (ms). Keeps the later instant;
# answers the instant kept.
_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return tostring(current)
"""


class Throttle:
    def __init__(
        self,
        client: aioredis.Redis,
        names: Names,
        *,
        platform: str = "ig",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.names = names
        self.platform = platform
        self.clock = clock
        self._script = client.register_script(_PAUSE)

    def _key(self, scope: str) -> str:
        return self.names.key(f"{self.platform}:pause:{scope}")

    async def paused_for(self, account_id: str) -> float:
        """Whole seconds until calls for this account may resume (0: now), rounded up: a
        retry due after this wait finds the pause over."""
        try:
            values = await self.client.mget([self._key(account_id), self._key(APP_WIDE)])
        except redis_client.AWAY as exc:
            log.warning("%s throttle unreadable", self.platform, extra={"error": str(exc)[:200]})
            return 0.0
        until = max((float(v) for v in values if v is not None), default=0.0)
        return float(max(math.ceil(until - self.clock()), 0))

    async def pause(self, scope: str, seconds: float, account_id: str) -> float:
        """Pause ``scope`` (an account id or ``APP_WIDE``) for ``seconds`` (never shortening a
        longer pause); answers the wait that now applies to ``account_id``."""
        until = self.clock() + seconds
        try:
            await self._script(keys=[self._key(scope)], args=[repr(until), int(seconds * 1000) + 1])
        except redis_client.AWAY as exc:
            log.warning("%s throttle not stored", self.platform, extra={"error": str(exc)[:200]})
            return float(math.ceil(seconds))
        return max(await self.paused_for(account_id), float(math.ceil(seconds)))

    async def note_usage(self, account_id: str, headers: Mapping[str, str]) -> None:
        """Stop calling at >= 90 % usage (reference §10), for the BUC estimate when given."""
        usage = parse_usage(headers, account_id)
        if usage.regain_seconds or usage.account_percent >= USAGE_STOP_PERCENT:
            wait = usage.regain_seconds or NEAR_LIMIT_PAUSE_SECONDS
            await self.pause(account_id, wait, account_id)
        if usage.app_percent >= USAGE_STOP_PERCENT:
            full = usage.app_percent >= 100.0
            wait = DEFAULT_THROTTLE_SECONDS if full else NEAR_LIMIT_PAUSE_SECONDS
            await self.pause(APP_WIDE, wait, account_id)
