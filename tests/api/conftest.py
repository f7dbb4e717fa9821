from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings


@pytest.fixture
def settings(migrated_url: str) -> Settings:
    # No gc.freeze: every test builds an app, and frozen garbage is never collected.
    return Settings(database_url=migrated_url, max_body_bytes=1_000_000, gc_freeze=False)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


FHIR = {"content-type": "application/fhir+json"}
