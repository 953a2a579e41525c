"""Token lifetimes and the Instagram Login refresh endpoint of the fake Graph API.

A token may carry an expiry (``expires_in`` seconds from when it was issued, on the fake's
clock): past it, every call with it answers 190/463 "Session has expired". On the
Instagram Login host, ``GET /refresh_access_token?grant_type=ig_refresh_token&
access_token=…`` (versioned or not) gives a new long-lived token for the same account,
valid 60 days (``expires_in`` 5183944), as documented: only for a token at least 24 hours
old and not expired. The old token keeps working until its own expiry (the documentation
does not say it is revoked). The answer for a token younger than a day is not documented;
the fake answers error 100 (a bad request, not an auth failure). On the Facebook Login host
the route does not exist.
"""

from __future__ import annotations

import secrets
from typing import Any

from bench.graph_fake.model import DAY, INSTAGRAM, GraphFault, missing

LONG_LIVED_SECONDS = 5_183_944  # the documented `expires_in` of a 60-day token


class TokenBook:
    """Issue times and expiries of the fake's tokens (mixed into the fake's state)."""

    tokens: dict[str, tuple[str, str]]

    def now(self) -> float:
        raise NotImplementedError

    def _init_tokens(self) -> None:
        self.token_issued: dict[str, float] = {}
        self.token_expires: dict[str, float] = {}
        self.refreshed: list[tuple[str, str]] = []  # (old token, new token)

    def set_token_life(self, token: str, *, expires_in: float | None, age: float = 0.0) -> None:
        """``token`` was issued ``age`` seconds ago and lives ``expires_in`` seconds (None:
        it does not expire)."""
        issued = self.now() - age
        self.token_issued[token] = issued
        if expires_in is None:
            self.token_expires.pop(token, None)
        else:
            self.token_expires[token] = issued + expires_in

    def check_expiry(self, token: str) -> None:
        expires = self.token_expires.get(token)
        if expires is not None and self.now() >= expires:
            raise GraphFault(
                190,
                "Error validating access token: Session has expired.",
                subcode=463,
                is_transient=False,
            )

    def refresh(self, token: str, login: str, params: dict[str, str]) -> dict[str, Any]:
        if login != INSTAGRAM:
            raise missing("refresh_access_token")
        if params.get("grant_type") != "ig_refresh_token":
            raise GraphFault(100, "Unsupported grant_type: expected ig_refresh_token")
        if self.now() - self.token_issued.get(token, self.now() - DAY) < DAY:
            raise GraphFault(100, "The access token is less than 24 hours old")
        new = "IGAA" + secrets.token_urlsafe(48)
        self.tokens[new] = self.tokens[token]
        self.set_token_life(new, expires_in=LONG_LIVED_SECONDS)
        self.refreshed.append((token, new))
        return {"access_token": new, "token_type": "bearer", "expires_in": LONG_LIVED_SECONDS}
