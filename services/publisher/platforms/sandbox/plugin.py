"""The `sandbox` plugin's declaration: the worked example of the "write a platform" guide
(docs/write-a-platform.md). Everything Herald needs to know about the platform is here;
the publisher it builds is in the package's `__init__`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald.platforms import (
    AccountRules,
    CaptionLimits,
    MediaKind,
    MediaRules,
    Platform,
    PlatformEnv,
    PlatformPublisher,
    RateLimit,
)

MAX_LATENCY_MS = 60_000  # a call holds a publisher slot this long at most
RATES = ("retryable_rate", "permanent_rate", "ambiguous_rate")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Sandbox(Platform):
    name = "sandbox"
    title = "Sandbox (simulated)"
    media = MediaRules(
        kinds=(
            MediaKind("IMAGE"),
            MediaKind("CAROUSEL", min_assets=2, max_assets=10),
            MediaKind("REELS", video=True),
            MediaKind("STORIES"),
        ),
        max_assets=10,
        caption=CaptionLimits(chars=2200),
    )
    # Tokens are optional and free-form: the sandbox never reads them.
    account = AccountRules(
        token_required=False,
        token_pattern=r"[^\x00]{1,4096}",
        token_rule="must be a non-empty string of at most 4096 characters",
    )

    def check_metadata(self, metadata: Mapping[str, Any]) -> dict[str, str]:
        errors: dict[str, str] = {}
        for key in RATES:
            value = metadata.get(key, 0)
            if not _number(value) or not 0 <= value <= 1:
                errors[f"metadata.{key}"] = "must be a number in [0, 1]"
        latency = metadata.get("latency_ms", 0)
        if not _number(latency) or not 0 <= latency <= MAX_LATENCY_MS:
            errors["metadata.latency_ms"] = (
                f"must be a number of milliseconds in [0, {MAX_LATENCY_MS}]"
            )
        return errors

    def limit_for(self, metadata: Mapping[str, Any]) -> RateLimit | None:
        """Unlimited unless the connection's metadata asks for a rate."""
        rate, burst = metadata.get("rate_per_second"), metadata.get("rate_burst")
        if not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0:
            return None
        if not isinstance(burst, int | float) or isinstance(burst, bool) or burst < 1:
            burst = max(1.0, float(rate))
        return RateLimit(float(rate), float(burst))

    def publisher(self, env: PlatformEnv) -> PlatformPublisher:
        from herald.services.publisher.platforms.sandbox import SandboxPublisher

        return SandboxPublisher(env.db)
