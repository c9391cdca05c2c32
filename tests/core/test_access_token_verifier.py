"""The access-token verifier remembers tokens that passed, and never lets one through that `verify` would refuse."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest

from haltless.core import tokens
from haltless.core.models import Role
from haltless.core.tokens import AccessTokenVerifier, TokenError

SECRET = "s" * 32
HOUR = 3600


def _token(now: int, *, ttl: int = HOUR, secret: str = SECRET, token_type: tokens.TokenType = "access") -> str:
    token, _ = tokens.issue(
        secret, token_type=token_type, subject="u", tenant_id="t", now=now, ttl=ttl, role=Role.ADMIN, family_id="f"
    )
    return token


def _now() -> int:
    return int(time.time())


def test_a_remembered_token_gives_the_same_claims_until_it_expires() -> None:
    now = _now()
    verifier = AccessTokenVerifier(SECRET)
    token = _token(now)
    first = verifier.verify(token, now=now)
    assert first == tokens.verify(SECRET, token, expected_type="access", now=now)
    assert verifier.verify(token, now=now + HOUR - 1) is first
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token, now=now + HOUR)
    assert token not in verifier._verified  # forgotten once expired


REFUSED: dict[str, Callable[[int], str]] = {
    "other secret": lambda now: _token(now, secret="other" * 8),
    "refresh token": lambda now: _token(now, token_type="refresh"),
    "expired": lambda now: _token(now - 2 * HOUR),
    "garbage": lambda now: "not.a.token",
    "bad signature": lambda now: _token(now) + "x",
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_what_verify_refuses_is_refused_every_time(kind: str) -> None:
    now = _now()
    token = REFUSED[kind](now)
    verifier = AccessTokenVerifier(SECRET)
    for _ in range(2):
        with pytest.raises(TokenError):
            verifier.verify(token, now=now)
    assert not verifier._verified


def test_it_keeps_at_most_max_tokens() -> None:
    now = _now()
    verifier = AccessTokenVerifier(SECRET, max_tokens=3)
    issued = [
        tokens.issue(SECRET, token_type="access", subject=f"u{i}", tenant_id="t", now=now, ttl=HOUR, role=Role.VIEWER)[
            0
        ]
        for i in range(5)
    ]
    for token in issued:
        verifier.verify(token, now=now)
    assert list(verifier._verified) == issued[2:]


def test_the_token_generation_travels_in_access_tokens() -> None:
    now = _now()
    token, claims = tokens.issue(
        SECRET, token_type="access", subject="u", tenant_id="t", now=now, ttl=HOUR, role=Role.VIEWER, generation=7
    )
    assert claims.generation == 7
    assert AccessTokenVerifier(SECRET).verify(token, now=now).generation == 7
    # Tokens from before generations existed count as generation 0.
    assert tokens.verify(SECRET, _token(now), expected_type="access", now=now).generation == 0
    payload = {"sub": "u", "tid": "t", "typ": "access", "jti": "j", "iat": now, "exp": now + HOUR, "role": "viewer"}
    for bad in (-1, "1", True, 1.5):
        with pytest.raises(TokenError):
            tokens.verify(SECRET, jwt.encode({**payload, "gen": bad}, SECRET), expected_type="access", now=now)


def test_expiry_is_judged_by_the_injected_clock_alone() -> None:
    """A server on a clock set years back (tests, a replay) takes the tokens it issued on that clock, and a clock
    set ahead expires them, whatever the system clock says."""
    long_ago = 1_000_000_000  # 2001
    token = _token(long_ago)
    assert tokens.verify(SECRET, token, expected_type="access", now=long_ago).expires_at == long_ago + HOUR
    with pytest.raises(tokens.TokenExpired):
        tokens.verify(SECRET, token, expected_type="access", now=long_ago + HOUR)
    fresh = _token(_now())
    with pytest.raises(tokens.TokenExpired):
        tokens.verify(SECRET, fresh, expected_type="access", now=_now() + 10 * HOUR)
