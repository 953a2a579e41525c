"""An Instagram connection's `login` names one of the configured hosts, never a URL."""

from __future__ import annotations

import pytest

from herald.shared.domain.tenancy import ADMIN
from herald.shared.errors import ValidationFailed
from herald.shared.infra.runtime import Runtime

pytestmark = pytest.mark.integration


def body(**metadata: object) -> dict[str, object]:
    meta = {"instagramBusinessAccountId": "1784", **metadata}
    return {
        "platform": "instagram",
        "name": "ig",
        "access_token": "EAAG" + "t0k" * 12,
        "metadata": meta,
    }


async def test_login_is_facebook_or_instagram(rt: Runtime) -> None:
    store = rt.connections()
    assert (await store.create(ADMIN, body()))["metadata"].get("login") is None  # facebook
    made = await store.create(ADMIN, body(login="instagram"))
    assert made["metadata"]["login"] == "instagram"
    for wrong in ("http://169.254.169.254/latest", "Instagram", 1):
        with pytest.raises(ValidationFailed) as refused:
            await store.create(ADMIN, body(login=wrong))
        assert "metadata.login" in (refused.value.fields or {})
    with pytest.raises(ValidationFailed):
        await store.patch(
            ADMIN,
            made["id"],
            {"metadata": {"instagramBusinessAccountId": "1784", "login": "https://evil.example"}},
        )
