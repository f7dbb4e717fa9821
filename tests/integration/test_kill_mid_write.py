"""Killing `reptrend serve` in the middle of a large batched write leaves the database as it was.

PostgreSQL only: it is the production database, and its backend tells us (backend_xid) the
exact moment the server's transaction has started writing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid

import httpx
import pytest
import sqlalchemy as sa

from store.database import normalize_url
from store.schema import upgrade
from tests.live_server import serve_in_subprocess

pytestmark = pytest.mark.postgres

ENTRIES = 6000


def _bundle() -> dict[str, object]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:test:crash", "value": str(i)}],
                    "name": [{"family": f"Crash{i}", "given": ["Test"]}],
                    "birthDate": "1980-01-01",
                },
                "request": {"method": "POST", "url": "Patient"},
            }
            for i in range(ENTRIES)
        ],
    }


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("resource", "resource_version", "search_token", "search_string")
        }


def test_killing_the_server_mid_write_leaves_the_database_unchanged(postgres_url: str) -> None:
    upgrade(postgres_url)
    app_name = f"reptrend-kill-{uuid.uuid4().hex[:8]}"
    server_url = f"{postgres_url}&application_name={app_name}"
    observer = sa.create_engine(normalize_url(postgres_url), isolation_level="AUTOCOMMIT")

    with serve_in_subprocess(server_url) as server:
        # Counted once the server is up: it seeds the protocol catalog before serving.
        before = _counts(observer)
        assert before["resource"] < 100

        def post() -> None:
            # A transport error is expected: the server dies under the request.
            with contextlib.suppress(httpx.TransportError):
                httpx.post(
                    f"{server.base_url}/fhir",
                    json=_bundle(),
                    headers={"content-type": "application/fhir+json"},
                    timeout=120,
                )

        poster = threading.Thread(target=post)
        poster.start()
        writing = sa.text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = :name AND backend_xid IS NOT NULL"
        )
        caught_writing = False
        deadline = time.monotonic() + 60
        with observer.connect() as connection:
            while time.monotonic() < deadline and poster.is_alive():
                if connection.execute(writing, {"name": app_name}).scalar_one():
                    caught_writing = True
                    os.killpg(server.process.pid, signal.SIGKILL)
                    break
                time.sleep(0.002)
        poster.join(timeout=30)
        assert caught_writing, "the write finished before it could be interrupted"
        server.process.wait(timeout=10)

        # PostgreSQL rolls the dead client's transaction back once it notices the disconnect.
        gone = sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
        with observer.connect() as connection:
            deadline = time.monotonic() + 20
            while connection.execute(gone, {"name": app_name}).scalar_one():
                assert time.monotonic() < deadline, "the server's backend did not go away"
                time.sleep(0.05)
        assert _counts(observer) == before
    observer.dispose()
