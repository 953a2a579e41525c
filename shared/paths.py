"""Paths that resolve from the checkout root, never from the working directory."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = ROOT / "schemas"
DEPLOY_DIR = ROOT / "deploy"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "db" / "migrations"
