"""What /openapi.json promises, checked piece by piece (tests/contract/ runs schemathesis over all of it)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from haltless.server.schemas.base import Email, Location, Name
from tests.conftest import EVENT_TIMEOUT, RunningServer, Tenant


@pytest.fixture
async def openapi(server: RunningServer) -> dict[str, Any]:
    # The first request builds the schema: seconds on a loaded machine, so no short client timeout here.
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        document: dict[str, Any] = (await http.get("/openapi.json")).json()
    return document


def _responses(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses: dict[str, Any] = document["paths"][path][method]["responses"]
    return responses


async def test_every_error_is_documented_with_the_error_body(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["Error"]["properties"]["detail"]["type"] == "string"
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


async def test_authenticated_operations_declare_the_scheme_401_and_403(openapi: dict[str, Any]) -> None:
    me = openapi["paths"]["/api/v1/auth/me"]["get"]
    assert me["security"] == [{"bearer": []}]
    assert {"401", "403"} <= set(me["responses"])
    login = openapi["paths"]["/api/v1/auth/login"]["post"]
    assert "security" not in login
    assert {"401", "409", "413", "415", "422", "429"} <= set(login["responses"])
    assert "404" in _responses(openapi, "get", "/api/v1/machines/{machine_id}")
    assert "404" not in _responses(openapi, "get", "/api/v1/machines")


async def test_a_405_names_every_method_of_the_path(server: RunningServer, tenant: Tenant) -> None:
    """GET and POST /machines are two routes; Starlette alone names only the first one's methods."""
    response = await tenant.http.request("OPTIONS", "/api/v1/machines")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST, HEAD"
    response = await tenant.http.put("/api/v1/machines/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "DELETE"}


async def test_a_body_that_is_not_utf8_is_a_422_like_one_that_is_not_json(tenant: Tenant) -> None:
    headers = {"Content-Type": "application/json"}
    response = await tenant.http.post("/api/v1/machines", content=b'{"name": "\xff\xfe"}', headers=headers)
    assert response.status_code == 422
    assert response.json() == {
        "detail": "request body is not valid JSON (UTF-8): byte 0xff at offset 10 is not UTF-8 text"
    }


def _pattern(annotation: Any) -> re.Pattern[str]:
    schema = TypeAdapter(annotation).json_schema()
    return re.compile(schema["pattern"])


def _accepted(adapter: TypeAdapter[str], value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


# Text around the edges of the rule: stripped whitespace, refused controls (some of them whitespace too), letters.
_EDGY_TEXT = st.text(
    alphabet=st.sampled_from([" ", "\t", "\n", "\x0b", "\x1c", "\x01", "\x85", "\xa0", "\u2028", "\u3000", "a", "é"]),
    max_size=8,
)


@pytest.mark.parametrize("annotation", [Name, Location, Email], ids=["Name", "Location", "Email"])
@given(value=st.one_of(_EDGY_TEXT, st.text(max_size=8)))
def test_the_documented_pattern_takes_exactly_what_validation_takes(annotation: Any, value: str) -> None:
    """A client reads in the schema which strings a text field takes: the pattern and the validator agree (lone
    surrogates aside: no UTF-8 text holds one, and the validator refuses them)."""
    if any("\ud800" <= char <= "\udfff" for char in value):
        return
    value = f"{value}a@b" if annotation is Email else value
    assert bool(_pattern(annotation).match(value)) == _accepted(TypeAdapter(annotation), value)
