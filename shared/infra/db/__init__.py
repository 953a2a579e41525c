"""Postgres adapter: connection pools bound to the run's schema, and migrations."""

from herald.shared.infra.db.pool import Database, connect_sync

__all__ = ["Database", "connect_sync"]
