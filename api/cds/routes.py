"""CDS Hooks 2.0: discovery and the patient-view service.

The service reads `context.patientId` (a Patient logical id on this server) and answers one
card per protocol worth a clinician's attention today: a warning while the protocol is on hold,
retry-due, retry-overdue or needs clinician review, and an info card when a patient who has not
started yet meets the entry criteria. Prefetch is accepted and ignored: the data is local.
A patient this server does not know gets no cards (the EHR's workflow goes on).
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.analytics.clinical_routes import Today
from api.deps import ReadUow
from domain.protocols import CATALOG
from domain.readiness import Readiness
from domain.stop_rule import HoldOutcome, ProtocolStatus
from store.clinical_repository import AssessedSession, ProtocolView, protocol_view
from store.errors import InvalidRequest, ResourceGone, ResourceNotFound
from store.protocol_catalog import protocol_definitions

router = APIRouter(tags=["cds-hooks"])

SERVICE_ID: Final = "reptrend-flexion-status"
HOOK: Final = "patient-view"
SOURCE_LABEL: Final = "reptrend stop rule (stop, wait one to two weeks, try again)"
MAX_SUMMARY: Final = 139  # CDS Hooks: "<140 characters"
_CARD_NAMESPACE: Final = uuid.UUID("6f1d9a52-3f0e-4d7b-9a51-2b1f0e0c6a10")
_WARNINGS: Final = frozenset(
    {
        ProtocolStatus.ON_HOLD,
        ProtocolStatus.RETRY_DUE,
        ProtocolStatus.RETRY_OVERDUE,
        ProtocolStatus.CLINICIAN_REVIEW,
    }
)


class CdsService(BaseModel):
    hook: str
    id: str
    title: str
    description: str


class Discovery(BaseModel):
    services: list[CdsService]


class CdsRequest(BaseModel):
    """A CDS Hooks request; fields this service does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    hook: str
    hookInstance: str  # camelCase: the CDS Hooks field names
    context: dict[str, Any]
    fhirServer: str | None = None
    prefetch: dict[str, Any] | None = None


class Source(BaseModel):
    label: str


class Card(BaseModel):
    uuid: str
    summary: str = Field(max_length=MAX_SUMMARY)
    detail: str
    indicator: str = Field(description="info | warning | critical")
    source: Source


class CdsResponse(BaseModel):
    cards: list[Card]


SERVICE = CdsService(
    hook=HOOK,
    id=SERVICE_ID,
    title="reptrend flexion exercise status",
    description=(
        "Warns when a flexion exercise is on hold after pain rose with each repetition, when "
        "its retry is due or overdue, or when failed retries need clinician review; tells when "
        "a patient meets the entry criteria for flexion in lying."
    ),
)


@router.get("/cds-services", summary="CDS Hooks discovery", response_model=Discovery)
def discovery() -> Discovery:
    return Discovery(services=[SERVICE])


@router.post(
    "/cds-services/{service_id}",
    summary="CDS Hooks service call",
    response_model=CdsResponse,
    responses={404: {"description": "unknown service (OperationOutcome)"}},
)
def call_service(service_id: str, request: CdsRequest, uow: ReadUow, now: Today) -> CdsResponse:
    if service_id != SERVICE_ID:
        raise ResourceNotFound(f"no CDS service '{service_id}'; see /cds-services")
    if request.hook != HOOK:
        raise InvalidRequest(f"{SERVICE_ID} answers the {HOOK} hook", "hook")
    patient_id = request.context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        raise InvalidRequest("context.patientId is required", "context.patientId")
    store = uow.resources
    definitions = protocol_definitions(store, CATALOG)
    cards = []
    for code, definition in sorted(definitions.items()):
        params = definition.parameters
        if not (params.stop_rule or params.requires_readiness):
            continue
        try:
            view = protocol_view(store, patient_id, code, now)
        except (ResourceNotFound, ResourceGone):
            return CdsResponse(cards=[])
        card = card_for(view, request.hookInstance)
        if card is not None:
            cards.append(card)
    return CdsResponse(cards=cards)


def card_for(view: ProtocolView, hook_instance: str) -> Card | None:
    status = view.state.status
    if status in _WARNINGS:
        indicator, summary = "warning", _warning_summary(view)
    elif status is ProtocolStatus.NO_SESSIONS and view.readiness.readiness is Readiness.READY:
        r = view.readiness
        indicator = "info"
        summary = (
            f"Ready to start {_name(view.protocol)}: {r.pain_free_days} of {r.reported_days} "
            f"days pain-free, worst pain {r.worst_pain} ({r.window_start} to {r.window_end})"
        )
    else:
        return None
    key = f"{hook_instance}/{view.patient_id}/{view.protocol}/{status}"
    return Card(
        uuid=str(uuid.uuid5(_CARD_NAMESPACE, key)),
        summary=_fit(summary),
        detail=view.explanation,
        indicator=indicator,
        source=Source(label=SOURCE_LABEL),
    )


def _name(code: str) -> str:
    return code.replace("-", " ").capitalize() if code in CATALOG else code


def _pain(session: AssessedSession | None) -> str:
    if session is None or not session.assessment.pain:
        return "no pain rated"
    return "pain " + ",".join(map(str, session.assessment.pain))


def _warning_summary(view: ProtocolView) -> str:
    state = view.state
    name = _name(view.protocol)
    if state.status is ProtocolStatus.CLINICIAN_REVIEW:
        failed = [h for h in state.holds if h.outcome is HoldOutcome.FAILED]
        last = failed[-1] if failed else state.holds[-1]
        retry = view.session(last.closed_by or last.opened_by)
        return (
            f"{name} needs clinician review: {state.failed_retries} failed retries, last on "
            f"{last.closed_on or last.since} ({_pain(retry)})"
        )
    hold = state.hold
    assert hold is not None  # on-hold, retry-due and retry-overdue all have an open hold
    opened = f"on hold since {hold.since} ({_pain(view.session(hold.opened_by))})"
    if state.status is ProtocolStatus.ON_HOLD:
        return f"{name} {opened}; retry {hold.retry_from} to {hold.retry_until}"
    if state.status is ProtocolStatus.RETRY_DUE:
        return f"{name} retry due {hold.retry_from} to {hold.retry_until}: {opened}"
    return f"{name} retry overdue since {hold.retry_until}: {opened}"


def _fit(summary: str) -> str:
    """Long pain lists could push a summary past the limit: cut, and say so."""
    if len(summary) <= MAX_SUMMARY:
        return summary
    return summary[: MAX_SUMMARY - 1] + "…"
