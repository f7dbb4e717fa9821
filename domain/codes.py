"""Terminology the service reads and writes (CLINICAL_RULES sections 1, 2 and 8).

External codes are fixed by their owners; local codes live under the service's canonical base.
Code values are plain strings (StrEnum) so they can be written into FHIR JSON unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

CANONICAL_BASE: Final = "https://reptrend.dev/fhir"

LOINC: Final = "http://loinc.org"
SNOMED_CT: Final = "http://snomed.info/sct"
UCUM: Final = "http://unitsofmeasure.org"

EXERCISE_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/exercise"
SESSION_MEASURE_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/session-measure"
FORM_FAULT_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/form-fault"
PAIN_RESPONSE_SYSTEM: Final = f"{CANONICAL_BASE}/CodeSystem/pain-response"

# The compact session form carries the repetition index as an extension on each component.
REPETITION_INDEX_EXTENSION: Final = f"{CANONICAL_BASE}/StructureDefinition/repetition-index"


@dataclass(frozen=True, slots=True)
class Coding:
    """A system/code pair with its human-readable display."""

    system: str
    code: str
    display: str


PAIN_SEVERITY_NRS: Final = Coding(
    LOINC, "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
)
SCORE_UNIT: Final = Coding(UCUM, "{score}", "score")
EXERCISE_THERAPY: Final = Coding(SNOMED_CT, "229065009", "Exercise therapy")
LOW_BACK_PAIN: Final = Coding(SNOMED_CT, "279039007", "Low back pain")
LUMBAR_SPINE: Final = Coding(SNOMED_CT, "122496007", "Lumbar spine structure")

PAIN_MIN: Final = 0
PAIN_MAX: Final = 10


class ExerciseCode(StrEnum):
    """Codes of CodeSystem `exercise`."""

    ROCKING_KNEES_TO_CHEST = "rocking-knees-to-chest"
    FLEXION_IN_LYING = "flexion-in-lying"
    SPINAL_ROLLING = "spinal-rolling"
    EXTENSION_IN_LYING = "extension-in-lying"


class FormFault(StrEnum):
    """Codes of CodeSystem `form-fault`: the technique errors the seed texts warn about."""

    HEAD_RAISED = "head-raised"
    LEGS_STRAIGHTENED_ON_LOWERING = "legs-straightened-on-lowering"
    # Tugging at the knees with the neck muscles, jabbing the head up (seed 000).
    NECK_STRAIN = "neck-strain"


class SessionMeasure(StrEnum):
    """Codes of CodeSystem `session-measure`: what a repetition Observation reports."""

    REPETITION_INDEX = "repetition-index"
    REPETITION_PAIN = "repetition-pain"
    KNEE_TO_CHEST_DISTANCE = "knee-to-chest-distance"
    FORM_FAULT = "form-fault"
    PERIPHERAL_SYMPTOMS = "peripheral-symptoms"
