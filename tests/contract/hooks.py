"""The contract run's credential: a schemathesis auth hook (SCHEMATHESIS_HOOKS) that mints a new admin each time.

Every token the run needs (at its start, and after any 401: the run itself ends its own sessions through
DELETE /api/v1/auth/sessions and DELETE /api/v1/users/{own id}/sessions) belongs to an admin created for that
fetch alone, written into the tenant's database directly (not through the API the run fuzzes), with a random
email, and logged in from an address nothing else uses. So the fetch cannot fail for anything the fuzzing did:

- The fuzzer can lock an account only by wrong passwords for it, and the one account it can guess for is its
  own: POST /api/v1/auth/password with a wrong current password counts against the caller like a failed login
  (ten a minute). That is what lost the run its login twice in CI: a minute after those guesses locked the one
  run admin, a fuzzed DELETE /auth/sessions ended its session and the re-login got 429 three times in a row
  (on a fast machine the two operations come less than a minute apart). An account made for the next fetch has
  no failures, whatever happened to the previous one.
- Nor can it have changed, disabled, demoted or deleted a user that did not exist until the fetch; and an admin
  cannot do that to itself through the API (403), so neither can the fuzzer with this admin's token.
- The login comes "through a proxy" (the test server trusts 127.0.0.1) from HOOK_ADDRESS, an address no fuzzed
  request claims; a login that succeeds takes back its attempt, so that address never has a failure to count.

The test (test_openapi_contract.py) passes the server's URL, database URL and the tenant in the environment.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

from tests.contract.credential import fresh_admin_token


@schemathesis.auth(retry_on=[401])
class FreshAdmin:
    """A new admin's token, cached until a request answers 401 (or for schemathesis's refresh interval)."""

    def __init__(self) -> None:
        self._server = (
            os.environ["HALTLESS_CONTRACT_URL"],
            os.environ["HALTLESS_CONTRACT_DATABASE_URL"],
            os.environ["HALTLESS_CONTRACT_TENANT_ID"],
        )

    def get(self, case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> str:
        return fresh_admin_token(*self._server)

    def set(self, case: schemathesis.Case[Any], data: str, context: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"
