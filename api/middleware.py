"""Request ids, access logs without patient data, and the request body size limit."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import HttpProblem
from api.fhir_response import FhirResponse
from api.logging_setup import request_id_var
from api.operation_outcome import operation_outcome

log = logging.getLogger("reptrend.access")
REQUEST_ID = "x-request-id"


_CONVERTOR = re.compile(r"\{(\w+):\w+\}")
_TEMPLATES: dict[str, str] = {}


def _route_template(scope: Scope) -> str:
    """The route's path as logged: `/fhir/{type}/{id}`, path convertors left out."""
    path = getattr(scope.get("route"), "path", None)
    if not path:
        return "(unmatched)"
    template = _TEMPLATES.get(path)
    if template is None:
        template = _TEMPLATES[path] = _CONVERTOR.sub(r"{\1}", path)
    return template


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware), so streaming responses and context vars just work."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        supplied = headers.get(REQUEST_ID.encode(), b"").decode("latin-1")
        request_id = supplied if 0 < len(supplied) <= 64 else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = {"code": 500}

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            response = FhirResponse(
                operation_outcome(
                    f"the request body exceeds the limit of {self.max_body_bytes} bytes",
                    code="too-costly",
                ),
                status_code=413,
                headers={REQUEST_ID: request_id},
            )
            await response(scope, receive, send)
            request_id_var.reset(token)
            return

        received = {"bytes": 0}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received["bytes"] += len(message.get("body", b""))
                if received["bytes"] > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            fields: dict[str, Any] = {
                "method": scope["method"],
                "route": _route_template(scope),
                "status": status["code"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            log.info("request", extra=fields)
            request_id_var.reset(token)


class BodyTooLarge(HttpProblem):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes", "too-costly")
