"""`herald dlq list|redrive`: dead letters, and requeueing the jobs they hold."""

from __future__ import annotations

import argparse
from typing import Any

from herald.services.cli.output import Commands, out, rows, with_runtime


def _letter_line(d: dict[str, Any]) -> str:
    return f"{d['created_at']}  {d['reason']:<16} job {d['job_id']} attempt {d['attempt']}"


async def dlq(rt: Any, args: argparse.Namespace) -> int:
    from herald.shared.domain.tenancy import ADMIN
    from herald.shared.jobs import redrive

    filters = redrive.Filters.parse(
        platform=args.platform,
        reason=args.reason,
        connection_id=args.connection_id,
        since=args.since,
        until=args.until,
        job_ids=getattr(args, "job_ids", None),
    )
    if args.action == "list":
        page = await redrive.list_dead_letters(
            rt.db, ADMIN, filters, include_redriven=args.include_redriven, limit=args.limit
        )
        return rows(page["items"], args.json, _letter_line)
    result = await redrive.redrive(
        rt.jobs(), ADMIN, filters, dry_run=args.dry_run, force=args.force, progress=True
    )
    out(result)
    return 0


def add_commands(sub: Commands) -> None:
    s = sub.add_parser("dlq", help="dead letters")
    dsub = s.add_subparsers(dest="action", required=True)
    for action in ("list", "redrive"):
        d = dsub.add_parser(
            action,
            help="newest first" if action == "list" else "re-queue the matching jobs",
        )
        d.add_argument("--platform", help="a platform name")
        d.add_argument("--reason", help="e.g. exhausted, permanent_error, auth_error")
        d.add_argument("--connection-id", help="one connection's dead letters")
        d.add_argument("--since", help="RFC 3339: dead-lettered at or after")
        d.add_argument("--until", help="RFC 3339: dead-lettered before")
        if action == "list":
            d.add_argument("--include-redriven", action="store_true", help="the redriven too")
            d.add_argument("--limit", type=int, default=50, help="at most this many (50)")
            d.add_argument("--json", action="store_true", help="a JSON list")
        else:
            d.add_argument(
                "--job-id", action="append", dest="job_ids", help="only this job (repeat)"
            )
            d.add_argument("--dry-run", action="store_true", help="only say what would be redriven")
            d.add_argument("--force", action="store_true", help="even if the post may be live")
    s.set_defaults(handler=with_runtime(dlq))
