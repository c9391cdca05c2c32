"""JWT access and refresh tokens: HS256 pinned, required claims, and a `typ` that keeps them apart."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import jwt

from haltless.core.models import Role

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]
_REQUIRED = ["exp", "iat", "sub", "tid", "typ", "jti"]


class TokenError(ValueError):
    """The token is malformed, forged, expired or of the wrong type."""


class TokenExpired(TokenError):
    """The token is genuine (its signature checked) but expired; `token_type` is what its `typ` claim says."""

    def __init__(self, token_type: str | None) -> None:
        super().__init__("token expired")
        self.token_type = token_type


class WrongTokenType(TokenError):
    """The token is genuine but of the other type (an access token where a refresh token is due, or back)."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified content of a token."""

    subject: str
    tenant_id: str
    token_type: TokenType
    jti: str
    issued_at: int
    expires_at: int
    role: Role | None
    family_id: str | None
    # Access tokens: the user's token generation when issued (core.accounts); 0 in tokens from before it existed.
    generation: int = 0


def issue(
    secret: str,
    *,
    token_type: TokenType,
    subject: str,
    tenant_id: str,
    now: int,
    ttl: int,
    role: Role | None = None,
    family_id: str | None = None,
    jti: str | None = None,
    generation: int = 0,
) -> tuple[str, TokenClaims]:
    """Sign a token; `now` and `ttl` in whole seconds."""
    claims = TokenClaims(
        subject=subject,
        tenant_id=tenant_id,
        token_type=token_type,
        jti=jti or str(uuid.uuid4()),
        issued_at=now,
        expires_at=now + ttl,
        role=role,
        family_id=family_id,
        generation=generation,
    )
    payload: dict[str, object] = {
        "sub": subject,
        "tid": tenant_id,
        "typ": token_type,
        "jti": claims.jti,
        "iat": now,
        "exp": now + ttl,
    }
    if role is not None:
        payload["role"] = role.value
    if family_id is not None:
        payload["fam"] = family_id
    if generation:
        payload["gen"] = generation
    return jwt.encode(payload, secret, algorithm=ALGORITHM), claims


def verify(secret: str, token: str, *, expected_type: TokenType, now: int) -> TokenClaims:
    """Check signature, algorithm, required claims, expiry and type; raise TokenError otherwise."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # Expiry is checked below against `now`, the injected clock, not by PyJWT against the system clock.
            options={"require": _REQUIRED, "verify_iat": False, "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise TokenError("invalid token") from None
    exp, iat = payload["exp"], payload["iat"]
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise TokenError("invalid token")
    if exp <= now:
        typ = payload.get("typ")
        raise TokenExpired(typ if isinstance(typ, str) else None)
    if payload.get("typ") != expected_type:
        raise WrongTokenType(f"not an {expected_type} token" if expected_type == "access" else "not a refresh token")
    sub, tid, jti = payload["sub"], payload["tid"], payload["jti"]
    if not all(isinstance(v, str) and v for v in (sub, tid, jti)):
        raise TokenError("invalid token")
    role: Role | None = None
    if expected_type == "access":
        try:
            role = Role(str(payload.get("role")))
        except ValueError:
            raise TokenError("invalid token") from None
    family = payload.get("fam")
    if expected_type == "refresh" and not isinstance(family, str):
        raise TokenError("invalid token")
    generation = payload.get("gen", 0)
    if type(generation) is not int or generation < 0:
        raise TokenError("invalid token")
    return TokenClaims(
        subject=sub,
        tenant_id=tid,
        token_type=expected_type,
        jti=jti,
        issued_at=iat,
        expires_at=exp,
        role=role,
        family_id=family if isinstance(family, str) else None,
        generation=generation,
    )


class AccessTokenVerifier:
    """`verify` for access tokens, remembering the ones that passed: a client sends the same token with every
    request until it expires, and checking its signature and claims again each time was a measured cost of every
    ingest batch on the event loop (docs/benchmarks.md, "Hot-path choices").

    Sound because verification depends only on the token and the secret: a remembered token gives the claims
    it gave the first time, and expiry is checked against `now` on every use. Whether the user behind the token
    may still use it (disabled, deleted, signed out) is not the token's to say: server/http/security.py checks that
    on every request after this, remembered or not. At most `max_tokens` are kept
    (the oldest is forgotten first), so a flood of distinct tokens costs memory only up to that.
    """

    def __init__(self, secret: str, *, max_tokens: int = 4096) -> None:
        self._secret = secret
        self._max_tokens = max_tokens
        self._verified: dict[str, TokenClaims] = {}

    def verify(self, token: str, *, now: int) -> TokenClaims:
        """The claims of a valid, unexpired access token; raises TokenError otherwise."""
        claims = self._verified.get(token)
        if claims is None:
            claims = verify(self._secret, token, expected_type="access", now=now)
            if len(self._verified) >= self._max_tokens:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = claims
        elif claims.expires_at <= now:
            del self._verified[token]
            raise TokenError("token expired")
        return claims
