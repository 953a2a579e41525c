"""What the platforms' end-to-end runs share: killing the publisher copy that holds a job's
open claim, and reading the jobs' states."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from herald.shared.infra.runtime import Runtime
from tests.support.helpers import ServiceProcess


async def kill_claim_holder(rt: Runtime, copies: Iterable[ServiceProcess], job_id: str) -> bool:
    """SIGKILL the publisher copy holding the job's open claim (False when none holds it)."""
    row = await rt.db.fetchone(
        "SELECT worker FROM publish_claims WHERE job_id = %s AND result IS NULL", (job_id,)
    )
    victim = next((c for c in copies if row and c.proc and f"-{c.proc.pid}" in row["worker"]), None)
    if victim is None:
        return False
    victim.kill()
    return True


async def job_rows(rt: Runtime, ids: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Each job's row (status, last_error) by its label."""
    rows = await rt.db.fetch(
        "SELECT id::text AS id, status, last_error FROM jobs WHERE id = ANY(%s)",
        (list(ids.values()),),
    )
    by_id = {r["id"]: dict(r) for r in rows}
    return {label: by_id[i] for label, i in ids.items() if i in by_id}
