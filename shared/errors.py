"""Herald's exception tree.

HeraldError
├── ConfigError          settings or environment are unusable
├── StoreUnavailable     Kafka, Redis or Postgres does not answer (retry later, 503)
├── InvalidMessage       a topic message fails its schema (goes to publish.dlq)
├── Stopped              the service stopped while a step waited to be retried
└── DomainError          a request that parses but is refused
    ├── ValidationFailed     422, with per-field messages
    ├── NotFound             404 for the resource in the path
    └── Conflict             409, a state conflict
"""

from __future__ import annotations

from typing import Any


class HeraldError(Exception):
    """Root of every error Herald raises on purpose."""


class ConfigError(HeraldError):
    pass


class StoreUnavailable(HeraldError):
    def __init__(self, store: str, detail: str = "") -> None:
        super().__init__(f"{store} is unavailable{': ' + detail if detail else ''}")
        self.store = store


class Stopped(HeraldError):
    """The service stopped while a step waited to be retried (`shared/infra/retry.py`); the
    step was not done, and the next process redoes it."""


class InvalidMessage(HeraldError):
    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class DomainError(HeraldError):
    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, fields: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields

    def to_body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            err["fields"] = self.fields
        return {"error": err}


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"
