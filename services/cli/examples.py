"""One example per command, shown at the end of its `--help`."""

from __future__ import annotations

import argparse

EXAMPLES = {
    "stack": "herald stack up            # install what is missing, start Kafka, Redis, ...",
    "migrate": "herald migrate",
    "topics": "herald topics create",
    "scheduler": "herald scheduler",
    "publisher": "herald publisher",
    "results": "herald results",
    "api": "HERALD_API_PORT=8080 herald api",
    "run": "herald run --publishers 2   # every service, Ctrl-C stops them",
    "schedule": "herald schedule --platform sandbox --connection 5f0c...e1"
    " --media https://cdn.example.com/cat.jpg --caption 'Hello' --at 2026-05-01T09:30:00+02:00",
    "jobs": "herald jobs list --status DEAD_LETTERED --json\n"
    "  herald jobs watch --post-id 7d1e...a0   # follow until every job ends",
    "apikey": "herald apikey create --tenant acme --label 'ops page'",
    "secrets": "herald secrets rekey",
    "connections": "herald connections list --platform instagram --json",
    "dlq": "herald dlq redrive --reason exhausted --dry-run",
    "sandbox": "herald sandbox posts --json",
    "bench": "herald bench burst",
    "platforms": "herald platforms --markdown   # the README's table of networks and limits",
}


def add_examples(parser: argparse.ArgumentParser) -> None:
    """Each command's help ends with its example (and the exit codes, on `herald -h`)."""
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        choices = getattr(action, "choices", None) or {}
        for name, command in choices.items():
            if name in EXAMPLES:
                command.epilog = "example:\n  " + EXAMPLES[name]
                command.formatter_class = argparse.RawDescriptionHelpFormatter
