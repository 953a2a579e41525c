"""Every command of `herald` has help and an example; every option says what it does."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from herald.services.cli import build_parser


def _parsers(
    parser: argparse.ArgumentParser, path: str = "herald"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_command_has_an_example_and_every_option_a_help_text() -> None:
    root = build_parser()
    missing: list[str] = []
    top = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in top.choices.items():
        if not (command.epilog or "").startswith("example:"):
            missing.append(f"herald {name}: no example")
    for path, parser in _parsers(root):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "\n".join(missing)
