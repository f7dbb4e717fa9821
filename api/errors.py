"""The one place errors become HTTP: every error answers a FHIR OperationOutcome."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.fhir_response import FhirResponse
from api.operation_outcome import operation_outcome
from domain.protocols import InvalidParameter
from store.errors import (
    InvalidRequest,
    InvalidResource,
    MethodNotAllowed,
    NotSupported,
    PreconditionFailed,
    ReptrendError,
    ResourceGone,
    ResourceNotFound,
    SchemaNotMigrated,
    VersionConflict,
)

log = logging.getLogger("reptrend.api")

STATUS: dict[type[ReptrendError], int] = {
    InvalidResource: 400,
    InvalidRequest: 400,
    NotSupported: 404,
    MethodNotAllowed: 405,
    ResourceNotFound: 404,
    ResourceGone: 410,
    VersionConflict: 409,
    PreconditionFailed: 412,
    SchemaNotMigrated: 503,
}


class HttpProblem(ReptrendError):
    """A protocol-level problem detected at the HTTP edge (media type, body size)."""

    def __init__(self, status: int, diagnostics: str, code: str = "invalid") -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code


def status_for(error: ReptrendError) -> int:
    if isinstance(error, HttpProblem):
        return error.status
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def outcome_for(error: ReptrendError) -> dict[str, Any]:
    return operation_outcome(error.diagnostics, code=error.code, expression=error.expression)


def bundle_error_entry(error: ReptrendError) -> dict[str, Any]:
    """A batch-response entry for a failed entry."""
    status = status_for(error)
    return {"response": {"status": str(status), "outcome": outcome_for(error)}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ReptrendError)
    async def _reptrend(_request: Request, error: ReptrendError) -> Response:
        return FhirResponse(outcome_for(error), status_code=status_for(error))

    @app.exception_handler(InvalidParameter)
    async def _parameter(_request: Request, error: InvalidParameter) -> Response:
        return FhirResponse(operation_outcome(str(error), code="invalid"), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, error: RequestValidationError) -> Response:
        problems = error.errors()
        where = ".".join(str(p) for p in problems[0]["loc"]) if problems else None
        message = "; ".join(
            f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}" for problem in problems
        )
        return FhirResponse(
            operation_outcome(message, code="invalid", expression=where), status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, error: StarletteHTTPException) -> Response:
        code = "not-found" if error.status_code == 404 else "processing"
        return FhirResponse(
            operation_outcome(str(error.detail), code=code),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, error: Exception) -> Response:
        # The type only: messages of unexpected errors may quote data.
        log.error("unhandled error", extra={"error_type": type(error).__name__})
        return FhirResponse(
            operation_outcome("internal server error", code="exception"), status_code=500
        )
