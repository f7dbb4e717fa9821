"""Narrow clinical facts derived from the session contract (CLINICAL_RULES.md section 2).

Pure functions from FHIR JSON to rows: the write path calls them inside the same transaction
that stores the resources, so a fact never exists without its resource or the other way round.
Contract violations raise `InvalidResource` naming the offending element.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.codes import (
    EXERCISE_SYSTEM,
    FORM_FAULT_SYSTEM,
    PAIN_MAX,
    PAIN_MIN,
    PAIN_SEVERITY_NRS,
    REPETITION_INDEX_EXTENSION,
    SESSION_MEASURE_SYSTEM,
    SessionMeasure,
)
from domain.session_figures import RepetitionRow, pack_session, signed_64
from store.errors import InvalidResource
from store.fhir_dates import local_date, parse_instant, utc_offset_minutes
from store.indexing import split_reference


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What a repetition fact copies from its session."""

    procedure_id: str
    patient_id: str
    protocol: str
    local_date: date
    started_at: datetime


@dataclass(frozen=True, slots=True)
class RepetitionFact:
    index: int
    pain: int | None
    distance_cm: float | None = None
    form_faults: tuple[str, ...] = ()
    peripheral_symptoms: bool = False


@dataclass(frozen=True, slots=True)
class SessionObservation:
    """A repetition or compact Observation: which session it belongs to and its repetitions."""

    procedure_id: str
    repetitions: tuple[RepetitionFact, ...]


@dataclass(frozen=True, slots=True)
class GeneralPainReport:
    patient_id: str
    local_date: date
    effective_at: datetime
    pain: int


def _has_coding(concept: Any, system: str, code: str) -> bool:
    if not isinstance(concept, Mapping):
        return False
    return any(
        c.get("system") == system and c.get("code") == code for c in concept.get("coding", ())
    )


def _reference_id(reference: Any, expected_type: str, expression: str) -> str:
    ref = reference.get("reference") if isinstance(reference, Mapping) else None
    if not isinstance(ref, str):
        raise InvalidResource(f"{expression} must be a literal reference", expression)
    target_type, target_id = split_reference(ref)
    if target_type != expected_type:
        raise InvalidResource(f"{expression} must reference a {expected_type}", expression)
    return target_id


def exercise_protocol(procedure: Mapping[str, Any]) -> str | None:
    """The reptrend exercise code of a Procedure, or None for any other Procedure."""
    for coding in procedure.get("code", {}).get("coding", ()):
        if coding.get("system") == EXERCISE_SYSTEM and coding.get("code"):
            return str(coding["code"])
    return None


def exercise_session_row(procedure_id: str, procedure: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `exercise_session` row for a Procedure, or None when it is not an exercise session."""
    protocol = exercise_protocol(procedure)
    if protocol is None:
        return None
    patient_id = _reference_id(procedure.get("subject"), "Patient", "Procedure.subject")
    period = procedure.get("performedPeriod")
    if isinstance(period, Mapping) and period.get("start"):
        start, end = period["start"], period.get("end")
    elif procedure.get("performedDateTime"):
        start, end = procedure["performedDateTime"], None
    else:
        raise InvalidResource(
            "an exercise session needs performedPeriod.start or performedDateTime",
            "Procedure.performed",
        )
    if len(start) <= 10:
        raise InvalidResource(
            "an exercise session's start needs a time of day and offset", "Procedure.performed"
        )
    based_on = next(
        (
            b["reference"]
            for b in procedure.get("basedOn", ())
            if isinstance(b.get("reference"), str) and "ServiceRequest/" in b["reference"]
        ),
        None,
    )
    return {
        "procedure_id": procedure_id,
        "patient_id": patient_id,
        "protocol": protocol,
        "status": procedure.get("status", "unknown"),
        "local_date": local_date(start),
        "started_at": parse_instant(start),
        "utc_offset_minutes": utc_offset_minutes(start),
        "ended_at": parse_instant(end) if end and len(end) > 10 else None,
        "based_on": based_on,
    }


def session_info(row: Mapping[str, Any]) -> SessionInfo:
    return SessionInfo(
        procedure_id=row["procedure_id"],
        patient_id=row["patient_id"],
        protocol=row["protocol"],
        local_date=row["local_date"],
        started_at=row["started_at"],
    )


def _pain_value(holder: Mapping[str, Any], expression: str) -> int:
    if "valueInteger" in holder:
        value = holder["valueInteger"]
        where = f"{expression}.valueInteger"
    elif isinstance(holder.get("valueQuantity"), Mapping):
        value = holder["valueQuantity"].get("value")
        where = f"{expression}.valueQuantity.value"
    else:
        raise InvalidResource(
            "a pain score needs valueInteger or valueQuantity (0-10)", f"{expression}.value[x]"
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise InvalidResource("a pain score must be a whole number from 0 to 10", where)
    if not PAIN_MIN <= value <= PAIN_MAX:
        raise InvalidResource(f"a pain score must be from {PAIN_MIN} to {PAIN_MAX}", where)
    return int(value)


def _measure(component: Mapping[str, Any]) -> str | None:
    for coding in component.get("code", {}).get("coding", ()):
        if coding.get("system") == SESSION_MEASURE_SYSTEM:
            return str(coding.get("code"))
    return None


def _repetition_observation(body: Mapping[str, Any]) -> RepetitionFact:
    index: int | None = None
    distance: float | None = None
    faults: list[str] = []
    peripheral = False
    for i, component in enumerate(body.get("component", ())):
        where = f"Observation.component[{i}]"
        measure = _measure(component)
        if measure == SessionMeasure.REPETITION_INDEX:
            index = component.get("valueInteger")
            if not isinstance(index, int) or isinstance(index, bool) or index < 1:
                raise InvalidResource(
                    "repetition-index must be a valueInteger of 1 or more", f"{where}.valueInteger"
                )
        elif measure == SessionMeasure.KNEE_TO_CHEST_DISTANCE:
            quantity = component.get("valueQuantity", {})
            if isinstance(quantity.get("value"), int | float):
                distance = float(quantity["value"])
        elif measure == SessionMeasure.FORM_FAULT:
            concept = component.get("valueCodeableConcept", {})
            faults.extend(
                c["code"]
                for c in concept.get("coding", ())
                if c.get("system") == FORM_FAULT_SYSTEM and c.get("code")
            )
        elif measure == SessionMeasure.PERIPHERAL_SYMPTOMS:
            peripheral = peripheral or component.get("valueBoolean") is True
    if index is None:
        raise InvalidResource(
            "a repetition Observation needs a component coded "
            "session-measure#repetition-index with valueInteger",
            "Observation.component",
        )
    pain = _pain_value(body, "Observation")
    return RepetitionFact(index, pain, distance, tuple(faults), peripheral)


def _compact_observation(body: Mapping[str, Any]) -> tuple[RepetitionFact, ...]:
    repetitions: list[RepetitionFact] = []
    for i, component in enumerate(body.get("component", ())):
        where = f"Observation.component[{i}]"
        if not _has_coding(component.get("code"), PAIN_SEVERITY_NRS.system, PAIN_SEVERITY_NRS.code):
            continue
        index = next(
            (
                e.get("valueInteger")
                for e in component.get("extension", ())
                if e.get("url") == REPETITION_INDEX_EXTENSION
            ),
            None,
        )
        if not isinstance(index, int) or isinstance(index, bool) or index < 1:
            raise InvalidResource(
                "each pain component needs the repetition-index extension (valueInteger >= 1)",
                f"{where}.extension",
            )
        repetitions.append(RepetitionFact(index, _pain_value(component, where)))
    if not repetitions:
        raise InvalidResource(
            "a repetition-pain Observation needs one 72514-3 component per repetition",
            "Observation.component",
        )
    indexes = [r.index for r in repetitions]
    if len(set(indexes)) != len(indexes):
        raise InvalidResource("repetition indexes must be unique", "Observation.component")
    return tuple(repetitions)


def session_observation(body: Mapping[str, Any]) -> SessionObservation | None:
    """The session part of an Observation, or None when it is not a session Observation."""
    code = body.get("code")
    compact = _has_coding(code, SESSION_MEASURE_SYSTEM, SessionMeasure.REPETITION_PAIN)
    per_repetition = _has_coding(code, PAIN_SEVERITY_NRS.system, PAIN_SEVERITY_NRS.code)
    part_of = body.get("partOf") or ()
    if not compact and not (per_repetition and part_of):
        return None
    procedures = [p for p in part_of if "Procedure/" in str(p.get("reference", ""))]
    if len(procedures) != 1:
        raise InvalidResource(
            "a session Observation needs exactly one partOf reference to its Procedure",
            "Observation.partOf",
        )
    procedure_id = _reference_id(procedures[0], "Procedure", "Observation.partOf[0]")
    if compact:
        return SessionObservation(procedure_id, _compact_observation(body))
    return SessionObservation(procedure_id, (_repetition_observation(body),))


def general_pain_report(body: Mapping[str, Any]) -> GeneralPainReport | None:
    """A general 0-10 pain report (72514-3 without partOf), or None."""
    if body.get("partOf") or not _has_coding(
        body.get("code"), PAIN_SEVERITY_NRS.system, PAIN_SEVERITY_NRS.code
    ):
        return None
    if body.get("status") not in ("final", "amended", "corrected"):
        return None
    effective = body.get("effectiveDateTime")
    if not isinstance(effective, str):
        raise InvalidResource(
            "a pain report needs effectiveDateTime", "Observation.effectiveDateTime"
        )
    if len(effective) < 10:
        raise InvalidResource(
            f"a pain report counts for a day, so it needs at least a full date (YYYY-MM-DD); "
            f"effectiveDateTime is {effective!r}",
            "Observation.effectiveDateTime",
        )
    patient_id = _reference_id(body.get("subject"), "Patient", "Observation.subject")
    at = parse_instant(effective) if len(effective) > 10 else parse_instant(effective + "T00:00:00")
    return GeneralPainReport(
        patient_id, local_date(effective), at, _pain_value(body, "Observation")
    )


def fact_rows(
    observation_id: str, observation: SessionObservation, session: SessionInfo
) -> list[dict[str, Any]]:
    return [
        {
            "observation_id": observation_id,
            "repetition_index": rep.index,
            "procedure_id": session.procedure_id,
            "patient_id": session.patient_id,
            "protocol": session.protocol,
            "local_date": session.local_date,
            "started_at": session.started_at,
            "pain": rep.pain,
            "distance_cm": rep.distance_cm,
            "form_faults": " ".join(rep.form_faults) or None,
            "peripheral_symptoms": rep.peripheral_symptoms,
        }
        for rep in observation.repetitions
    ]


# The `session_fact` columns a session's figures are computed from.
FIGURE_INPUTS = (
    "procedure_id",
    "repetition_index",
    "pain",
    "distance_cm",
    "form_faults",
    "peripheral_symptoms",
)

# `exercise_session`'s figure columns of a session whose figures are not computed.
FIGURES_NOT_COMPUTED: Mapping[str, None] = {
    "rated_repetitions": None,
    "pain_code": None,
    "repetition_counts": None,
}


def session_figures(facts: Iterable[Mapping[str, Any]]) -> dict[str, int | None]:
    """`exercise_session`'s figure columns for a session's `session_fact` rows (all of them,
    in any order; unrated ones are left out)."""
    packed = pack_session(
        RepetitionRow(
            r["repetition_index"],
            r["pain"],
            r["distance_cm"],
            bool(r["form_faults"]),
            bool(r["peripheral_symptoms"]),
        )
        for r in facts
    )
    return {
        "rated_repetitions": packed.rated,
        "pain_code": None if packed.code is None else signed_64(packed.code),
        "repetition_counts": packed.counts,
    }
