"""Which resources belong to a patient: the FHIR Patient compartment, read from the index.

A resource is in the compartment of Patient/p when it is that Patient, or when one of its
compartment parameters (below, after FHIR R4's CompartmentDefinition "patient", restricted to
the parameters this server indexes) holds a reference to Patient/p in `search_reference`.
Types this server offers that are not in the compartment (Practitioner, Organization,
PlanDefinition, ActivityDefinition) are never part of it.

$everything, Patient- and Group-level $export and `reptrend export` all ask the same question
through `in_compartment`, with a `PatientScope` saying whose compartments count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from store import tables
from store.resource_store import ResourceStore, StoredResource

_RESOURCE = tables.Resource.__table__  # type: ignore[attr-defined]
_REFERENCE = tables.SearchReference.__table__  # type: ignore[attr-defined]

# Search parameters (of store/search_params.py) whose Patient references put a resource in
# that patient's compartment. Observation.performer and the like are not indexed, so not here.
COMPARTMENT_PARAMS: Mapping[str, tuple[str, ...]] = {
    "AuditEvent": ("agent", "entity"),
    "CarePlan": ("patient", "subject"),
    "DetectedIssue": ("patient",),
    "Flag": ("patient", "subject"),
    "Group": ("member",),
    "Observation": ("patient", "subject"),
    "Procedure": ("patient", "subject"),
    "ServiceRequest": ("patient", "subject"),
    "Task": ("patient", "subject"),
}

# Patient first: $everything lists the patient before what refers to it.
COMPARTMENT_TYPES: tuple[str, ...] = ("Patient", *sorted(COMPARTMENT_PARAMS))


class ScopeKind(StrEnum):
    ALL = "all"
    PATIENT = "patient"
    GROUP = "group"
    ORGANIZATION = "organization"


@dataclass(frozen=True, slots=True)
class PatientScope:
    """Whose compartments: every patient, one patient, a Group's members, or the patients an
    Organization manages (Patient.managingOrganization)."""

    kind: ScopeKind
    id: str | None = None

    @classmethod
    def all_patients(cls) -> PatientScope:
        return cls(ScopeKind.ALL)

    @classmethod
    def patient(cls, patient_id: str) -> PatientScope:
        return cls(ScopeKind.PATIENT, patient_id)

    @classmethod
    def group(cls, group_id: str) -> PatientScope:
        return cls(ScopeKind.GROUP, group_id)

    @classmethod
    def organization(cls, organization_id: str) -> PatientScope:
        return cls(ScopeKind.ORGANIZATION, organization_id)


def member_ids(tenant: str, scope: PatientScope) -> sa.Select[Any] | None:
    """A subquery of the patient ids in scope; None when every patient is."""
    if scope.kind is ScopeKind.ALL:
        return None
    if scope.kind is ScopeKind.PATIENT:
        return sa.select(sa.literal(scope.id, sa.String()))
    ref = _REFERENCE.alias("members")
    if scope.kind is ScopeKind.GROUP:
        return sa.select(ref.c.target_id).where(
            ref.c.tenant == tenant,
            ref.c.type == "Group",
            ref.c.resource_id == scope.id,
            ref.c.param == "member",
            ref.c.target_type == "Patient",
        )
    return sa.select(ref.c.resource_id).where(
        ref.c.tenant == tenant,
        ref.c.type == "Patient",
        ref.c.param == "organization",
        ref.c.target_id == scope.id,
    )


def in_compartment(
    table: sa.FromClause, tenant: str, resource_type: str, scope: PatientScope
) -> sa.ColumnElement[bool]:
    """A condition on `table` (resource or resource_version rows of `resource_type`): the row
    is in the compartment of a patient in scope."""
    members = member_ids(tenant, scope)
    if resource_type == "Patient":
        if scope.kind is ScopeKind.ALL:
            return sa.true()
        if scope.kind is ScopeKind.PATIENT:
            return table.c.id == scope.id
        assert members is not None
        return table.c.id.in_(members.scalar_subquery())
    params = COMPARTMENT_PARAMS.get(resource_type)
    if params is None:
        return sa.false()
    ref = _REFERENCE.alias("compartment")
    condition = sa.and_(
        ref.c.tenant == tenant,
        ref.c.type == resource_type,
        ref.c.resource_id == table.c.id,
        ref.c.param.in_(params),
        ref.c.target_type == "Patient",
    )
    if scope.kind is ScopeKind.PATIENT:
        condition = sa.and_(condition, ref.c.target_id == scope.id)
    elif members is not None:
        condition = sa.and_(condition, ref.c.target_id.in_(members.scalar_subquery()))
    return sa.exists(sa.select(sa.literal(1)).select_from(ref).where(condition))


def patient_ids(store: ResourceStore, scope: PatientScope) -> list[str]:
    """The live patients in scope, by id."""
    query = sa.select(_RESOURCE.c.id).where(
        _RESOURCE.c.tenant == store.tenant,
        _RESOURCE.c.type == "Patient",
        _RESOURCE.c.deleted.is_(False),
        in_compartment(_RESOURCE, store.tenant, "Patient", scope),
    )
    return list(store.connection.execute(query.order_by(_RESOURCE.c.id)).scalars())


# --- $everything ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where the next page starts: after `id` of the type at `type_index` of the type list."""

    type_index: int
    id: str

    def token(self) -> str:
        return f"{self.type_index}:{self.id}"

    @classmethod
    def parse(cls, token: str) -> PageCursor:
        index, _, resource_id = token.partition(":")
        if not index.isdigit() or not resource_id:
            raise ValueError("not a page cursor")
        return cls(int(index), resource_id)


@dataclass(frozen=True, slots=True)
class EverythingPage:
    resources: list[StoredResource]
    total: int
    next: PageCursor | None


def _everything_query(
    store: ResourceStore, patient_id: str, resource_type: str, since: datetime | None
) -> sa.Select[Any]:
    query = sa.select(_RESOURCE).where(
        _RESOURCE.c.tenant == store.tenant,
        _RESOURCE.c.type == resource_type,
        _RESOURCE.c.deleted.is_(False),
        in_compartment(_RESOURCE, store.tenant, resource_type, PatientScope.patient(patient_id)),
    )
    if since is not None:
        query = query.where(_RESOURCE.c.last_updated > since)
    return query


def everything_page(
    store: ResourceStore,
    patient_id: str,
    *,
    types: Sequence[str] = COMPARTMENT_TYPES,
    since: datetime | None = None,
    count: int = 100,
    after: PageCursor | None = None,
) -> EverythingPage:
    """One page of the patient's compartment, types in the order given, ids ascending within
    a type (keyset paging, so concurrent writes never shift a page). Reads the Patient first so
    an unknown or deleted patient raises ResourceNotFound / ResourceGone."""
    store.read("Patient", patient_id)
    total = 0
    found: list[tuple[int, StoredResource]] = []
    for index, resource_type in enumerate(types):
        base = _everything_query(store, patient_id, resource_type, since)
        total += int(
            store.connection.execute(
                sa.select(sa.func.count()).select_from(base.subquery())
            ).scalar_one()
        )
        wanted = count + 1 - len(found)
        if wanted <= 0 or (after is not None and index < after.type_index):
            continue
        query = base
        if after is not None and index == after.type_index:
            query = query.where(_RESOURCE.c.id > after.id)
        for row in store.connection.execute(query.order_by(_RESOURCE.c.id).limit(wanted)):
            found.append(
                (
                    index,
                    StoredResource(
                        row.type, row.id, row.version_id, row.last_updated, False, row.body
                    ),
                )
            )
    page = found[:count]
    cursor = None
    if len(found) > count:
        last_index, last = page[-1]
        cursor = PageCursor(last_index, last.id)
    return EverythingPage([resource for _, resource in page], total, cursor)
