"""Faults drawn at random, for soaks: every call of a kind draws one with its probabilities
(after the scripted ones), and every new container may process slowly or end in ERROR."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.graph_fake.model import MESSAGES, Container, Fault, GraphFault, buc_header

if TYPE_CHECKING:
    from bench.graph_fake.state import GraphState

Make = Callable[[str], Fault]  # the account → a fault


@dataclass(frozen=True)
class FaultMix:
    """``faults[call]``: (probability, fault) pairs; ``slow[kind]``: (probability, seconds of
    processing on the fake's clock); ``container_errors``: (probability, ERROR subcode)."""

    faults: Mapping[str, Sequence[tuple[float, str, Make]]] = field(default_factory=dict)
    slow: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    container_errors: Sequence[tuple[float, int]] = ()

    def draw(self, call: str, account: str, rng: random.Random) -> Fault | None:
        u = rng.random()
        for probability, _, make in self.faults.get(call, ()):
            if u < probability:
                return make(account)
            u -= probability
        return None

    def on_create(self, state: GraphState, c: Container, rng: random.Random) -> None:
        probability, seconds = self.slow.get(c.kind, (0.0, 0.0))
        if rng.random() < probability:
            c.ready_at = c.created_at + state.scaled(seconds)
        u = rng.random()
        for p, subcode in self.container_errors:
            if u < p and not c.error_text:
                c.error_text = f"Error: Media upload has failed with error code {subcode}"
            u -= p

    def kinds(self) -> dict[str, list[str]]:
        """The fault names per call (for reports)."""
        return {call: [name for _, name, _ in entries] for call, entries in self.faults.items()}


def error(
    code: int, subcode: int | None = None, *, commit: bool = False, status: int = 400
) -> Make:
    def make(account: str) -> Fault:
        transient = code in (1, 2) or None
        err = GraphFault(
            code,
            MESSAGES.get(code, "Invalid parameter"),
            subcode=subcode,
            status=status,
            is_transient=transient,
        )
        return Fault("error", commit, err)

    return make


def throttled(minutes: int = 1) -> Make:
    def make(account: str) -> Fault:
        headers = {"X-Business-Use-Case-Usage": buc_header(account, 100, minutes)}
        err = GraphFault(80002, MESSAGES[80002], is_transient=True, headers=headers)
        return Fault("error", False, err)

    return make


def bare_429(retry_after: float) -> Make:
    return lambda account: Fault("bare", status=429, headers={"Retry-After": f"{retry_after:g}"})


def dropped(*, commit: bool) -> Make:
    return lambda account: Fault("drop", commit)


def hung(seconds: float, *, commit: bool) -> Make:
    return lambda account: Fault("hang", commit, seconds=seconds)


def slow(seconds: float) -> Make:
    return lambda account: Fault("slow", True, seconds=seconds)


def soak_mix(*, hang_seconds: float) -> FaultMix:
    """Every fault class the publisher must survive, each on a few per cent of calls: lost
    and late answers around media_publish (with and without the post going live), blocks
    after the post went live, throttles (with the BUC estimate, and bare 429s), not-ready and
    builder-expired answers, fresh-object read errors, slow Reels, failed containers.
    ``hang_seconds`` should exceed the publisher's call timeout."""
    return FaultMix(
        faults={
            "create_container": [
                (0.02, "transient 2", error(2)),
                (0.02, "fetch failed 9004/2207052", error(9004, 2207052)),
                (0.01, "bare 429", bare_429(1)),
                (0.01, "timeout", hung(hang_seconds, commit=False)),
            ],
            "container_status": [
                (0.03, "fresh object 100/33", error(100, 33)),
                (0.01, "transient 2", error(2)),
                (0.01, "bare 429", bare_429(1)),
                (0.002, "throttle 80002", throttled()),
            ],
            "media_publish": [
                (0.03, "live, answer dropped", dropped(commit=True)),
                (0.02, "live, answer late", hung(hang_seconds, commit=True)),
                (0.02, "not live, timeout", hung(hang_seconds, commit=False)),
                (0.02, "live, 500 code 1", error(1, commit=True, status=500)),
                (0.02, "not live, 500 code 1", error(1, status=500)),
                (0.02, "live, blocked 4/2207051", error(4, 2207051, commit=True)),
                (0.005, "blocked 4/2207051", error(4, 2207051)),
                (0.03, "not ready 9007/2207027", error(9007, 2207027)),
                (0.02, "builder gone 24/2207008", error(24, 2207008)),
                (0.02, "bare 429", bare_429(1)),
                (0.003, "throttle 80002", throttled()),
            ],
            "media_read": [
                (0.03, "slow permalink", slow(hang_seconds)),
                (0.03, "fresh object 100/33", error(100, 33)),
            ],
            "media_list": [
                (0.02, "transient 2", error(2)),
                (0.005, "throttle 80002", throttled()),
            ],
            "content_publishing_limit": [(0.02, "transient 2", error(2))],
        },
        slow={"REELS": (0.3, 1800.0), "VIDEO": (0.2, 600.0)},  # 30 and 10 minutes
        container_errors=[(0.02, 2207052), (0.005, 2207026)],
    )
