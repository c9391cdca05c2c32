"""Password hashing (argon2id) and API keys (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_KEY_PREFIX = "hlk_"
_hasher = PasswordHasher()
# Verifying against this keeps "unknown email" as slow as "wrong password" (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("haltless-dummy-password")


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; always spends the same effort, even without a hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_api_key() -> tuple[str, str, str]:
    """A new key as (key shown once, display prefix, stored hash)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:12], hash_api_key(key)


def hash_api_key(key: str) -> str:
    """SHA-256 is enough for a 256-bit random key: it cannot be guessed, only looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_secret() -> str:
    """A fresh HMAC secret for signing tokens."""
    return secrets.token_urlsafe(48)
