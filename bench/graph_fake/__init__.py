"""A local fake of the Instagram Graph API (content publishing), for tests and soaks.

It lives in `bench/` (installed with Herald, type-checked) rather than under `tests/`, so
that `herald bench soak`, which runs from a checkout without the test tree on its path, and
the tests import the same fake. `state` holds the documented behaviour, `server` the HTTP
front and scripted faults, `mix` the random faults of a soak.
"""

from bench.graph_fake.mix import FaultMix, soak_mix
from bench.graph_fake.model import (
    CALLS,
    DEFAULT_ACCOUNT,
    DEFAULT_TOKEN,
    FACEBOOK,
    INSTAGRAM,
    Container,
    LoggedRequest,
    Media,
)
from bench.graph_fake.server import FakeGraph

__all__ = [
    "CALLS",
    "DEFAULT_ACCOUNT",
    "DEFAULT_TOKEN",
    "FACEBOOK",
    "INSTAGRAM",
    "Container",
    "FakeGraph",
    "FaultMix",
    "LoggedRequest",
    "Media",
    "soak_mix",
]
