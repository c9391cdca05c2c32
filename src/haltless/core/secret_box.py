"""Notification channels' secrets sealed for storage: Fernet keys in, envelopes out (no I/O, no clock).

A channel's secrets (webhook signing secret, SMTP password) are stored as `{"fernet": "<token>"}` in the
channel's JSON column: the token is the secrets' JSON, encrypted and authenticated with the first of the
configured keys (HALTLESS_SECRETS_KEYS). Every configured key opens: keys are rotated by putting the new one
first, re-sealing (`haltless admin rotate-secrets`), then dropping the old one. Rows written before secrets
were sealed hold the plain dict; they are read as they are until they are re-sealed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENVELOPE = "fernet"


class BadSecretsKey(ValueError):
    """A configured key that is not a Fernet key; the message names its position, never its value."""


class SecretsUnreadable(Exception):
    """A sealed envelope none of the configured keys opens (or that is damaged)."""


class Sealing(StrEnum):
    """How a stored secrets value stands against the configured keys."""

    CURRENT = "current"  # sealed with the first key: nothing to do
    OLD_KEY = "old_key"  # sealed with another configured key: re-seal with the first
    PLAINTEXT = "plaintext"  # written before secrets were sealed: seal it
    UNREADABLE = "unreadable"  # no configured key opens it


def new_key() -> str:
    """A fresh Fernet key (32 random bytes, URL-safe base64)."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str) -> list[str]:
    """Comma-separated keys, checked; ValueError names the position (1-based) of a bad one, never its value."""
    keys = [item.strip() for item in text.split(",")]
    if not any(keys):
        raise BadSecretsKey("no key given")
    count = len(keys)
    for position, key in enumerate(keys, start=1):
        if not key:
            raise BadSecretsKey(f"key {position} of {count} is empty")
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raw = b""
        if len(raw) != 32:
            raise BadSecretsKey(
                f"key {position} of {count} is not a Fernet key (32 bytes in URL-safe base64, 44 characters)"
            )
    return keys


class SecretBox:
    """Seals secrets with the first key and opens them with any of them."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise BadSecretsKey("no key given")
        self._fernets = [Fernet(key) for key in keys]
        self._any = MultiFernet(self._fernets)

    def seal(self, secrets: Mapping[str, Any], now_s: int) -> dict[str, str]:
        """The envelope to store; `now_s` (Unix seconds) is the token's timestamp (Fernet records one)."""
        data = json.dumps(dict(secrets), separators=(",", ":"), sort_keys=True).encode()
        return {ENVELOPE: self._any.encrypt_at_time(data, now_s).decode("ascii")}

    def open(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The secrets of a stored value: an envelope opened, or a legacy plain dict as it is."""
        if not is_envelope(stored):
            return dict(stored)
        try:
            data = self._any.decrypt(str(stored[ENVELOPE]).encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SecretsUnreadable("none of the configured secrets keys opens these secrets") from None
        opened = json.loads(data)
        if not isinstance(opened, dict):
            raise SecretsUnreadable("the sealed secrets are not an object")
        return opened

    def sealing(self, stored: Mapping[str, Any]) -> Sealing:
        """Whether `stored` is sealed with the first key, another configured key, not at all, or unreadably."""
        if not is_envelope(stored):
            return Sealing.PLAINTEXT
        token = str(stored[ENVELOPE]).encode("ascii", "replace")
        try:
            self._fernets[0].decrypt(token)
            return Sealing.CURRENT
        except InvalidToken:
            pass
        try:
            self._any.decrypt(token)
        except InvalidToken:
            return Sealing.UNREADABLE
        return Sealing.OLD_KEY


def is_envelope(stored: Mapping[str, Any]) -> bool:
    """A sealed value (`{"fernet": token}`) rather than legacy plain secrets (`{"secret": …}`, `{"password": …}`)."""
    return set(stored) == {ENVELOPE} and isinstance(stored[ENVELOPE], str)
