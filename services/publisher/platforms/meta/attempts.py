"""What a Meta platform's attempt needs beyond its calls: the connection's account id and
token checked before any call, and the attempt's poll budget for its waits."""

from __future__ import annotations

import asyncio

from herald.platforms import AttemptContext, Connection, Outcome, PublishOutcome


def account_or_refusal(connection: Connection, key: str) -> tuple[str, PublishOutcome | None]:
    """The account id under metadata ``key``, or the outcome that refuses the attempt (no id:
    permanent; no token: auth)."""
    account = str(connection.metadata.get(key) or "")
    if not account:
        message = f"connection metadata has no {key}"
        return "", PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
    if not connection.access_token:
        return "", PublishOutcome(Outcome.AUTH_ERROR, error_message="connection has no token")
    return account, None


class Budget:
    """The attempt's poll budget (``ctx.poll_seconds``), shared by all its waits."""

    def __init__(self, ctx: AttemptContext) -> None:
        self.deadline = asyncio.get_running_loop().time() + ctx.poll_seconds

    async def pause(self, seconds: float) -> bool:
        """Sleep unless the budget would run out first; False (at once) when it would."""
        left = self.deadline - asyncio.get_running_loop().time()
        if seconds > left:
            return False
        await asyncio.sleep(seconds)
        return True
