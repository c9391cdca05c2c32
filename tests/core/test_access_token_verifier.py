"""The access-token verifier remembers tokens that passed, and never lets one through that `verify` would refuse."""

from __future__ import annotations

import time

import pytest

from haltless.core import tokens
from haltless.core.models import Role
from haltless.core.tokens import AccessTokenVerifier, TokenError

SECRET = "s" * 32
NOW = int(time.time())  # PyJWT checks `exp` against the clock too


def _access(ttl: int = 60, secret: str = SECRET, token_type: tokens.TokenType = "access") -> str:
    token, _ = tokens.issue(
        secret, token_type=token_type, subject="u", tenant_id="t", now=NOW, ttl=ttl, role=Role.ADMIN, family_id="f"
    )
    return token


def test_a_remembered_token_gives_the_same_claims_until_it_expires() -> None:
    verifier = AccessTokenVerifier(SECRET)
    token = _access(ttl=60)
    first = verifier.verify(token, now=NOW)
    assert first == tokens.verify(SECRET, token, expected_type="access", now=NOW)
    assert verifier.verify(token, now=NOW + 59) is first
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token, now=NOW + 60)
    assert token not in verifier._verified  # forgotten once expired


@pytest.mark.parametrize(
    "token",
    [_access(secret="other" * 8), _access(token_type="refresh"), _access(ttl=-10), "not.a.token", _access() + "x"],
)
def test_what_verify_refuses_is_refused_every_time(token: str) -> None:
    verifier = AccessTokenVerifier(SECRET)
    for _ in range(2):
        with pytest.raises(TokenError):
            verifier.verify(token, now=NOW)


def test_it_keeps_at_most_max_tokens() -> None:
    verifier = AccessTokenVerifier(SECRET, max_tokens=3)
    issued = [
        tokens.issue(SECRET, token_type="access", subject=f"u{i}", tenant_id="t", now=NOW, ttl=60, role=Role.VIEWER)[0]
        for i in range(5)
    ]
    for token in issued:
        verifier.verify(token, now=NOW)
    assert list(verifier._verified) == issued[2:]
