"""`herald schedule` and `herald jobs list|show|retry|cancel`: the job service, as an
administrator."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from herald.services.cli.output import Commands, out, rows, with_runtime
from herald.services.cli.watch import add_watch
from herald.shared.errors import ValidationFailed


async def schedule(rt: Any, args: argparse.Namespace) -> int:
    from herald.shared.domain.tenancy import ADMIN  # the stores' modules load with the command

    if args.file is not None:
        return await schedule_file(rt, args)
    if not args.connection:
        raise ValidationFailed("give --connection, or --file", fields={"--connection": "missing"})

    body: dict[str, Any] = {"media_asset_ids": args.media or [], "caption": args.caption or ""}
    if args.platform is not None:
        body["platform"] = args.platform
    overrides = dict(args.caption_for or [])
    if overrides:
        body["caption_overrides"] = overrides
    if len(args.connection) == 1:
        body["connection_id"] = args.connection[0]
    else:
        body["connection_ids"] = args.connection
    for key in ("scheduled_at", "media_type", "publish_deadline"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    result = await rt.jobs().schedule(ADMIN, body, idempotency_key=args.idempotency_key)
    if args.json:
        out(result.body)
        return 0
    for job in result.body.get("jobs", [result.body]):
        print(job["id"])
    return 0


async def schedule_file(rt: Any, args: argparse.Namespace) -> int:
    """`herald schedule --file`: the jobs of a file shaped as the batch route's body
    (`{"jobs": [...]}`, each job may carry its `idempotency_key`), each scheduled on its own
    (a thousand to a transaction). Prints a line per job: its id (its post's ids, space
    separated), or its status and error; exits with the first refused job's exit code."""
    import orjson

    from herald.services.cli.exits import code_for
    from herald.shared.domain.tenancy import ADMIN
    from herald.shared.jobs.batch import schedule_bodies

    try:
        data = orjson.loads(await asyncio.to_thread(Path(args.file).read_bytes))
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValidationFailed(f"cannot read {args.file}", fields={"--file": str(exc)}) from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise ValidationFailed('the file must hold {"jobs": [...]}', fields={"--file": "shape"})
    outcomes = await schedule_bodies(rt.jobs(), ADMIN, data["jobs"])
    if args.json:
        out({"items": [o.item() for o in outcomes]})
    else:
        for o in outcomes:
            if o.error is not None:
                print(f"{o.status} {o.error.code}: {o.error.message} {o.error.fields or ''}")
            else:
                assert o.body is not None
                print(" ".join(j["id"] for j in o.body.get("jobs", [o.body])))
    refused = [o.error for o in outcomes if o.error is not None]
    return code_for(refused[0]) if refused else 0


def _override(value: str) -> tuple[str, str]:
    platform, sep, caption = value.partition("=")
    if not sep or not platform:
        raise argparse.ArgumentTypeError("expected PLATFORM=CAPTION, e.g. x=hello")
    return platform, caption


def _job_line(job: dict[str, Any]) -> str:
    return (
        f"{job['id']}  {job['status']:<16} {job['platform']:<10} "
        f"attempt {job['attempt_count']}  scheduled {job['scheduled_at']}"
    )


async def jobs(rt: Any, args: argparse.Namespace) -> int:
    from herald.shared.domain.tenancy import ADMIN
    from herald.shared.jobs.report import job_story

    svc = rt.jobs()
    if args.action == "list":
        page = await svc.list_jobs(
            ADMIN,
            status=args.status,
            platform=args.platform,
            connection_id=args.connection_id,
            post_id=args.post_id,
            limit=args.limit,
        )
        return rows(page["items"], args.json, _job_line)
    if args.action == "show":
        job = await svc.get(ADMIN, args.job_id)
        attempts = await svc.attempts(ADMIN, args.job_id)
        if args.json:
            out(job | {"attempts": attempts})
        else:
            print(job_story(job, attempts))
        return 0
    if args.action == "retry":
        out(await svc.retry(ADMIN, args.job_id, force=args.force))
        return 0
    out(await svc.cancel(ADMIN, args.job_id))
    return 0


def add_commands(sub: Commands) -> None:
    s = sub.add_parser("schedule", help="schedule a post; prints one job id per line")
    s.add_argument("--platform", help="optional: every connection must be on it")
    s.add_argument(
        "--connection",
        "--connection-id",
        action="append",
        help="connection id (repeat for several accounts, on any networks); required"
        " without --file",
    )
    s.add_argument(
        "--media",
        "--media-asset-id",
        action="append",
        help="an https URL (repeat); none: a text post",
    )
    s.add_argument("--caption", help="the post's text")
    s.add_argument(
        "--caption-for",
        action="append",
        type=_override,
        metavar="PLATFORM=CAPTION",
        help="the caption on one network instead of --caption (repeatable)",
    )
    s.add_argument(
        "--at", "--scheduled-at", dest="scheduled_at", help="RFC 3339 with an offset (default: now)"
    )
    s.add_argument("--media-type", help="one of the network's kinds: herald platforms")
    s.add_argument(
        "--deadline", "--publish-deadline", dest="publish_deadline", help="RFC 3339; later: missed"
    )
    s.add_argument("--idempotency-key", help="the same key and body again schedule nothing new")
    s.add_argument("--json", action="store_true", help="print the job (or post) as JSON")
    s.add_argument(
        "--file",
        help='many jobs: a JSON file {"jobs": [...]} as POST /publishing/jobs:batch takes it'
        " (the other options are then ignored); prints a line per job",
    )
    s.set_defaults(handler=with_runtime(schedule))

    s = sub.add_parser("jobs", help="list, show, retry or cancel jobs")
    jsub = s.add_subparsers(dest="action", required=True)
    j = jsub.add_parser("list", help="newest first")
    j.add_argument("--status", help="e.g. SCHEDULED, DEAD_LETTERED")
    j.add_argument("--platform", help="a platform name")
    j.add_argument("--connection-id", help="one connection's jobs")
    j.add_argument("--post-id", help="one post's jobs")
    j.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    j.add_argument("--json", action="store_true", help="a JSON list")
    helps = {
        "show": "the job's whole story: attempts, errors, provider ids",
        "retry": "re-queue a DEAD_LETTERED or RETRY_SCHEDULED job now",
        "cancel": "cancel before the platform call starts",
    }
    for action, text in helps.items():
        j = jsub.add_parser(action, help=text)
        j.add_argument("job_id", help="the job's id")
        j.add_argument("--json", action="store_true", help="the job as JSON")
        if action == "retry":
            j.add_argument("--force", action="store_true", help="even if the post may be live")
    add_watch(jsub)
    s.set_defaults(handler=with_runtime(jobs))
