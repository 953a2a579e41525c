"""Tokens encrypted at rest with a key ring (AES-256-GCM), and API key digests.

The key ring is `HERALD_SECRET_KEY`: `id:key` entries separated by commas, newest first
(`2026b:<key>,2026a:<older key>`); an entry without `id:` has the id `0`, so a single
value works as it always did. A key is 32 random bytes written as 64 hex digits or in
base64 (43 or 44 characters, standard or URL-safe alphabet); any other text is a
passphrase, stretched once per process with scrypt (`_SCRYPT`, a fixed salt, so every
process derives the same key).

A token is written under the newest key as

    0x02 | length of the key id | key id | 12-byte nonce | ciphertext and tag

with that header and the connection id as associated data: the key is picked by its id,
and a ciphertext copied to another connection's row does not decrypt. Tokens written
before the key ring (0x01 | nonce | ciphertext, associated data 0x01, key = HKDF-SHA256 of
the passphrase) stay readable until `herald secrets rekey` rewrites them.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import secrets
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from herald.shared.errors import ConfigError

_LEGACY = b"\x01"
_VERSION = b"\x02"
IMPLICIT_KEY_ID = "0"
_ENTRY = re.compile(r"([A-Za-z0-9_.-]{1,32}):(.*)", re.DOTALL)
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_BASE64_KEY = re.compile(r"[A-Za-z0-9+/_-]{43}=?")
# scrypt at 32 MiB and about 0.1 s: run once per passphrase and process, never per token.
# The salt is fixed (and public) so that every process derives the same key.
SCRYPT_SALT = b"herald-token-key/scrypt/v1"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1


class DecryptError(ValueError):
    """A token that no key of the ring decrypts for this connection."""


def raw_key(text: str) -> bytes | None:
    """The 32 bytes `text` spells in hex or base64; None for a passphrase."""
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    if _BASE64_KEY.fullmatch(text):
        padded = text.replace("+", "-").replace("/", "_").rstrip("=") + "="
        try:
            return base64.urlsafe_b64decode(padded)
        except binascii.Error:  # pragma: no cover - the pattern admits only valid text
            return None
    return None


@functools.cache
def stretch(passphrase: str) -> bytes:
    """The key of a passphrase (scrypt; cached: each process derives it once)."""
    return Scrypt(SCRYPT_SALT, 32, SCRYPT_N, SCRYPT_R, SCRYPT_P).derive(passphrase.encode())


def _legacy_key(passphrase: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"herald-token-encryption", info=b"v1"
    ).derive(passphrase.encode())


def new_secret_key() -> str:
    """A random key in the form `HERALD_SECRET_KEY` takes (base64 of 32 bytes)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


@dataclass(frozen=True)
class _Key:
    kid: str
    aead: AESGCM


class TokenCipher:
    """The key ring: encrypts with the newest key, decrypts with the key a token names."""

    def __init__(self, ring: str) -> None:
        entries = [e.strip() for e in ring.split(",")]
        if not ring.strip() or not all(entries):
            raise ConfigError("HERALD_SECRET_KEY has an empty entry: give `id:key,id:key,...`")
        keys: list[_Key] = []
        for entry in entries:
            match = _ENTRY.fullmatch(entry)
            kid, secret = (match[1], match[2].strip()) if match else (IMPLICIT_KEY_ID, entry)
            # The messages name no part of the value: a misread passphrase is still secret.
            if not secret:
                raise ConfigError("HERALD_SECRET_KEY has an `id:` entry without a key")
            if any(k.kid == kid for k in keys):
                raise ConfigError("HERALD_SECRET_KEY names one key id twice (a bare key is 0)")
            keys.append(_Key(kid, AESGCM(raw_key(secret) or stretch(secret))))
        self._keys = {k.kid: k for k in keys}
        self._newest = keys[0]
        # What the pre-ring code may have used as its passphrase, for its tokens only: the
        # whole value as it was, or one entry of the ring (with or without its id).
        legacy = [ring, *entries] + [m[2].strip() for e in entries if (m := _ENTRY.fullmatch(e))]
        self._legacy_passphrases = list(dict.fromkeys(legacy))

    @property
    def newest_id(self) -> str:
        return self._newest.kid

    @staticmethod
    def _header(kid: str) -> bytes:
        return _VERSION + bytes([len(kid)]) + kid.encode()

    @staticmethod
    def _bound(header: bytes, connection_id: object) -> bytes:
        return header + uuid.UUID(str(connection_id)).bytes

    def encrypt(self, token: str, connection_id: object) -> bytes:
        header = self._header(self._newest.kid)
        nonce = os.urandom(12)
        sealed = self._newest.aead.encrypt(
            nonce, token.encode(), self._bound(header, connection_id)
        )
        return header + nonce + sealed

    def key_id(self, blob: bytes) -> str | None:
        """The id of the key a token was written under (None: the pre-ring format)."""
        if blob[:1] == _LEGACY:
            return None
        if blob[:1] != _VERSION or len(blob) < 2:
            raise DecryptError("unknown token format")
        return blob[2 : 2 + blob[1]].decode("ascii", "replace")

    def is_current(self, blob: bytes) -> bool:
        """True when a token is written under the newest key, in the newest format."""
        return blob[:1] == _VERSION and self.key_id(blob) == self._newest.kid

    def rekeyed(self, blob: bytes, connection_id: object) -> bytes | None:
        """The secret written again under the newest key, or None when it already is (a
        rekey); raises DecryptError when no key of the ring reads it."""
        if self.is_current(blob):
            return None
        return self.encrypt(self.decrypt(blob, connection_id), connection_id)

    def decrypt(self, blob: bytes, connection_id: object) -> str:
        kid = self.key_id(blob)
        if kid is None:
            return self._decrypt_legacy(blob)
        key = self._keys.get(kid)
        if key is None:
            raise DecryptError(f"the token's key id {kid!r} is not in HERALD_SECRET_KEY")
        header = blob[: 2 + blob[1]]
        nonce, sealed = blob[len(header) : len(header) + 12], blob[len(header) + 12 :]
        if len(nonce) < 12:
            raise DecryptError("the token is truncated")
        try:
            plain = key.aead.decrypt(nonce, sealed, self._bound(header, connection_id))
        except InvalidTag:
            raise DecryptError(
                f"the token does not decrypt with key {kid!r} for this connection"
            ) from None
        return plain.decode()

    def _decrypt_legacy(self, blob: bytes) -> str:
        if len(blob) < 13:
            raise DecryptError("the token is truncated")
        for passphrase in self._legacy_passphrases:
            try:
                return _legacy_aead(passphrase).decrypt(blob[1:13], blob[13:], _LEGACY).decode()
            except InvalidTag:
                continue
        raise DecryptError("no key of HERALD_SECRET_KEY decrypts this token (older format)")


@functools.lru_cache(maxsize=32)
def _legacy_aead(passphrase: str) -> AESGCM:
    return AESGCM(_legacy_key(passphrase))


def new_api_key() -> str:
    """A random API key of 256 bits."""
    return "hk_" + secrets.token_urlsafe(32)


def api_key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
