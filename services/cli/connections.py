"""`herald connections add|list|show` (the token from standard input, never an argument) and
`herald sandbox posts` (what the sandbox platform accepted)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

import orjson

from herald.services.cli.output import Commands, out, rows, with_runtime
from herald.shared.platforms.registry import platforms


def read_token(platform: str) -> str | None:
    if sys.stdin is None or sys.stdin.isatty():
        plugin = platforms().get(platform)
        if plugin is not None and not plugin.account.token_required:
            return None
        return getpass.getpass("access token: ")  # prompts on the terminal, never echoed
    token = sys.stdin.read().strip()
    return token or None


async def connections(rt: Any, args: argparse.Namespace) -> int:
    from herald.shared.domain.tenancy import ADMIN

    store = rt.connections()
    if args.action == "list":
        out(await store.list_all(ADMIN, platform=args.platform))
        return 0
    if args.action == "show":
        out(await store.get(ADMIN, args.id))
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
    token = read_token(args.platform)
    if token:
        body["access_token"] = token
    created = await store.create(ADMIN, body)
    print(created["id"])
    return 0


async def sandbox(rt: Any, args: argparse.Namespace) -> int:
    from herald.services.publisher.platforms import sandbox as platform

    posts = await platform.posts(rt.db)
    if args.json:  # one line: the list can be long
        sys.stdout.write(orjson.dumps(posts).decode() + "\n")
        return 0
    return rows(
        posts, False, lambda p: f"{p['published_at']}  job {p['job_id']} attempt {p['attempt']}"
    )


def add_commands(sub: Commands) -> None:
    s = sub.add_parser("connections", help="platform connections (token from stdin)")
    csub = s.add_subparsers(dest="action", required=True)
    c = csub.add_parser("add", help="store a connection; prints its id")
    c.add_argument("--platform", required=True, help="a platform name")
    c.add_argument("--name", required=True, help="a name people recognise")
    c.add_argument("--tenant", help="the tenant owning it (default: default)")
    c.add_argument("--account-id", help="instagramBusinessAccountId")
    c.add_argument("--login", help="instagram: the login (Graph host): facebook or instagram")
    c.add_argument("--metadata", help="JSON object")
    c = csub.add_parser("list", help="every connection")
    c.add_argument("--platform", help="a platform name")
    c.add_argument("--json", action="store_true", help="JSON (the default output)")
    c = csub.add_parser("show", help="one connection: status, metadata, token expiry and refresh")
    c.add_argument("id", help="the connection id")
    c.add_argument("--json", action="store_true", help="JSON")
    s.set_defaults(handler=with_runtime(connections))


def add_sandbox(sub: Commands) -> None:
    s = sub.add_parser("sandbox", help="the sandbox platform")
    ssub = s.add_subparsers(dest="action", required=True)
    sp = ssub.add_parser("posts", help="what the sandbox accepted")
    sp.add_argument("--json", action="store_true", help="a JSON list")
    s.set_defaults(handler=with_runtime(sandbox))
