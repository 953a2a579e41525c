"""Tokens encrypted at rest (AES-256-GCM, key derived with HKDF-SHA256) and API key digests."""

from __future__ import annotations

import hashlib
import os
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"


def derive_key(passphrase: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"herald-token-encryption", info=b"v1"
    ).derive(passphrase.encode())


class TokenCipher:
    def __init__(self, passphrase: str) -> None:
        if not passphrase:
            raise ValueError("an empty secret key cannot protect tokens")
        self._aead = AESGCM(derive_key(passphrase))

    def encrypt(self, token: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, token.encode(), _VERSION)

    def decrypt(self, blob: bytes) -> str:
        if blob[:1] != _VERSION:
            raise ValueError("unknown token ciphertext version")
        return self._aead.decrypt(blob[1:13], blob[13:], _VERSION).decode()


def new_api_key() -> str:
    """A random API key of 256 bits."""
    return "hk_" + secrets.token_urlsafe(32)


def api_key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
