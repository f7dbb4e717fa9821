"""Liveness and readiness probes."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter

from api.deps import EngineDep
from api.fhir_response import FhirResponse
from store.errors import ReptrendError
from store.schema import require_migrated

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database answers and is migrated")
def readyz(engine: EngineDep) -> FhirResponse:
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        require_migrated(engine)
    except ReptrendError as error:
        return FhirResponse({"status": "unavailable", "reason": error.diagnostics}, status_code=503)
    except sa.exc.SQLAlchemyError as error:
        reason = f"database unreachable ({type(error).__name__})"
        return FhirResponse({"status": "unavailable", "reason": reason}, status_code=503)
    return FhirResponse({"status": "ready"}, media_type="application/json")
