"""`herald platforms`: the registered platforms, their media kinds and limits."""

from __future__ import annotations

import argparse
from typing import Any

from herald.services.cli.output import Commands, out


def platforms(args: argparse.Namespace, settings: Any) -> int:
    from herald.shared.platforms.registry import platforms as registry
    from herald.shared.platforms.table import markdown

    if args.markdown:
        print(markdown(registry()), end="")
    else:
        out([p.describe() for p in registry().values()])
    return 0


def add_commands(sub: Commands) -> None:
    s = sub.add_parser("platforms", help="the platforms Herald publishes to, and their limits")
    s.add_argument("--markdown", action="store_true", help="the README's table")
    s.set_defaults(handler=platforms)
