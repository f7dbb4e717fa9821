"""Deterministic demo data: FHIR R4 transaction Bundles for three synthetic clinics.

Every patient is built from a named scenario (`DEMO_SCENARIOS`) whose session history is laid out
relative to the `anchor` day, so that as of `anchor` the demo shows every flexion-in-lying status
of the stop rule (CLINICAL_RULES section 5), every readiness class (section 4) and every pain
response (section 3), with realistic dosage, extension follow-ups and form faults (section 6).

Pure: no I/O, no clock, no database. The same `anchor` and `seed` always give the same Bundles;
a later anchor gives the same data with every date moved by the same number of days. All data
is dated strictly before `anchor`, so it is "as of anchor" whatever the time of day.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from domain.codes import (
    EXERCISE_SYSTEM,
    EXERCISE_THERAPY,
    FORM_FAULT_SYSTEM,
    LOW_BACK_PAIN,
    LUMBAR_SPINE,
    PAIN_SEVERITY_NRS,
    REPETITION_INDEX_EXTENSION,
    SCORE_UNIT,
    SESSION_MEASURE_SYSTEM,
    UCUM,
    Coding,
    ExerciseCode,
    FormFault,
    SessionMeasure,
)
from domain.protocols import CATALOG

DEFAULT_SEED: Final = 20260311
DEMO_BASE: Final = "https://reptrend.dev/fhir/demo"
CLINIC_SYSTEM: Final = f"{DEMO_BASE}/clinic"
PATIENT_SYSTEM: Final = f"{DEMO_BASE}/patient"
MAX_BUNDLE_ENTRIES: Final = 1500  # a patient's data is split at session boundaries above this
HISTORY_DAYS: Final = 63  # nothing is dated earlier than anchor - 63 days (9 weeks)
READINESS_BLOCK_DAYS: Final = 14  # the diary before the first session is shaped for readiness

FLEXION: Final = ExerciseCode.FLEXION_IN_LYING.value
ROCKING: Final = ExerciseCode.ROCKING_KNEES_TO_CHEST.value
ROLLING: Final = ExerciseCode.SPINAL_ROLLING.value
EXTENSION: Final = ExerciseCode.EXTENSION_IN_LYING.value
FLEXION_CATEGORY: Final = frozenset({FLEXION, ROCKING, ROLLING})  # followed by extension

# Timeline events, each on a day relative to anchor (CLINICAL_RULES section 5).
WORSENING: Final = "worsening"  # a training day whose last session is worsening: hold opens
PREMATURE: Final = "premature"  # one tolerated session inside the hold, before the window
PREMATURE_WORSENING: Final = "premature-worsening"  # ... that worsens: the hold restarts
RETRY: Final = "retry"  # first session in the window, tolerated: daily training resumes
FAILED_RETRY: Final = "failed-retry"  # first session in the window, worsening: new hold


@dataclass(frozen=True)
class Clinic:
    id: str
    name: str
    offset: str  # UTC offset written on every local time of its patients


CLINICS: Final = (
    Clinic("demo-clinic-1", "Demo Back Clinic Northfield (synthetic)", "+01:00"),
    Clinic("demo-clinic-2", "Demo Spine Rehab Lakeside (synthetic)", "-05:00"),
    # +10:00 and -05:00 put morning and late sessions on another UTC date than the local one.
    Clinic("demo-clinic-3", "Demo Physio Harbourside (synthetic)", "+10:00"),
)


@dataclass(frozen=True)
class Scenario:
    """A patient story. Days are relative to anchor (-1 = the day before)."""

    name: str
    protocol: str  # exercise code of the prescription
    status: str | None  # intended flexion-in-lying status as of anchor; None: other protocol
    count: int  # patients built from this scenario
    first: int | None  # day of the first session; None: not started yet
    events: tuple[tuple[str, int], ...] = ()
    # Diary shape over the 14 days before the first session (or before anchor).
    readiness: str = "ready"  # "ready" | "not-ready" | "unknown"
    # Each patient's whole timeline moves 0..jitter days earlier; the status holds for any shift.
    jitter: int = 0


# With a hold opened on day h (anchor = 0) and the window [h + 7, h + 14]:
# on-hold when h >= -6, retry-due when -14 <= h <= -7, retry-overdue when h <= -15.
DEMO_SCENARIOS: Final[tuple[Scenario, ...]] = (
    # Not started: readiness is what the dashboard shows beside `no-sessions`.
    Scenario("waiting, pain-free diary", FLEXION, "no-sessions", 8, None),
    Scenario("waiting, still in pain", FLEXION, "no-sessions", 6, None, readiness="not-ready"),
    Scenario("waiting, sparse diary", FLEXION, "no-sessions", 4, None, readiness="unknown"),
    # Training without a worsening session.
    Scenario("steady progress", FLEXION, "active", 28, -24, jitter=14),
    Scenario("recent start", FLEXION, "active", 14, -6, jitter=6),
    Scenario("started before ready", FLEXION, "active", 8, -20, readiness="not-ready", jitter=10),
    Scenario("started with a sparse diary", FLEXION, "active", 4, -16, readiness="unknown"),
    # Hold open, window not yet reached.
    Scenario("worsening this week", FLEXION, "on-hold", 8, -14, ((WORSENING, -3),), jitter=3),
    Scenario(
        "premature retry tolerated",
        FLEXION,
        "on-hold",
        5,
        -18,
        ((WORSENING, -5), (PREMATURE, -2)),
        jitter=1,
    ),
    Scenario(
        "premature retry worsened, hold restarted",
        FLEXION,
        "on-hold",
        4,
        -22,
        ((WORSENING, -10), (PREMATURE_WORSENING, -5)),
        jitter=1,
    ),
    Scenario(
        "worsened again after resuming",
        FLEXION,
        "on-hold",
        3,
        -44,
        ((WORSENING, -36), (RETRY, -27), (WORSENING, -4)),
        jitter=2,
    ),
    # Hold open, window open.
    Scenario("retry window open", FLEXION, "retry-due", 8, -24, ((WORSENING, -9),), jitter=4),
    Scenario(
        "premature retry, window open",
        FLEXION,
        "retry-due",
        4,
        -26,
        ((WORSENING, -12), (PREMATURE, -8)),
        jitter=2,
    ),
    Scenario(
        "failed retry, window open again",
        FLEXION,
        "retry-due",
        4,
        -34,
        ((WORSENING, -22), (FAILED_RETRY, -13)),
        jitter=1,
    ),
    # Hold open, window passed without a retry.
    Scenario(
        "missed the retry window",
        FLEXION,
        "retry-overdue",
        6,
        -32,
        ((WORSENING, -20),),
        jitter=8,
    ),
    Scenario(
        "premature retry, then missed the window",
        FLEXION,
        "retry-overdue",
        3,
        -36,
        ((WORSENING, -26), (PREMATURE, -22)),
        jitter=4,
    ),
    # Retried and tolerated.
    Scenario(
        "worsening then tolerated retry",
        FLEXION,
        "resumed",
        14,
        -40,
        ((WORSENING, -30), (RETRY, -21)),
        jitter=6,
    ),
    Scenario(
        "premature retry then tolerated retry",
        FLEXION,
        "resumed",
        5,
        -36,
        ((WORSENING, -28), (PREMATURE, -25), (RETRY, -19)),
        jitter=4,
    ),
    Scenario(
        "retry on the last day of the window",
        FLEXION,
        "resumed",
        3,
        -32,
        ((WORSENING, -24), (RETRY, -10)),
        jitter=3,
    ),
    Scenario(
        "failed retry then tolerated retry",
        FLEXION,
        "resumed",
        5,
        -44,
        ((WORSENING, -38), (FAILED_RETRY, -30), (RETRY, -20)),
        jitter=2,
    ),
    # Two failed retries: the protocol needs the clinician.
    Scenario(
        "two failed retries",
        FLEXION,
        "clinician-review",
        6,
        -46,
        ((WORSENING, -40), (FAILED_RETRY, -32), (FAILED_RETRY, -24)),
        jitter=3,
    ),
    Scenario(
        "two failed retries on the window's first day",
        FLEXION,
        "clinician-review",
        3,
        -36,
        ((WORSENING, -30), (FAILED_RETRY, -23), (FAILED_RETRY, -16)),
        jitter=4,
    ),
    # The other protocols of the catalog (no stop rule).
    Scenario("rocking, acute episode", ROCKING, None, 18, -14, readiness="not-ready", jitter=10),
    Scenario("rocking, chronic stiffness", ROCKING, None, 10, -28, jitter=10),
    Scenario("spinal rolling", ROLLING, None, 9, -21, jitter=10),
    Scenario("extension in lying only", EXTENSION, None, 10, -21, jitter=14),
)

DEMO_PATIENT_COUNT: Final = sum(s.count for s in DEMO_SCENARIOS)

_GIVEN: Final = ("Alex", "Sam", "Robin", "Jordan", "Casey", "Taylor", "Morgan", "Jamie", "Riley")
_FAMILY: Final = ("Sampleton", "Testwell", "Mockridge", "Placeholder", "Dummyford", "Fictionson")


@dataclass(frozen=True)
class DemoPatient:
    id: str
    clinic: Clinic
    scenario: Scenario
    seed: int  # for this patient's own random.Random


def demo_patients(seed: int = DEFAULT_SEED) -> list[DemoPatient]:
    """Who is who: patient ids, clinics and scenarios (cheap; no resources are built)."""
    rng = random.Random(seed)
    scenarios = [s for s in DEMO_SCENARIOS for _ in range(s.count)]
    rng.shuffle(scenarios)  # ids do not give the scenario away
    seen: dict[str, int] = {}
    patients = []
    for number, scenario in enumerate(scenarios, start=1):
        # Round-robin within each scenario, so every clinic gets its share of every story.
        k = seen[scenario.name] = seen.get(scenario.name, -1) + 1
        clinic = CLINICS[(k + DEMO_SCENARIOS.index(scenario)) % len(CLINICS)]
        patients.append(DemoPatient(f"demo-p{number:03d}", clinic, scenario, rng.getrandbits(32)))
    return patients


def expected_statuses(anchor: date, seed: int = DEFAULT_SEED) -> dict[str, str]:
    """Patient id -> flexion-in-lying status intended as of `anchor`, for every patient whose
    prescription is flexion-in-lying (the other protocols have no stop rule)."""
    del anchor  # timelines are relative to the anchor, so the statuses do not depend on it
    return {p.id: p.scenario.status for p in demo_patients(seed) if p.scenario.status is not None}


def demo_bundles(anchor: date, seed: int = DEFAULT_SEED) -> Iterator[dict[str, Any]]:
    """The demo data set as transaction Bundles, in load order: the organizations, then each
    patient's data (usually one Bundle per patient), then one Group per clinic."""
    patients = demo_patients(seed)
    yield _bundle([_entry(_organization(c)) for c in CLINICS])
    for patient in patients:
        for entries in _pack(_patient_groups(anchor, patient)):
            yield _bundle(entries)
    yield groups_bundle(patients)


def groups_bundle(patients: Sequence[DemoPatient]) -> dict[str, Any]:
    """One Group per clinic with the given patients as members (the last demo Bundle)."""
    return _bundle([_entry(_group(c, [p for p in patients if p.clinic == c])) for c in CLINICS])


# ---------------------------------------------------------------------------------------------
# Bundles and the resources that are not per session


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    ref = f"{resource['resourceType']}/{resource['id']}"
    return {
        "fullUrl": f"{DEMO_BASE}/{ref}",
        "resource": resource,
        "request": {"method": "PUT", "url": ref},
    }


def _bundle(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _pack(groups: list[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
    """Concatenate entry groups into Bundles of at most MAX_BUNDLE_ENTRIES; a group (one session
    and its observations) is never split, so a Procedure always precedes its Observations."""
    current: list[dict[str, Any]] = []
    for group in groups:
        if current and len(current) + len(group) > MAX_BUNDLE_ENTRIES:
            yield current
            current = []
        current.extend(group)
    if current:
        yield current


def _ref(resource_type: str, id_: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{id_}"}


def _coding(c: Coding) -> dict[str, str]:
    return {"system": c.system, "code": c.code, "display": c.display}


def _exercise_code(exercise: str) -> dict[str, Any]:
    name = CATALOG[exercise].name
    return {
        "coding": [
            {"system": EXERCISE_SYSTEM, "code": exercise, "display": name},
            _coding(EXERCISE_THERAPY),
        ],
        "text": name,
    }


def _organization(clinic: Clinic) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": clinic.id,
        "identifier": [{"system": CLINIC_SYSTEM, "value": clinic.id}],
        "active": True,
        "name": clinic.name,
    }


def _group(clinic: Clinic, members: Sequence[DemoPatient]) -> dict[str, Any]:
    return {
        "resourceType": "Group",
        "id": f"{clinic.id}-patients",
        "type": "person",
        "actual": True,
        "name": f"Patients of {clinic.name}",
        "quantity": len(members),
        "managingEntity": _ref("Organization", clinic.id),
        "member": [{"entity": _ref("Patient", p.id)} for p in members],
    }


def _patient(p: DemoPatient, rng: random.Random, anchor: date) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": p.id,
        "identifier": [{"system": PATIENT_SYSTEM, "value": p.id}],
        "active": True,
        "name": [
            {
                "use": "official",
                "family": rng.choice(_FAMILY),
                "given": [rng.choice(_GIVEN)],
                "suffix": ["(synthetic)"],
            }
        ],
        "gender": rng.choices(("female", "male", "other"), (48, 48, 4))[0],
        "birthDate": (anchor - timedelta(days=rng.randint(25 * 365, 75 * 365))).isoformat(),
        "managingOrganization": _ref("Organization", p.clinic.id),
    }


def _prescription(p: DemoPatient, authored: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": f"{p.id}-rx",
        "status": "active",
        "intent": "order",
        "code": _exercise_code(p.scenario.protocol),
        "subject": _ref("Patient", p.id),
        "authoredOn": authored,
        "reasonCode": [{"coding": [_coding(LOW_BACK_PAIN)]}],
        "bodySite": [{"coding": [_coding(LUMBAR_SPINE)]}],
    }


# ---------------------------------------------------------------------------------------------
# One patient: timeline -> planned sessions and diary -> resources


@dataclass(frozen=True)
class _Session:
    day: int  # relative to anchor
    kind: str  # "normal", "tolerated" (a retry or premature retry) or "worsening"


class _Local:
    """Local wall-clock times of one patient, written with the clinic's UTC offset."""

    def __init__(self, anchor: date, offset: str) -> None:
        self.anchor = anchor
        self.offset = offset

    def at(self, day: int, minutes: int) -> datetime:
        return datetime.combine(self.anchor + timedelta(days=day), time()) + timedelta(
            minutes=minutes
        )

    def text(self, moment: datetime) -> str:
        # Times are whole seconds, so isoformat() writes YYYY-MM-DDThh:mm:ss (and is fast).
        return f"{moment.isoformat()}{self.offset}"


def _patient_groups(anchor: date, p: DemoPatient) -> list[list[dict[str, Any]]]:
    """All of one patient's entries, in groups that must stay in one Bundle."""
    rng = random.Random(p.seed)
    s = p.scenario
    shift = rng.randint(0, s.jitter)
    first = None if s.first is None else s.first - shift
    events = {day - shift: kind for kind, day in s.events}
    sessions, hold_days = _plan_sessions(rng, first, events)
    local = _Local(anchor, p.clinic.offset)

    start = first if first is not None else 0
    authored = local.at(start - rng.randint(1, 5), rng.randint(9 * 60, 16 * 60))
    groups = [[_entry(_patient(p, rng, anchor)), _entry(_prescription(p, local.text(authored)))]]
    diary = _diary(rng, s.readiness, first, hold_days)
    groups += [[_entry(o)] for o in _diary_observations(rng, p, local, diary)]
    groups += _session_groups(rng, p, local, sessions)
    return groups


def _plan_sessions(
    rng: random.Random, first: int | None, events: dict[int, str]
) -> tuple[list[_Session], set[int]]:
    """Session days and kinds from the first session to the day before anchor, following the
    timeline events; also the days spent on hold (their diary pain flares a little)."""
    sessions: list[_Session] = []
    hold_days: set[int] = set()
    on_hold = False
    for day in range(first if first is not None else 0, 0):
        event = events.get(day)
        if event == WORSENING:
            sessions += [_Session(day, "normal")] * (_sessions_per_day(rng) - 1)
            sessions.append(_Session(day, "worsening"))  # stopped for the day
            on_hold = True
        elif event == PREMATURE:
            sessions.append(_Session(day, "tolerated"))
        elif event in (PREMATURE_WORSENING, FAILED_RETRY):
            sessions.append(_Session(day, "worsening"))
            on_hold = True
        elif event == RETRY:
            sessions.append(_Session(day, "tolerated"))
            sessions += [_Session(day, "normal")] * (_sessions_per_day(rng) - 1)
            on_hold = False
        elif on_hold:
            hold_days.add(day)
        elif day == first or rng.random() >= 0.03:  # now and then a day without sessions
            sessions += [_Session(day, "normal")] * _sessions_per_day(rng)
    return sessions, hold_days


def _sessions_per_day(rng: random.Random) -> int:
    # Section 6: 3-4 a day; a few days fewer or more.
    return rng.choices((2, 3, 4, 5), (6, 48, 43, 3))[0]


# ---------------------------------------------------------------------------------------------
# Daily general pain reports (no partOf): readiness (section 4) and outcomes (section 7)


def _diary(
    rng: random.Random, readiness: str, first: int | None, hold_days: set[int]
) -> list[tuple[int, int]]:
    """(day, worst pain) of each reported day. The 14 days before the first session (or before
    anchor when not started) have the scenario's readiness shape; earlier days recover from
    the acute episode; later days follow training, with a flare while on hold."""
    block_end = first if first is not None else 0
    block = [d for d in range(block_end - READINESS_BLOCK_DAYS, block_end + 1) if d < 0]
    start = max(block[0] - rng.randint(3, 14), -HISTORY_DAYS)

    reports: list[tuple[int, int]] = []
    initial = rng.uniform(5, 7)
    for day in range(start, block[0]):  # recovering: from about 6 down to about 3
        level = initial - (initial - 3) * (day - start) / max(1, block[0] - start)
        if rng.random() < 0.85:
            reports.append((day, _clamp(round(level) + rng.choice((-1, 0, 0, 1)))))
    reports += _readiness_block(rng, readiness, block)
    level = {"ready": 1.0, "not-ready": 3.0}.get(readiness, 1.5)
    for day in range(block_end + 1, 0):  # training: slowly improving
        pain = round(level - 0.08 * (day - block_end)) + rng.choice((-1, 0, 0, 0, 1))
        if day in hold_days:
            pain += rng.randint(1, 2)
        if rng.random() < 0.85:
            reports.append((day, _clamp(pain)))
    return reports


def _readiness_block(rng: random.Random, readiness: str, block: list[int]) -> list[tuple[int, int]]:
    if readiness == "ready":  # worst pain <= 3 and at least 11 of 14 days pain-free
        sore = set(rng.sample(block, rng.randint(1, 3)))
        return [(d, rng.choice((1, 1, 2, 3)) if d in sore else 0) for d in block]
    if readiness == "unknown":  # fewer than 10 reported days
        return [(d, rng.choice((0, 0, 1, 2))) for d in sorted(rng.sample(block, rng.randint(3, 8)))]
    if rng.random() < 0.5:  # not ready: some days above 3
        spikes = set(rng.sample(block, rng.randint(2, 4)))
        return [(d, rng.randint(4, 6) if d in spikes else rng.choice((0, 0, 1, 2))) for d in block]
    # not ready: never above 3, but too few pain-free days
    zero = set(rng.sample(block, rng.randint(0, 4)))
    return [(d, 0 if d in zero else rng.choice((1, 2, 2, 3))) for d in block]


def _clamp(pain: int) -> int:
    return max(0, min(10, pain))


def _diary_observations(
    rng: random.Random, p: DemoPatient, local: _Local, diary: list[tuple[int, int]]
) -> list[dict[str, Any]]:
    observations: list[dict[str, Any]] = []
    for day, worst in diary:
        times = [(rng.randint(20 * 60, 22 * 60), worst)]
        if rng.random() < 0.05:  # a morning report too, never above the day's worst
            times.insert(0, (rng.randint(7 * 60, 9 * 60), max(0, worst - rng.randint(0, 2))))
        for minutes, pain in times:
            number = len(observations) + 1
            observations.append(
                {
                    "resourceType": "Observation",
                    "id": f"{p.id}-d{number:04d}",
                    "status": "final",
                    "code": _pain_code(),
                    "subject": _ref("Patient", p.id),
                    "effectiveDateTime": local.text(local.at(day, minutes)),
                    "valueInteger": pain,
                }
            )
    return observations


# ---------------------------------------------------------------------------------------------
# Sessions: Procedure + one Observation per repetition (or the compact form)


@dataclass(frozen=True)
class _Habits:
    """How a patient's app records sessions, fixed per patient."""

    compact: bool  # posts the compact form (pain only)
    distance: bool  # records knee-to-chest distance
    symptoms: bool  # records peripheral symptoms (false unless they appear)
    fault_rate: float  # chance of a form fault per repetition


# Start minute of each session by sessions that day: morning, midday, evening, late.
_SLOTS: Final = {
    1: (8 * 60,),
    2: (8 * 60, 18 * 60),
    3: (7 * 60 + 30, 13 * 60, 19 * 60),
    4: (7 * 60, 12 * 60, 17 * 60, 21 * 60),
    5: (7 * 60, 10 * 60 + 30, 13 * 60 + 30, 17 * 60, 21 * 60),
}


def _session_groups(
    rng: random.Random, p: DemoPatient, local: _Local, sessions: list[_Session]
) -> list[list[dict[str, Any]]]:
    habits = _Habits(
        compact=rng.random() < 0.15,
        distance=rng.random() < 0.5,
        symptoms=rng.random() < 0.4,
        fault_rate=rng.choice((0.0, 0.0, 0.03, 0.1)),
    )
    exercise = p.scenario.protocol
    rx = f"{p.id}-rx"
    baseline_cm = rng.uniform(38, 50)
    groups: list[list[dict[str, Any]]] = []
    by_day: dict[int, list[_Session]] = {}
    for session in sessions:
        by_day.setdefault(session.day, []).append(session)
    for day, today in by_day.items():
        week = (day - sessions[0].day) // 7  # pain per repetition improves week by week
        for slot, session in zip(_SLOTS[len(today)], today, strict=True):
            start = local.at(day, slot + rng.randint(0, 45))
            reps = _repetitions(rng, exercise, session, week, habits, baseline_cm - 0.3 * day)
            end = start + timedelta(seconds=30 + 25 * max(1, len(reps)))
            groups.append(
                _session_entries(p, local, len(groups) + 1, exercise, start, end, reps, habits, rx)
            )
            if exercise in FLEXION_CATEGORY:
                follow = _extension_follow_up(rng, end)
                if follow is not None:
                    ext_reps = _extension_reps(rng) if rng.random() < 0.1 else []  # reps optional
                    ext_end = follow + timedelta(seconds=60 + 20 * len(ext_reps))
                    number = len(groups) + 1
                    groups.append(
                        _session_entries(
                            p, local, number, EXTENSION, follow, ext_end, ext_reps, habits, None
                        )
                    )
    return groups


def _extension_follow_up(rng: random.Random, flexion_end: datetime) -> datetime | None:
    """Start of the Cobra after a flexion session: usually within minutes, sometimes late or
    forgotten (section 6 `missing-extension`, 15 minutes by default)."""
    roll = rng.random()
    if roll < 0.07:
        return None
    if roll < 0.12:
        return flexion_end + timedelta(minutes=rng.randint(20, 45))
    return flexion_end + timedelta(seconds=rng.randint(20, 10 * 60))


@dataclass(frozen=True)
class _Rep:
    pain: int
    distance_cm: int | None = None
    fault: str | None = None
    peripheral: bool | None = None  # None: not recorded


def _repetitions(
    rng: random.Random,
    exercise: str,
    session: _Session,
    week: int,
    habits: _Habits,
    baseline_cm: float,
) -> list[_Rep]:
    if session.kind == "worsening":
        pains, symptoms_from = _worsening_pains(rng, habits)
    else:
        n = _normal_rep_count(rng, exercise) if session.kind == "normal" else rng.randint(5, 6)
        pains, symptoms_from = _tolerated_pains(rng, n, week, session.kind == "normal")
    if habits.compact:
        return [_Rep(pain) for pain in pains]
    records_distance = habits.distance and exercise in (FLEXION, ROCKING)  # knees to chest
    distances = _distances(rng, len(pains), baseline_cm) if records_distance else None
    reps = []
    for i, pain in enumerate(pains):
        peripheral = None
        if symptoms_from is not None:
            peripheral = i >= symptoms_from
        elif habits.symptoms:
            peripheral = False
        fault = None
        if rng.random() < habits.fault_rate:
            fault = rng.choices(list(FormFault), (45, 35, 20))[0].value
        reps.append(_Rep(pain, distances[i] if distances else None, fault, peripheral))
    return reps


def _normal_rep_count(rng: random.Random, exercise: str) -> int:
    if exercise == EXTENSION:
        return rng.randint(8, 10)
    # Section 6: 5-6; a few under (1-2 rated reps are `insufficient`) or over dose.
    return rng.choices((1, 2, 3, 4, 5, 6, 7, 8), (2, 3, 2, 4, 45, 38, 4, 2))[0]


def _tolerated_pains(
    rng: random.Random, n: int, week: int, allow_fluctuating: bool
) -> tuple[list[int], int | None]:
    """Pain per repetition of a session that is not worsening (section 3). Early sessions
    hurt more and mostly wear off; from week 4 on most are pain-free."""
    if n < 3:
        return [rng.randint(0, 3) for _ in range(n)], None  # insufficient
    w = min(week, 5)
    classes = ("wears-off", "pain-free", "no-change", "fluctuating")
    weights = (50 - 5 * w, 10 + 8 * w, 25, 12 - w if allow_fluctuating else 0)
    response = rng.choices(classes, weights)[0]
    return _pains(rng, response, n, top=max(2, 5 - w // 2)), None


def _worsening_pains(rng: random.Random, habits: _Habits) -> tuple[list[int], int | None]:
    """A worsening session, usually stopped early because pain rose with each repetition;
    sometimes flat pain but peripheral symptoms from some repetition on."""
    n = rng.choices((3, 4, 5, 6), (20, 35, 25, 20))[0]
    if not habits.compact and rng.random() < 0.15:
        return _pains(rng, "no-change", n), rng.randint(1, n - 1)
    return _pains(rng, "worsening", n), None


def _pains(rng: random.Random, response: str, n: int, top: int = 5) -> list[int]:
    """n >= 3 pain values that the rules of section 3 classify as `response`; `top` (>= 2)
    bounds the pain of the first repetition, except for `worsening`."""
    if response == "pain-free":
        return [0] * n
    if response == "wears-off":  # P1 > 0, last below the peak and not above P1
        p1 = rng.randint(2, top)
        pains = [p1, p1 + 1] if rng.random() < 0.3 else [p1]
        end = rng.randint(0, p1 - 1)
        middle = sorted((rng.randint(end, p1) for _ in range(n - len(pains) - 1)), reverse=True)
        return pains + middle + [end]
    if response == "no-change":  # within one point; never ending below the top (not wears-off)
        base = rng.randint(0, min(3, top - 1))
        pains = [base + rng.randint(0, 1) for _ in range(n)]
        return [*pains[:-1], base + 1]
    if response == "fluctuating":  # up and down by 2-3 points, ending at the top
        low, amplitude = rng.randint(0, min(3, top - 2)), rng.randint(2, 3)
        pains = [low + amplitude * (i % 2) for i in range(n)]
        return [*pains[:-1], low + amplitude]
    # worsening: never falls, at least two rises, ends at least 2 above the start
    steps = [rng.choice((0, 1, 1, 1)) for _ in range(n - 1)]
    if sum(steps) < 2:
        steps[-2:] = [1, 1]
    pains = [rng.randint(0, 3)]
    for step in steps:
        pains.append(pains[-1] + step)
    return pains


def _distances(rng: random.Random, n: int, baseline_cm: float) -> list[int]:
    """Knee-to-chest distance (cm): usually a little closer each repetition (progressing)."""
    distance = max(8, round(baseline_cm + rng.uniform(-2, 2)))
    progressing = rng.random() < 0.75
    result = []
    for _ in range(n):
        result.append(distance)
        step = rng.choice((0, 1, 1, 2)) if progressing else rng.choice((-1, 0, 1))
        distance = max(5, distance - step)
    return result


def _extension_reps(rng: random.Random) -> list[_Rep]:
    n = rng.randint(5, 10)
    return [_Rep(pain) for pain in _pains(rng, rng.choice(("pain-free", "no-change")), n)]


def _session_entries(
    p: DemoPatient,
    local: _Local,
    number: int,
    exercise: str,
    start: datetime,
    end: datetime,
    reps: list[_Rep],
    habits: _Habits,
    based_on: str | None,
) -> list[dict[str, Any]]:
    procedure_id = f"{p.id}-s{number:04d}"
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": procedure_id,
        "status": "completed",
        "code": _exercise_code(exercise),
        "subject": _ref("Patient", p.id),
        "performedPeriod": {"start": local.text(start), "end": local.text(end)},
    }
    if based_on is not None:
        procedure["basedOn"] = [_ref("ServiceRequest", based_on)]
    entries = [_entry(procedure)]
    if not reps:
        return entries
    if habits.compact:
        return [*entries, _entry(_compact_observation(p, procedure_id, local.text(start), reps))]
    for i, rep in enumerate(reps, start=1):
        moment = start + timedelta(seconds=10 + 25 * (i - 1))
        entries.append(_entry(_rep_observation(p, procedure_id, i, local.text(moment), rep)))
    return entries


# Plain strings: enum attribute access is slow in the per-repetition hot path.
_REPETITION_INDEX: Final = SessionMeasure.REPETITION_INDEX.value
_REPETITION_PAIN: Final = SessionMeasure.REPETITION_PAIN.value
_DISTANCE: Final = SessionMeasure.KNEE_TO_CHEST_DISTANCE.value
_FORM_FAULT: Final = SessionMeasure.FORM_FAULT.value
_PERIPHERAL: Final = SessionMeasure.PERIPHERAL_SYMPTOMS.value
_PAIN_SYSTEM, _PAIN_CODE = PAIN_SEVERITY_NRS.system, PAIN_SEVERITY_NRS.code


def _measure(code: str) -> dict[str, Any]:
    return {"coding": [{"system": SESSION_MEASURE_SYSTEM, "code": code}]}


def _pain_code() -> dict[str, Any]:
    # As in the examples: no display (it would be most of the data set's bytes).
    # Fresh dicts for every resource: a consumer may mutate one without touching the others.
    return {"coding": [{"system": _PAIN_SYSTEM, "code": _PAIN_CODE}]}


def _rep_observation(
    p: DemoPatient, procedure_id: str, index: int, effective: str, rep: _Rep
) -> dict[str, Any]:
    """One repetition, in the shape of shared/examples/session-transaction.json."""
    components: list[dict[str, Any]] = [
        {"code": _measure(_REPETITION_INDEX), "valueInteger": index}
    ]
    if rep.distance_cm is not None:
        quantity = {"value": rep.distance_cm, "unit": "cm", "system": UCUM, "code": "cm"}
        components.append({"code": _measure(_DISTANCE), "valueQuantity": quantity})
    if rep.fault is not None:
        fault = {"coding": [{"system": FORM_FAULT_SYSTEM, "code": rep.fault}]}
        components.append({"code": _measure(_FORM_FAULT), "valueCodeableConcept": fault})
    if rep.peripheral is not None:
        components.append({"code": _measure(_PERIPHERAL), "valueBoolean": rep.peripheral})
    return {
        "resourceType": "Observation",
        "id": f"{procedure_id}-r{index}",
        "status": "final",
        "code": _pain_code(),
        "subject": _ref("Patient", p.id),
        "partOf": [_ref("Procedure", procedure_id)],
        "effectiveDateTime": effective,
        "valueInteger": rep.pain,
        "component": components,
    }


def _compact_observation(
    p: DemoPatient, procedure_id: str, effective: str, reps: list[_Rep]
) -> dict[str, Any]:
    """All repetitions in one Observation (shared/examples/session-compact-observation.json)."""
    score = {"system": SCORE_UNIT.system, "code": SCORE_UNIT.code}
    return {
        "resourceType": "Observation",
        "id": f"{procedure_id}-c",
        "status": "final",
        "code": {**_measure(_REPETITION_PAIN), "text": "Pain per repetition"},
        "subject": _ref("Patient", p.id),
        "partOf": [_ref("Procedure", procedure_id)],
        "effectiveDateTime": effective,
        "component": [
            {
                "extension": [{"url": REPETITION_INDEX_EXTENSION, "valueInteger": i}],
                "code": _pain_code(),
                "valueQuantity": {"value": rep.pain, **score},
            }
            for i, rep in enumerate(reps, start=1)
        ],
    }
