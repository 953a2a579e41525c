"""Structured JSON log lines on stderr. Only entry points call `configure`.

Work on jobs is logged through `JobLog`: every job at DEBUG, and at INFO one summary line
per interval (a count and the first few job ids), so the INFO log grows with time, not with
the number of jobs."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

# Attributes every LogRecord has; anything else passed through `extra=` becomes a field.
_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(service: str, level: str = "INFO") -> None:
    """Log to stderr at `level` (`HERALD_LOG_LEVEL`: INFO, or DEBUG for every job's line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "faust", "mode", "aiohttp.access", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


R = TypeVar("R")
FIRST = 5  # the jobs a summary line names
EVERY = 5.0  # seconds between two summary lines of one JobLog
_ALL: weakref.WeakSet[JobLog] = weakref.WeakSet()


class JobLog:
    """One kind of per-job event on a hot path (`each`, e.g. "job dispatched").

    Every job is logged at DEBUG as its own `each` line. At INFO, `summary` lines count the
    jobs: the first job after a quiet spell is logged at once, later ones at most once every
    `EVERY` seconds, each line with `count`, the `first` few jobs' fields, how many `more`,
    and (with `by`) the count of each value of that field."""

    def __init__(
        self, logger: logging.Logger, summary: str, each: str, *, by: str | None = None
    ) -> None:
        self.logger, self.summary, self.each, self.by = logger, summary, each, by
        self._count = 0
        self._first: list[dict[str, Any]] = []
        self._by: Counter[str] = Counter()
        self._last = float("-inf")  # time.monotonic() of the last summary line
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        _ALL.add(self)

    def add(
        self, jobs: Sequence[R], fields: Callable[[R], Mapping[str, Any]] | None = None
    ) -> None:
        """Count `jobs`, each shown by its `fields` (the job itself, without them). Fields are
        built only where a line shows them: every job's at DEBUG or with `by`, else only
        the first few jobs' (building every job's was 4 % of the batch route's CPU time)."""
        debug = self.logger.isEnabledFor(logging.DEBUG)
        if not jobs or not (debug or self.logger.isEnabledFor(logging.INFO)):
            return
        show: Callable[[Any], Mapping[str, Any]] = fields or _itself
        if debug or self.by is not None:
            for row in jobs:
                job = show(row)
                if debug:
                    self.logger.debug(self.each, extra=dict(job))
                if len(self._first) < FIRST:
                    self._first.append(dict(job))
                if self.by is not None:
                    self._by[str(job.get(self.by))] += 1
        else:
            self._first.extend(dict(show(row)) for row in jobs[: FIRST - len(self._first)])
        self._count += len(jobs)
        self._soon()

    def _soon(self) -> None:
        wait = self._last + EVERY - time.monotonic()
        if wait <= 0:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: the next add, `flush_all` or the exit
            return
        if self._timer is None or self._loop is not loop:  # a timer of a closed loop never runs
            self._timer, self._loop = loop.call_later(wait, self.flush), loop

    def flush(self) -> None:
        """The summary line of the jobs since the last one, if there were any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._count:
            return
        extra: dict[str, Any] = {"count": self._count, "first": self._first}
        if self._count > len(self._first):
            extra["more"] = self._count - len(self._first)
        if self.by is not None:
            extra[f"by_{self.by}"] = dict(self._by)
        self._count, self._first, self._by = 0, [], Counter()
        self._last = time.monotonic()
        self.logger.info(self.summary, extra=extra)


def _itself(job: Mapping[str, Any]) -> Mapping[str, Any]:
    return job


@atexit.register
def flush_all() -> None:
    """Every JobLog's pending summary line (a service calls this when it stops)."""
    for job_log in list(_ALL):
        job_log.flush()
