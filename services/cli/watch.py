"""`herald jobs watch`: follow jobs (given by id, a post's, or a connection's open ones)
live until each ends, a line per change on stdout (`--json`: one JSON object a line) and
the progress on stderr. Exits 0 when every job ended PUBLISHED, 1 when one ended otherwise
or `--timeout` passed first, 3 when there is nothing to watch."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from herald.services.cli import exits
from herald.services.cli.output import Commands, with_runtime


async def _targets(svc: Any, args: argparse.Namespace) -> list[str]:
    from herald.shared.domain.jobs import TERMINAL
    from herald.shared.domain.tenancy import ADMIN
    from herald.shared.errors import NotFound

    ids = list(args.job_ids)
    if args.post_id or args.connection_id:
        page = await svc.list_jobs(
            ADMIN, post_id=args.post_id, connection_id=args.connection_id, limit=500
        )
        items = page["items"]
        if args.connection_id:  # a connection's history is long: its open jobs
            items = [j for j in items if j["status"] not in TERMINAL]
        ids += [j["id"] for j in items]
    if not ids:
        raise NotFound("no job to watch (give job ids, --post-id or --connection-id)")
    return list(dict.fromkeys(ids))


def _line(job: dict[str, Any], as_json: bool) -> str:
    change = {
        "job_id": job["id"],
        "status": job["status"],
        "attempt_count": job["attempt_count"],
        "next_attempt_at": job["next_attempt_at"],
        "last_error": job["last_error"],
    }
    if as_json:
        return orjson.dumps(change).decode()
    error = job["last_error"]
    why = f"  {error.get('code')}: {error.get('message')}" if isinstance(error, dict) else ""
    when = time.strftime("%H:%M:%S")
    return f"{when}  {job['id']}  {job['status']:<16} attempt {job['attempt_count']}{why}"


async def watch(rt: Any, args: argparse.Namespace) -> int:
    from herald.shared.domain.jobs import TERMINAL, JobStatus
    from herald.shared.domain.tenancy import ADMIN

    svc = rt.jobs()
    ids = await _targets(svc, args)
    seen: dict[str, tuple[str, int]] = {}
    final: dict[str, str] = {}
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    while True:
        for job_id in ids:
            if job_id in final:
                continue
            job = await svc.get(ADMIN, job_id)
            state = (job["status"], job["attempt_count"])
            if seen.get(job_id) != state:
                seen[job_id] = state
                print(_line(job, args.json), flush=True)
            if job["status"] in TERMINAL:
                final[job_id] = job["status"]
        print(f"watch: {len(final)}/{len(ids)} ended", file=sys.stderr, flush=True)
        if len(final) == len(ids):
            published = all(s == JobStatus.PUBLISHED for s in final.values())
            return exits.OK if published else exits.FAILED
        if deadline is not None and time.monotonic() > deadline:
            print(
                f"watch: --timeout passed with {len(ids) - len(final)} job(s) open", file=sys.stderr
            )
            return exits.FAILED
        await asyncio.sleep(args.interval)


def add_watch(jsub: Commands) -> None:
    w = jsub.add_parser(
        "watch",
        help="follow jobs live until each ends (exit 0: all published)",
        description=__doc__,
        epilog="examples:\n  herald jobs watch 3f2c...9b 77aa...01\n"
        "  herald jobs watch --post-id 7d1e...a0 --json\n"
        "  herald jobs watch --connection-id 5f0c...e1 --timeout 600",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    w.add_argument("job_ids", nargs="*", help="job ids to follow")
    w.add_argument("--post-id", help="follow every job of this post")
    w.add_argument("--connection-id", help="follow this connection's jobs not yet ended")
    w.add_argument("--interval", type=float, default=1.0, help="seconds between looks (1)")
    w.add_argument("--timeout", type=float, help="give up (exit 1) after this many seconds")
    w.add_argument("--json", action="store_true", help="one JSON object a line per change")
    w.set_defaults(handler=with_runtime(watch))
