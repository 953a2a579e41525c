"""Dead-letter listing and redrive, shared by the HTTP API and the CLI.

CONTRACT (implemented by the results work; the API and CLI call exactly this):

    Filters.parse(platform=None, reason=None, connection_id=None, since=None, until=None,
                  job_ids=None) -> Filters            # strings in; raises ValidationFailed
    await list_dead_letters(db, principal, filters, *, include_redriven=False, limit=50,
                            cursor=None) -> {"items": [dead letter out], "next_cursor": str|None}
    await redrive(jobs: JobService, principal, filters, *, dry_run: bool, force: bool,
                  progress: bool = False) -> {"count": int, "job_ids": [str]}
"""

from __future__ import annotations
