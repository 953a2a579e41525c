"""The fake Graph server for tests: it lives in `bench/graph_fake/` so that `herald bench soak`
uses the same one."""

from bench.graph_fake import (
    CALLS,
    DEFAULT_ACCOUNT,
    DEFAULT_TOKEN,
    FACEBOOK,
    INSTAGRAM,
    FakeGraph,
    LoggedRequest,
)

__all__ = [
    "CALLS",
    "DEFAULT_ACCOUNT",
    "DEFAULT_TOKEN",
    "FACEBOOK",
    "INSTAGRAM",
    "FakeGraph",
    "LoggedRequest",
]
