"""A real reptrend server (uvicorn on a free loopback port) on a migrated test database."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from api.analytics.clinical_routes import today
from api.app import create_app
from api.settings import Settings
from tests.e2e.sessions import day
from tests.live_server import serve_in_thread

TODAY_OFFSET = 10  # the server's "today": inside the retry window of a hold opened on day 0


@pytest.fixture
def server(migrated_url: str) -> Iterator[httpx.Client]:
    app = create_app(Settings(database_url=migrated_url))
    app.dependency_overrides[today] = lambda: day(TODAY_OFFSET)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield client
