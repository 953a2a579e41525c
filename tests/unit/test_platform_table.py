"""The README's platform table is the registry's: `herald platforms --markdown` prints it,
and the README holds exactly that (regenerate with the command when a plugin changes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from herald.services.cli import main
from herald.shared.platforms.registry import platforms
from herald.shared.platforms.table import markdown, section

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_is_the_registrys() -> None:
    assert section(README.read_text()) == markdown(platforms())


def test_each_platform_has_a_row_with_its_kinds_and_limits() -> None:
    table = markdown(platforms())
    for name, plugin in platforms().items():
        (row,) = [line for line in table.splitlines() if f"| `{name}` |" in line]
        assert all(f"`{k.name}`" in row for k in plugin.media.kinds)
        assert f"{plugin.media.caption.chars} " in row
    assert "280 weighted characters" in table  # X counts its own way
    assert "300 graphemes" in table  # so does Bluesky


def test_the_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["platforms", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown(platforms())
