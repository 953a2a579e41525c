"""Removing a connection's token from what a platform answered, before anything is kept.

Only free text is scrubbed: the outcome's error message and the provider's response (an
opaque document: every string in it, its keys included). The ids, enums and keys Herald
itself writes (job id, platform, outcome, provider ids, times, every field name of a
result) are never touched: a token that happens to be a short string (`x`, `1`) must not
rewrite `"platform": "sandbox"` or a post id.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote, quote_plus

from herald.shared.domain.outcomes import PublishOutcome

REDACTED = "[redacted]"


class Scrubber:
    """Replaces a secret (and its URL-encoded forms) in free text."""

    def __init__(self, secret: str) -> None:
        forms = {secret, quote(secret, safe=""), quote_plus(secret)} if secret else set()
        # Longest first, so an encoded form is not half-replaced by a shorter one.
        self._forms = sorted((f for f in forms if f), key=len, reverse=True)

    def text(self, value: str) -> str:
        for form in self._forms:
            value = value.replace(form, REDACTED)
        return value

    def document(self, value: Any) -> Any:
        """Every string inside a JSON-like document from a provider, keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.document(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.document(v) for v in value]
        return value

    def outcome(self, outcome: PublishOutcome) -> PublishOutcome:
        """The outcome with its free text scrubbed (message, provider response)."""
        if not self._forms:
            return outcome
        return replace(
            outcome,
            error_message=self.text(outcome.error_message) if outcome.error_message else None,
            provider_response=self.document(outcome.provider_response),
        )
