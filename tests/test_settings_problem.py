"""A bad setting is described in one line per setting: its environment variable, the problem, the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from haltless.settings import Settings, settings_problem


def test_each_bad_setting_gets_a_line_and_secrets_are_never_echoed() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(jwt_secret="short-secret", offline_after="abc", database_url="mysql://ops:hunter22@db/plant")  # type: ignore[arg-type]
    lines = settings_problem(raised.value).splitlines()
    assert len(lines) == 3
    # In the order of the settings table.
    assert lines[0].startswith("error: HALTLESS_DATABASE_URL: unknown database 'mysql'; use sqlite+aiosqlite")
    assert lines[1].startswith("error: HALTLESS_JWT_SECRET: ")
    assert lines[2].startswith("error: HALTLESS_OFFLINE_AFTER (got 'abc'): ")
    assert "the default is 60.0" in lines[2]
    assert "short-secret" not in "\n".join(lines)
    assert "hunter22" not in "\n".join(lines)
