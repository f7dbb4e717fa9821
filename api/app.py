"""The application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api.analytics.clinical_routes import router as clinical_router
from api.analytics.cohort_routes import router as cohort_router
from api.cds.routes import router as cds_router
from api.dashboard.routes import router as dashboard_router
from api.errors import install_error_handlers
from api.export_worker import start_export_worker
from api.fhir.bulk_routes import router as bulk_router
from api.fhir.hot_routes import HOT_ROUTES
from api.fhir.negotiation import negotiate
from api.fhir.routes import router as fhir_router
from api.fhir.search_routes import router as search_router
from api.health import router as health_router
from api.logging_setup import configure_logging
from api.middleware import RequestContextMiddleware
from api.settings import Settings, settings_from_environment
from store.database import create_engine, create_planning_engine
from store.statement_pool import create_statement_pool


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or settings_from_environment()
    configure_logging(settings.log_level)
    engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
    statement_pool = create_statement_pool(settings.database_url, size=settings.db_pool_size)
    planning_engine = create_planning_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        export_worker = start_export_worker(_app)
        if settings.gc_freeze:
            # Everything alive after start-up (modules, models, the FHIR validators, routes)
            # lives as long as the process: out of the collector's sight, a full collection
            # walks only what requests allocate instead of stalling every request in flight.
            gc.collect()
            gc.freeze()
        yield
        export_worker.stop()
        engine.dispose()
        if planning_engine is not None:
            planning_engine.dispose()
        if statement_pool is not None:
            await statement_pool.close()

    app = FastAPI(
        title="reptrend",
        summary="Clinical outcomes data service for exercise-based low-back-pain rehabilitation",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.statement_pool = statement_pool
    app.state.planning_engine = planning_engine
    install_error_handlers(app)
    # The hot interactions first (their strict path segments take nothing else), then
    # literal paths (/fhir/Patient/$export, /fhir/Patient/_history, ...) before the loose
    # /fhir/{type}/{id} patterns that would otherwise swallow them.
    app.router.routes.extend(HOT_ROUTES)
    app.include_router(health_router)
    fhir_rules = [Depends(negotiate)]
    app.include_router(bulk_router, dependencies=fhir_rules)
    app.include_router(search_router, dependencies=fhir_rules)
    app.include_router(fhir_router, dependencies=fhir_rules)
    app.include_router(clinical_router)
    app.include_router(cohort_router)
    app.include_router(cds_router)
    app.include_router(dashboard_router)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
