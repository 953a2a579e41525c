"""`herald apikey create|list|revoke` and `herald secrets rekey`: API keys, and the
encryption of secrets at rest (platform tokens, registered apps' client secrets)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from herald.services.cli.output import Commands, out, with_runtime


async def apikey(rt: Any, args: argparse.Namespace) -> int:
    from herald.shared.stores import tenants

    if args.action == "create":
        if not args.admin and not args.tenant:
            print("give --tenant T or --admin", file=sys.stderr)
            return 2
        _, key = await tenants.create_api_key(
            rt.db, tenant_id=args.tenant, admin=args.admin, label=args.label or ""
        )
        print(key)
        return 0
    if args.action == "list":
        keys = await tenants.list_api_keys(rt.db)
        out(
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
    await tenants.revoke_api_key(rt.db, args.key_id)
    print(f"revoked {args.key_id}", file=sys.stderr)
    return 0


async def secrets(rt: Any, args: argparse.Namespace) -> int:
    """Every secret at rest under the newest key: connection tokens, and the client secrets
    of the apps Herald registered on a host (a Mastodon instance)."""
    from herald.shared.accounts.oauth_apps import HostApps

    tokens, failed_tokens = await rt.connections().rekey()
    apps, failed_apps = await HostApps(rt.db, rt.cipher, rt.platform_env()).rekey()
    for what, ids in (("connection", failed_tokens), ("oauth app", failed_apps)):
        for row_id in ids:
            print(
                f"{what} {row_id}: no key of HERALD_SECRET_KEY decrypts its secret; left as it is",
                file=sys.stderr,
            )
    print(
        f"re-encrypted {tokens} tokens and {apps} oauth app secrets with key"
        f" {rt.cipher.newest_id!r}",
        file=sys.stderr,
    )
    out({"count": tokens + apps})
    return 1 if failed_tokens or failed_apps else 0


def add_commands(sub: Commands) -> None:
    s = sub.add_parser("apikey", help="API keys")
    ksub = s.add_subparsers(dest="action", required=True)
    k = ksub.add_parser("create", help="print a new key (shown once)")
    k.add_argument("--tenant", help="a tenant's key: sees that tenant's rows alone")
    k.add_argument("--admin", action="store_true", help="an admin key: sees every tenant")
    k.add_argument("--label", help="a note saying what the key is for")
    ksub.add_parser("list", help="every key as JSON (never the key itself)")
    k = ksub.add_parser("revoke", help="revoke a key at once")
    k.add_argument("key_id", help="the key's id (from apikey list)")
    s.set_defaults(handler=with_runtime(apikey))

    s = sub.add_parser("secrets", help="secrets at rest (tokens, registered apps' secrets)")
    ssub = s.add_subparsers(dest="action", required=True)
    ssub.add_parser("rekey", help="re-encrypt every secret at rest with the newest key")
    s.set_defaults(handler=with_runtime(secrets))
