"""The token key ring: raw keys and passphrases, key ids, the connection id bound in, and
tokens of the format before the ring."""

from __future__ import annotations

import base64
import uuid

import pytest

from herald.shared.errors import ConfigError
from herald.shared.infra import crypto
from herald.shared.infra.crypto import DecryptError, TokenCipher, new_secret_key, raw_key
from tests.support.legacy_tokens import legacy_encrypt

TOKEN = "EAAG-unit-secret-token-" + "x" * 40
KEY_BYTES = bytes(range(32))
HEX = KEY_BYTES.hex()
B64 = base64.b64encode(KEY_BYTES).decode()
B64URL = base64.urlsafe_b64encode(bytes(range(200, 232))).decode().rstrip("=")


def cid() -> str:
    return str(uuid.uuid4())


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (HEX, KEY_BYTES),
        (HEX.upper(), KEY_BYTES),
        (B64, KEY_BYTES),
        (B64.rstrip("="), KEY_BYTES),
        (B64URL + "=", bytes(range(200, 232))),
        ("correct horse battery staple", None),
        (HEX[:-2], None),  # 31 bytes
        (B64[:-2], None),
        ("ü" * 43, None),
    ],
)
def test_a_key_is_32_bytes_in_hex_or_base64_and_anything_else_a_passphrase(
    text: str, key: bytes | None
) -> None:
    assert raw_key(text) == key


def test_every_kind_of_key_round_trips() -> None:
    for ring in (HEX, B64, new_secret_key(), "a passphrase with spaces", "k1:" + HEX):
        cipher = TokenCipher(ring)
        connection = cid()
        blob = cipher.encrypt(TOKEN, connection)
        assert TOKEN.encode() not in blob
        assert cipher.decrypt(blob, uuid.UUID(connection)) == TOKEN  # a UUID or its text


def test_a_ciphertext_copied_to_another_connection_does_not_decrypt() -> None:
    cipher = TokenCipher(new_secret_key())
    blob = cipher.encrypt(TOKEN, cid())
    with pytest.raises(DecryptError):
        cipher.decrypt(blob, cid())


def test_a_tampered_key_id_does_not_decrypt() -> None:
    cipher = TokenCipher(f"ab:{new_secret_key()},ac:{new_secret_key()}")
    connection = cid()
    blob = cipher.encrypt(TOKEN, connection)
    assert cipher.key_id(blob) == "ab"
    with pytest.raises(DecryptError):
        cipher.decrypt(blob.replace(b"ab", b"ac", 1), connection)


def test_rotation_keeps_old_tokens_readable_and_writes_under_the_newest_key() -> None:
    old_key, new_key = new_secret_key(), new_secret_key()
    connection = cid()
    old = TokenCipher(old_key).encrypt(TOKEN, connection)  # a bare value: the id "0"
    assert TokenCipher(old_key).key_id(old) == "0"

    ring = TokenCipher(f"2026b:{new_key},{old_key}")
    assert ring.newest_id == "2026b"
    assert ring.decrypt(old, connection) == TOKEN
    assert not ring.is_current(old)
    fresh = ring.encrypt(TOKEN, connection)
    assert ring.key_id(fresh) == "2026b" and ring.is_current(fresh)
    assert TokenCipher(f"2026b:{new_key}").decrypt(fresh, connection) == TOKEN

    with pytest.raises(DecryptError, match="'0'"):  # the old key dropped too early
        TokenCipher(f"2026b:{new_key}").decrypt(old, connection)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("old passphrase", "old passphrase"),  # the same value, kept
        ("old passphrase", "new:{new},old:old passphrase"),  # the old one given an id
        ("old passphrase", "new:{new},old passphrase"),  # or left without one
        ("pass:with,punctuation", "pass:with,punctuation"),  # read as a ring now
        ("one:two", "new:{new},one:two"),
    ],
)
def test_tokens_of_the_format_before_the_ring_stay_readable(before: str, after: str) -> None:
    blob = legacy_encrypt(before, TOKEN)
    cipher = TokenCipher(after.format(new=new_secret_key()))
    assert cipher.key_id(blob) is None and not cipher.is_current(blob)
    assert cipher.decrypt(blob, cid()) == TOKEN
    with pytest.raises(DecryptError):
        TokenCipher(new_secret_key()).decrypt(blob, cid())


def test_a_passphrase_is_stretched_once_per_process_not_per_token() -> None:
    passphrase = f"unit passphrase {uuid.uuid4()}"
    before = crypto.stretch.cache_info().misses
    connection = cid()
    for _ in range(50):
        cipher = TokenCipher(passphrase)
        assert cipher.decrypt(cipher.encrypt(TOKEN, connection), connection) == TOKEN
    assert crypto.stretch.cache_info().misses == before + 1
    assert crypto.stretch(passphrase) != raw_key(new_secret_key())


@pytest.mark.parametrize("ring", ["", "  ", "a:x,", ",a:x", "a:k1,a:k2", "bare one,bare two", "k:"])
def test_an_unusable_key_ring_is_refused(ring: str) -> None:
    with pytest.raises(ConfigError):
        TokenCipher(ring)


@pytest.mark.parametrize("blob", [b"", b"\x02", b"\x02\x01a", b"\x01short", b"\x07" + bytes(40)])
def test_garbage_ciphertext_raises_a_decrypt_error(blob: bytes) -> None:
    with pytest.raises(DecryptError):
        TokenCipher(new_secret_key()).decrypt(blob, cid())
