"""`codec.uuid_text`: the one canonical text of a UUID, as `str(uuid.UUID(...))` gives it."""

from __future__ import annotations

import uuid

import pytest

from herald.shared.messages.codec import uuid_text


@pytest.mark.parametrize(
    "given",
    [
        "0b6c31e2-4a35-4c59-9f5a-8d9b2f1e7a40",
        "0B6C31E2-4A35-4C59-9F5A-8D9B2F1E7A40",
        "0b6c31e24a354c599f5a8d9b2f1e7a40",
        "{0b6c31e2-4a35-4c59-9f5a-8d9b2f1e7a40}",
        "urn:uuid:0b6c31e2-4a35-4c59-9f5a-8d9b2f1e7a40",
    ],
)
def test_every_spelling_uuid_takes_comes_back_canonical(given: str) -> None:
    assert uuid_text(given) == "0b6c31e2-4a35-4c59-9f5a-8d9b2f1e7a40" == str(uuid.UUID(given))


def test_random_ids_come_back_as_they_are() -> None:
    for _ in range(1000):
        text = str(uuid.uuid4())
        assert uuid_text(text) == text


@pytest.mark.parametrize(
    "given",
    [
        "",
        "not-a-uuid",
        "0b6c31e2-4a35-4c59-9f5a-8d9b2f1e7a4",
        "0b6c31e2-4a35-4c59-9f5a-8d9b2f1e7a40\n",
    ],
)
def test_anything_else_is_a_value_error(given: str) -> None:
    with pytest.raises(ValueError):
        uuid_text(given)
