"""What every command group shares: the handler's shape, JSON on stdout, one page of rows,
and the stores opened for a command that acts on them as an administrator."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias

import orjson

from herald.shared.infra.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # `herald <command>`


def out(value: Any) -> None:
    """A result on stdout, as indented JSON."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def rows(items: Iterable[dict[str, Any]], as_json: bool, line: Callable[[Any], str]) -> int:
    """One page of items: the JSON list with `--json`, else one line per item."""
    items = list(items)
    if as_json:
        out(items)
    else:
        for item in items:
            print(line(item))
    return 0


def with_runtime(fn: Callable[[Any, argparse.Namespace], Awaitable[int]]) -> Handler:
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
