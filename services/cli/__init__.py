"""The `herald` entry point (`herald.services.cli:main`), one module per command group.
Results go to stdout alone; logs and progress go to stderr.

| module | commands |
|---|---|
| `checkout` | `stack`, `bench` (a checkout's developer tools) |
| `processes` | `migrate`, `topics`, `scheduler`, `publisher`, `results`, `api`, `run` |
| `jobs`, `watch` | `schedule`, `jobs` (`jobs watch`) |
| `keys` | `apikey`, `secrets` |
| `connections` | `connections`, `sandbox` |
| `dlq` | `dlq` |
"""

from __future__ import annotations

import argparse
import sys

import orjson
from pydantic import ValidationError

from herald.services.cli import checkout, connections, dlq, exits, jobs, keys, platforms, processes
from herald.services.cli.examples import add_examples
from herald.shared import __version__
from herald.shared.errors import ConfigError, DomainError, HeraldError
from herald.shared.infra.kafka.properties import client_properties
from herald.shared.infra.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="herald",
        description="Scheduled social-media publishing",
        epilog="exit codes: 0 done, 1 failed, 2 invalid input, 3 not found, 4 conflict,"
        " 5 a store (Postgres, Redis, Kafka) is away, 130 interrupted",
    )
    p.add_argument("--version", action="version", version=f"herald {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    checkout.add_stack(sub)
    processes.add_commands(sub)
    jobs.add_commands(sub)
    keys.add_commands(sub)
    connections.add_commands(sub)
    dlq.add_commands(sub)
    platforms.add_commands(sub)
    connections.add_sandbox(sub)
    checkout.add_bench(sub)
    add_examples(p)
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
        client_properties()  # a refused or unreadable HERALD_KAFKA_* setting: one line
    except ConfigError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args, settings))
    except DomainError as exc:
        sys.stderr.write(orjson.dumps(exc.to_body()).decode() + "\n")
        return exits.code_for(exc)
    except exits.STORE_ERRORS as exc:
        print(f"herald: a store is away ({type(exc).__name__}); retry later", file=sys.stderr)
        return exits.STORE_AWAY
    except HeraldError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return exits.FAILED
    except KeyboardInterrupt:
        return exits.INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
