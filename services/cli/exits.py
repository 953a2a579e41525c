"""What `herald` exits with, so a script can tell failures apart (docs/operations.md)."""

from __future__ import annotations

import psycopg

from herald.shared.errors import Conflict, NotFound, StoreUnavailable, ValidationFailed
from herald.shared.infra import redis_client

OK = 0
FAILED = 1  # anything else: a job watched that did not publish, an unexpected error
INVALID = 2  # invalid input: a bad argument (argparse's own 2) or a body the rules refused
NOT_FOUND = 3
CONFLICT = 4  # the state forbids it (e.g. cancel a published job), a reused key
STORE_AWAY = 5  # Postgres, Redis or Kafka did not answer; retry later
INTERRUPTED = 130

STORE_ERRORS: tuple[type[Exception], ...] = (
    StoreUnavailable,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    *redis_client.AWAY,
)


def code_for(exc: BaseException) -> int:
    if isinstance(exc, NotFound):
        return NOT_FOUND
    if isinstance(exc, Conflict):
        return CONFLICT
    if isinstance(exc, ValidationFailed):
        return INVALID
    if isinstance(exc, STORE_ERRORS):
        return STORE_AWAY
    return FAILED
