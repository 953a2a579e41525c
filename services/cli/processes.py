"""`herald migrate`, `herald topics create`, the four services in the foreground, and
`herald run` (every service as a child process)."""

from __future__ import annotations

import argparse
import sys

from herald.services.cli.output import Commands
from herald.shared.infra.settings import Settings

SERVICES = ("scheduler", "publisher", "results", "api")


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from herald.shared.infra.access import verify_postgres
    from herald.shared.infra.db.migrate import migrate

    asyncio.run(verify_postgres(settings.database_url))  # a refused login: one line
    applied = migrate(settings.database_url, settings.db_schema)
    if applied:
        for m in applied:
            print(
                f"applied {m.version:04d}_{m.name} to schema {settings.db_schema}", file=sys.stderr
            )
    else:
        print(f"schema {settings.db_schema} is up to date", file=sys.stderr)
    return 0


def topics(args: argparse.Namespace, settings: Settings) -> int:
    from herald.shared.infra.kafka.access import verify_access
    from herald.shared.infra.kafka.admin import (
        create_topics,
        grow_partitions,
        load_topic_specs,
        partition_counts,
    )

    bootstrap, specs = settings.kafka_bootstrap, load_topic_specs()
    verify_access(bootstrap)
    created = create_topics(bootstrap, specs, settings.topic_prefix)
    names = [settings.topic_prefix + spec.name for spec in specs]
    grown = grow_partitions(bootstrap, names, args.partitions) if args.partitions else {}
    # A topic just grown has the count Kafka acknowledged, whatever a lagging broker says.
    counts = partition_counts(bootstrap, names) | {n: new for n, (_, new) in grown.items()}
    for name, spec in zip(names, specs, strict=True):
        if name in grown:
            state = f"grown from {grown[name][0]} partitions"
        elif name in created:
            state = "created"
        elif args.partitions and counts.get(name, 0) > args.partitions:
            state = f"exists; Kafka never shrinks a topic below its {counts[name]}"
        else:
            state = "exists"
        print(
            f"{name}: {counts.get(name, spec.partitions)} partitions,"
            f" retention.ms={spec.retention_ms} ({state})",
            file=sys.stderr,
        )
    return 0


def service(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "scheduler":
        from herald.services.scheduler.main import run
    elif args.command == "publisher":
        from herald.services.publisher.main import run
    elif args.command == "results":
        from herald.services.results.main import run
    else:
        from herald.services.api.main import run
    return run(settings)


def run_all(args: argparse.Namespace, settings: Settings) -> int:
    from herald.services.runner import run_all

    return run_all(settings, publishers=args.publishers)


def add_commands(sub: Commands) -> None:
    sub.add_parser("migrate", help="apply database migrations").set_defaults(handler=migrate)
    s = sub.add_parser("topics", help="Kafka topics")
    s.add_argument("action", choices=["create"], help="create: make the missing topics")
    s.add_argument(
        "--partitions",
        type=int,
        default=0,
        help="grow every topic to at least N partitions (Kafka never shrinks them)",
    )
    s.set_defaults(handler=topics)
    for name in SERVICES:
        sub.add_parser(name, help=f"run the {name} service").set_defaults(handler=service)
    s = sub.add_parser("run", help="every service as child processes, for local use")
    s.add_argument("--publishers", type=int, default=2, help="publisher copies to start")
    s.set_defaults(handler=run_all)
