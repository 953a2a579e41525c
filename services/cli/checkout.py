"""`herald stack` and `herald bench`: the developer tools of a checkout. They are not part
of the installed package; installed from a wheel, each answers one line that it needs a
checkout."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from herald.services.cli.output import Commands
from herald.shared.infra.paths import checkout_tools
from herald.shared.infra.settings import Settings

SCENARIOS = (
    "burst",
    "steady",
    "latency",
    "fairness",
    "scale",
    "memory",
    "limits",
    "soak",
    "ingress",
    "clean",
)


def stack(args: argparse.Namespace, settings: Settings) -> int:
    checkout_tools("stack")
    import stack

    if args.action == "up":
        return int(stack.up(settings, brokers=args.brokers, secure=args.secure))
    action: Callable[[Settings], int] = {"down": stack.down, "status": stack.status}[args.action]
    return action(settings)


def bench(args: argparse.Namespace, settings: Settings) -> int:
    checkout_tools("bench")
    from bench.cli import run_bench

    return int(run_bench(args, settings))


def add_stack(sub: Commands) -> None:
    s = sub.add_parser("stack", help="the local Kafka, Redis, Postgres and Prometheus")
    s.add_argument(
        "action",
        choices=["up", "down", "status"],
        help="up: install what is missing and start; down: stop; status: what runs where",
    )
    s.add_argument(
        "--brokers",
        type=int,
        default=None,
        help="up: KRaft nodes in the Kafka cluster (chosen when it is first formatted; 1)",
    )
    s.add_argument(
        "--secure",
        action="store_true",
        default=None,
        help="up: add a SASL_SSL listener with a SCRAM user and a local CA (at first format)",
    )
    s.set_defaults(handler=stack)


def add_bench(sub: Commands) -> None:
    s = sub.add_parser("bench", help="benchmarks (print figures)")
    s.add_argument(
        "scenario",
        choices=SCENARIOS,
        help="`clean` removes the topics, schemas and Redis keys killed bench runs left behind;"
        " `soak` runs Instagram jobs against the fake Graph server with faults and kills;"
        " `latency` times a lone job, then 100, 1,000 and 5,000 jobs/s, and arq beside;"
        " `ingress` measures scheduling: the single and batch routes (through hey) and"
        " publish.schedule; `fairness` times another tenant's jobs behind one tenant's burst",
    )
    s.add_argument(
        "-n",
        "--jobs",
        type=int,
        default=None,
        help="jobs in the run (burst, soak, ingress; fairness: the busy tenant's, default 100,000)",
    )
    s.add_argument("--rate", type=float, default=None, help="steady: jobs per second")
    s.add_argument(
        "--seconds", type=float, default=None, help="steady, latency: how long to send per rate"
    )
    s.add_argument("--publishers", type=int, default=None, help="publisher copies to run")
    s.add_argument(
        "--latency-ms", type=float, default=None, help="the sandbox platform's call duration"
    )
    s.add_argument(
        "--accounts",
        type=int,
        default=None,
        help="soak: Instagram accounts; fairness: the busy tenant's (default 48)",
    )
    s.add_argument("--no-limits", action="store_true", help="skip the building-block ceilings")
    s.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the scenario N times and print the median of every figure, with its range",
    )
    s.add_argument("--out", help="folder for the JSON and PNG results (default bench/results)")
    s.set_defaults(handler=bench)
