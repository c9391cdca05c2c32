"""One version, in src/haltless/__init__.py: the package metadata, the API and every User-Agent say the same."""

from __future__ import annotations

from importlib.metadata import version

import httpx

import haltless
from haltless.client._base import USER_AGENT
from tests.conftest import EVENT_TIMEOUT, RunningServer


def test_package_metadata_reads_the_version_from_the_package() -> None:
    assert version("haltless") == haltless.__version__


def test_sdk_user_agent_carries_the_version() -> None:
    assert USER_AGENT.split("/") == ["haltless-client", haltless.__version__]


async def test_health_and_openapi_report_the_version(server: RunningServer) -> None:
    # The first /openapi.json builds the schema: seconds on a loaded machine, more than httpx's default 5 s wait.
    async with httpx.AsyncClient(base_url=server.base_url, timeout=EVENT_TIMEOUT) as http:
        assert (await http.get("/api/v1/health")).json()["version"] == haltless.__version__
        assert (await http.get("/openapi.json")).json()["info"]["version"] == haltless.__version__
