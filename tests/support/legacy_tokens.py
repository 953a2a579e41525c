"""Tokens as Herald wrote them before the key ring: 0x01 | nonce | AES-GCM ciphertext,
associated data 0x01, the key HKDF-SHA256 of the passphrase (no key id, no connection)."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def legacy_encrypt(passphrase: str, token: str) -> bytes:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"herald-token-encryption", info=b"v1"
    ).derive(passphrase.encode())
    nonce = os.urandom(12)
    return b"\x01" + nonce + AESGCM(key).encrypt(nonce, token.encode(), b"\x01")
