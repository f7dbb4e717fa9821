"""Loads the demo data set through the same write path clients use (transaction Bundles)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy.engine import Engine

from cli.demo_data import demo_bundles
from store.bundles import process_transaction
from store.database import refresh_statistics
from store.unit_of_work import UnitOfWork

log = logging.getLogger("reptrend.demo")


def database_is_empty(engine: Engine, tenant: str) -> bool:
    with UnitOfWork(engine, tenant) as uow:
        return uow.resources.count("Patient") == 0 and uow.resources.count("Organization") == 0


def load_bundles(engine: Engine, tenant: str, bundles: Iterable[dict[str, Any]]) -> int:
    """Post each Bundle as a transaction, one unit of work each; returns resources written."""
    written = 0
    for number, bundle in enumerate(bundles, start=1):
        with UnitOfWork(engine, tenant, write=True) as uow:
            response = process_transaction(uow.resources, bundle)
            uow.commit()
        written += len(response["entry"])
        if number % 50 == 0:
            log.info("demo bundles loaded", extra={"bundles": number, "resources": written})
    return written


def load_demo(engine: Engine, tenant: str, anchor: date) -> int:
    """The whole demo data set, built around `anchor`."""
    written = load_bundles(engine, tenant, demo_bundles(anchor))
    refresh_statistics(engine)
    return written
