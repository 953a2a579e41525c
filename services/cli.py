"""The `herald` entry point. Results go to stdout alone; logs and progress go to stderr."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import ValidationError

from herald.shared.domain.connection_rules import INSTAGRAM_LOGINS
from herald.shared.errors import DomainError, HeraldError
from herald.shared.infra.paths import checkout_tools
from herald.shared.infra.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _out(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _with_runtime(fn: Callable[[Any, argparse.Namespace], Awaitable[int]]) -> Handler:
    """Run an async command with the stores opened (the CLI acts as an administrator)."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        from herald.shared.infra.runtime import Runtime

        async def main() -> int:
            rt = Runtime.build(settings, db_pool_size=4)
            await rt.open()
            try:
                return await fn(rt, args)
            finally:
                await rt.close()

        return asyncio.run(main())

    return handler


# ---- infrastructure --------------------------------------------------------------------


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    checkout_tools("stack")  # the local stack's tooling lives in the checkout, not the package
    import stack

    action: Callable[[Settings], int] = {
        "up": stack.up,
        "down": stack.down,
        "status": stack.status,
    }[args.action]
    return action(settings)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from herald.shared.infra.db.migrate import migrate

    applied = migrate(settings.database_url, settings.db_schema)
    if applied:
        for m in applied:
            print(
                f"applied {m.version:04d}_{m.name} to schema {settings.db_schema}", file=sys.stderr
            )
    else:
        print(f"schema {settings.db_schema} is up to date", file=sys.stderr)
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from herald.shared.infra.kafka.admin import create_topics, load_topic_specs

    specs = load_topic_specs()
    created = create_topics(settings.kafka_bootstrap, specs, settings.topic_prefix)
    for spec in specs:
        name = settings.topic_prefix + spec.name
        state = "created" if name in created else "exists"
        print(
            f"{name}: {spec.partitions} partitions, retention.ms={spec.retention_ms} ({state})",
            file=sys.stderr,
        )
    return 0


# ---- services ----------------------------------------------------------------------------


def cmd_service(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "scheduler":
        from herald.services.scheduler.main import run
    elif args.command == "publisher":
        from herald.services.publisher.main import run
    elif args.command == "results":
        from herald.services.results.main import run
    else:
        from herald.services.api.main import run
    return run(settings)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from herald.services.runner import run_all

    return run_all(settings, publishers=args.publishers)


# ---- jobs ---------------------------------------------------------------------------------


async def _schedule(rt: Any, args: argparse.Namespace) -> int:
    from herald.shared.domain.tenancy import ADMIN

    body: dict[str, Any] = {
        "platform": args.platform,
        "media_asset_ids": args.media,
        "caption": args.caption or "",
    }
    if len(args.connection) == 1:
        body["connection_id"] = args.connection[0]
    else:
        body["connection_ids"] = args.connection
    for key in ("scheduled_at", "media_type", "publish_deadline"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    result = await rt.jobs().schedule(ADMIN, body, idempotency_key=args.idempotency_key)
    jobs = result.body.get("jobs", [result.body])
    for job in jobs:
        print(job["id"])
    return 0


async def _jobs(rt: Any, args: argparse.Namespace) -> int:
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
        if args.json:
            _out(page["items"])
        else:
            for job in page["items"]:
                print(
                    f"{job['id']}  {job['status']:<16} {job['platform']:<10} "
                    f"attempt {job['attempt_count']}  scheduled {job['scheduled_at']}"
                )
        return 0
    if args.action == "show":
        job = await svc.get(ADMIN, args.job_id)
        attempts = await svc.attempts(ADMIN, args.job_id)
        if args.json:
            _out(job | {"attempts": attempts})
        else:
            print(job_story(job, attempts))
        return 0
    if args.action == "retry":
        _out(await svc.retry(ADMIN, args.job_id, force=args.force))
        return 0
    _out(await svc.cancel(ADMIN, args.job_id))
    return 0


# ---- keys, connections, dead letters, sandbox ------------------------------------------------


async def _apikey(rt: Any, args: argparse.Namespace) -> int:
    from herald.shared.domain import tenancy

    if args.action == "create":
        if not args.admin and not args.tenant:
            print("give --tenant T or --admin", file=sys.stderr)
            return 2
        _, key = await tenancy.create_api_key(
            rt.db, tenant_id=args.tenant, admin=args.admin, label=args.label or ""
        )
        print(key)
        return 0
    if args.action == "list":
        keys = await tenancy.list_api_keys(rt.db)
        _out(
            [
                {
                    **k,
                    "created_at": str(k["created_at"]),
                    "revoked_at": str(k["revoked_at"]) if k["revoked_at"] else None,
                }
                for k in keys
            ]
        )
        return 0
    await tenancy.revoke_api_key(rt.db, args.key_id)
    print(f"revoked {args.key_id}", file=sys.stderr)
    return 0


async def _secrets(rt: Any, args: argparse.Namespace) -> int:
    count, failed = await rt.connections().rekey()
    for connection_id in failed:
        print(
            f"connection {connection_id}: no key of HERALD_SECRET_KEY decrypts its token;"
            " left as it is",
            file=sys.stderr,
        )
    print(f"re-encrypted {count} tokens with key {rt.cipher.newest_id!r}", file=sys.stderr)
    _out({"count": count})
    return 1 if failed else 0


def _read_token(platform: str) -> str | None:
    if sys.stdin is None or sys.stdin.isatty():
        if platform == "sandbox":
            return None
        return getpass.getpass("access token: ")  # prompts on the terminal, never echoed
    token = sys.stdin.read().strip()
    return token or None


async def _connections(rt: Any, args: argparse.Namespace) -> int:
    from herald.shared.domain.tenancy import ADMIN

    store = rt.connections()
    if args.action == "list":
        _out(await store.list_all(ADMIN, platform=args.platform))
        return 0
    metadata = orjson.loads(args.metadata) if args.metadata else {}
    if args.account_id:
        metadata["instagramBusinessAccountId"] = args.account_id
    if args.login:
        metadata["login"] = args.login
    body = {
        "platform": args.platform,
        "name": args.name,
        "metadata": metadata,
        "tenant_id": args.tenant or "default",
    }
    token = _read_token(args.platform)
    if token:
        body["access_token"] = token
    created = await store.create(ADMIN, body)
    print(created["id"])
    return 0


async def _dlq(rt: Any, args: argparse.Namespace) -> int:
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
        if args.json:
            _out(page["items"])
        else:
            for d in page["items"]:
                print(
                    f"{d['created_at']}  {d['reason']:<16} job {d['job_id']} attempt {d['attempt']}"
                )
        return 0
    result = await redrive.redrive(
        rt.jobs(), ADMIN, filters, dry_run=args.dry_run, force=args.force, progress=True
    )
    _out(result)
    return 0


async def _sandbox(rt: Any, args: argparse.Namespace) -> int:
    rows = await rt.db.fetch(
        "SELECT job_id, attempt, connection_id, published_at FROM sandbox_posts ORDER BY id"
    )
    from herald.shared.events import iso

    posts = [
        {
            "job_id": str(r["job_id"]),
            "attempt": r["attempt"],
            "connection_id": str(r["connection_id"]),
            "published_at": iso(r["published_at"]),
        }
        for r in rows
    ]
    if args.json:
        sys.stdout.write(orjson.dumps(posts).decode() + "\n")
    else:
        for p in posts:
            print(f"{p['published_at']}  job {p['job_id']} attempt {p['attempt']}")
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    checkout_tools("bench")  # the benchmarks live in the checkout, not in the package
    from bench.cli import run_bench

    return int(run_bench(args, settings))


# ---- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="herald", description="Scheduled social-media publishing")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stack", help="the local Kafka, Redis, Postgres and Prometheus")
    s.add_argument("action", choices=["up", "down", "status"])
    s.set_defaults(handler=cmd_stack)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=cmd_migrate)
    s = sub.add_parser("topics", help="Kafka topics")
    s.add_argument("action", choices=["create"])
    s.set_defaults(handler=cmd_topics)
    for name in ("scheduler", "publisher", "results", "api"):
        sub.add_parser(name, help=f"run the {name} service").set_defaults(handler=cmd_service)
    s = sub.add_parser("run", help="every service as child processes, for local use")
    s.add_argument("--publishers", type=int, default=2)
    s.set_defaults(handler=cmd_run)

    s = sub.add_parser("schedule", help="schedule a post; prints one job id per line")
    s.add_argument("--platform", required=True)
    s.add_argument(
        "--connection",
        "--connection-id",
        action="append",
        required=True,
        help="connection id (repeat for several accounts)",
    )
    s.add_argument("--media", "--media-asset-id", action="append", required=True)
    s.add_argument("--caption")
    s.add_argument("--at", "--scheduled-at", dest="scheduled_at")
    s.add_argument("--media-type", choices=["IMAGE", "CAROUSEL", "REELS", "STORIES"])
    s.add_argument("--deadline", "--publish-deadline", dest="publish_deadline")
    s.add_argument("--idempotency-key")
    s.set_defaults(handler=_with_runtime(_schedule))

    s = sub.add_parser("jobs", help="list, show, retry or cancel jobs")
    jsub = s.add_subparsers(dest="action", required=True)
    j = jsub.add_parser("list")
    j.add_argument("--status")
    j.add_argument("--platform")
    j.add_argument("--connection-id")
    j.add_argument("--post-id")
    j.add_argument("--limit", type=int, default=50)
    j.add_argument("--json", action="store_true")
    for action in ("show", "retry", "cancel"):
        j = jsub.add_parser(action)
        j.add_argument("job_id")
        j.add_argument("--json", action="store_true")
        if action == "retry":
            j.add_argument("--force", action="store_true")
    s.set_defaults(handler=_with_runtime(_jobs))

    s = sub.add_parser("apikey", help="API keys")
    ksub = s.add_subparsers(dest="action", required=True)
    k = ksub.add_parser("create")
    k.add_argument("--tenant")
    k.add_argument("--admin", action="store_true")
    k.add_argument("--label")
    ksub.add_parser("list")
    k = ksub.add_parser("revoke")
    k.add_argument("key_id")
    s.set_defaults(handler=_with_runtime(_apikey))

    s = sub.add_parser("secrets", help="connection tokens at rest")
    ssub = s.add_subparsers(dest="action", required=True)
    ssub.add_parser("rekey", help="re-encrypt every token with the newest HERALD_SECRET_KEY key")
    s.set_defaults(handler=_with_runtime(_secrets))

    s = sub.add_parser("connections", help="platform connections (token from stdin)")
    csub = s.add_subparsers(dest="action", required=True)
    c = csub.add_parser("add")
    c.add_argument("--platform", required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--tenant")
    c.add_argument("--account-id", help="instagramBusinessAccountId")
    c.add_argument("--login", choices=INSTAGRAM_LOGINS, help="instagram: the login (Graph host)")
    c.add_argument("--metadata", help="JSON object")
    c = csub.add_parser("list")
    c.add_argument("--platform")
    c.add_argument("--json", action="store_true")
    s.set_defaults(handler=_with_runtime(_connections))

    s = sub.add_parser("dlq", help="dead letters")
    dsub = s.add_subparsers(dest="action", required=True)
    for action in ("list", "redrive"):
        d = dsub.add_parser(action)
        d.add_argument("--platform")
        d.add_argument("--reason")
        d.add_argument("--connection-id")
        d.add_argument("--since")
        d.add_argument("--until")
        if action == "list":
            d.add_argument("--include-redriven", action="store_true")
            d.add_argument("--limit", type=int, default=50)
            d.add_argument("--json", action="store_true")
        else:
            d.add_argument("--job-id", action="append", dest="job_ids")
            d.add_argument("--dry-run", action="store_true")
            d.add_argument("--force", action="store_true")
    s.set_defaults(handler=_with_runtime(_dlq))

    s = sub.add_parser("sandbox", help="the sandbox platform")
    ssub = s.add_subparsers(dest="action", required=True)
    sp = ssub.add_parser("posts")
    sp.add_argument("--json", action="store_true")
    s.set_defaults(handler=_with_runtime(_sandbox))

    s = sub.add_parser("bench", help="benchmarks (print figures)")
    s.add_argument(
        "scenario",
        choices=["burst", "steady", "scale", "memory", "limits", "soak", "clean"],
        help="`clean` removes the topics, schemas and Redis keys killed bench runs left behind;"
        " `soak` runs Instagram jobs against the fake Graph server with faults and kills",
    )
    s.add_argument("-n", "--jobs", type=int, default=None)
    s.add_argument("--rate", type=float, default=None)
    s.add_argument("--seconds", type=float, default=None)
    s.add_argument("--publishers", type=int, default=None)
    s.add_argument("--latency-ms", type=float, default=None)
    s.add_argument("--accounts", type=int, default=None, help="soak: Instagram accounts")
    s.add_argument("--no-limits", action="store_true", help="skip the building-block ceilings")
    s.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the scenario N times and print the median of every figure, with its range",
    )
    s.add_argument("--out", help="folder for the JSON and PNG results (default bench/results)")
    s.set_defaults(handler=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:  # one line per bad setting, never a traceback
        for error in exc.errors():
            name = "_".join(str(p) for p in error["loc"]).upper()
            where = f"HERALD_{name}: " if name else ""
            print(f"herald: {where}{error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args, settings))
    except DomainError as exc:
        sys.stderr.write(orjson.dumps(exc.to_body()).decode() + "\n")
        return 1
    except HeraldError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
