"""The Instagram soak (`herald bench soak`), small: 200 jobs over 10 accounts against the fake
Graph server with every fault class mixed in, 3 publisher copies, one SIGKILLed every few
seconds. Nothing is posted twice, every PUBLISHED job is live, every job ends."""

from __future__ import annotations

import pytest

from bench.soak import soak, table
from herald.shared.infra.settings import Settings

pytestmark = pytest.mark.chaos


def test_instagram_soak_with_faults_and_kills(base_settings: Settings) -> None:
    figures = soak(base_settings, jobs=200, accounts=10, low_quota_accounts=1, low_quota=12)
    print("\n" + table(figures))
    assert figures["not_terminal"] == 0
    assert figures["double_posts"] == 0, "a caption is live twice on one account"
    assert figures["published_not_live"] == 0
    assert figures["live_not_published"] == 0  # a live post ends PUBLISHED (or unconfirmed)
    assert figures["kills"] > 0 and figures["final_states"].get("PUBLISHED", 0) > 150
