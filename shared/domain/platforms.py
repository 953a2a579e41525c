"""A connection's states. Which platforms exist, and what each accepts, is the platform
registry's (`herald.shared.platforms.registry`): nothing else lists platforms."""

from __future__ import annotations

CONNECTION_STATUSES = ("active", "needs_reauth", "disabled")
