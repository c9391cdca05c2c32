"""Sealing channels' secrets: round trip, rotation states, legacy plain values, and keys checked by position."""

from __future__ import annotations

import pytest

from haltless.core.secret_box import BadSecretsKey, Sealing, SecretBox, SecretsUnreadable, new_key, parse_keys

A, B = new_key(), new_key()


def test_sealed_secrets_open_with_any_configured_key_and_hide_the_plaintext() -> None:
    sealed = SecretBox([A]).seal({"secret": "whsec-0123456789abcdef"}, 1_700_000_000)
    assert list(sealed) == ["fernet"] and "whsec" not in sealed["fernet"]
    assert SecretBox([B, A]).open(sealed) == {"secret": "whsec-0123456789abcdef"}
    with pytest.raises(SecretsUnreadable):
        SecretBox([B]).open(sealed)


def test_sealing_tells_current_old_plain_and_unreadable_apart() -> None:
    under_a = SecretBox([A]).seal({"password": "p"}, 0)
    assert SecretBox([A, B]).sealing(under_a) is Sealing.CURRENT
    assert SecretBox([B, A]).sealing(under_a) is Sealing.OLD_KEY
    assert SecretBox([B]).sealing(under_a) is Sealing.UNREADABLE
    assert SecretBox([B]).sealing({"password": "p"}) is Sealing.PLAINTEXT
    assert SecretBox([B]).open({"password": "p"}) == {"password": "p"}


def test_a_bad_key_is_named_by_its_position_never_its_value() -> None:
    assert parse_keys(f" {A} ,{B}") == [A, B]
    with pytest.raises(BadSecretsKey, match="key 2 of 3 is not a Fernet key") as caught:
        parse_keys(f"{A},not-a-key-at-all,{B}")
    assert "not-a-key" not in str(caught.value)
    with pytest.raises(BadSecretsKey, match="key 2 of 2 is empty"):
        parse_keys(f"{A},")
