"""Seeds a tenant's protocol catalog (PlanDefinition, ActivityDefinition, CodeSystem) as FHIR.

Called by `reptrend serve` and `reptrend demo` before the service starts, so the catalog is
readable at /fhir from the first request. Ingest also writes it on first use, so a tenant that
was never seeded still gets it with its first session. Never overwrites a clinic's own version.

    uv run python -m cli.catalog     # seed the configured database's default tenant
"""

from __future__ import annotations

import logging
import sys

from sqlalchemy.engine import Engine

from api.logging_setup import configure_logging
from api.settings import Settings
from store.database import create_engine
from store.protocol_catalog import ensure_catalog
from store.unit_of_work import UnitOfWork

log = logging.getLogger("reptrend.catalog")


def seed_catalog(engine: Engine, tenant: str) -> int:
    """Write the catalog resources the tenant has never had; returns how many were written."""
    with UnitOfWork(engine, tenant, write=True) as uow:
        written = ensure_catalog(uow.resources)
        uow.commit()
    if written:
        log.info("protocol catalog seeded", extra={"resources": written})
    return written


def main() -> int:
    settings = Settings()
    configure_logging(settings.log_level)
    engine = create_engine(settings.database_url)
    try:
        seed_catalog(engine, settings.default_tenant)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
