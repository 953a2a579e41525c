"""Every file or folder of the checkout the docs name in backquotes exists: a module that
moves takes its mentions along."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("shared", "services", "bench", "tests", "deploy", "docs", "schemas", "herald", "stack")
# `shared/infra/kafka/lag.py`, `services/scheduler/`, `deploy/helm/values.yaml`: a path of
# the checkout; a glob, a placeholder or a URL is not one.
PATH = re.compile(r"`((?:" + "|".join(TOP) + r")/[A-Za-z0-9_./-]*)`")


def named_paths() -> list[tuple[str, str]]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [
        (str(doc.relative_to(ROOT)), match)
        for doc in docs
        for match in PATH.findall(doc.read_text())
    ]


def test_the_docs_name_only_paths_that_exist() -> None:
    found = named_paths()
    assert len(found) > 100  # the pattern still finds the docs' paths
    missing = [(doc, path) for doc, path in found if not (ROOT / path).exists()]
    assert missing == []
