"""The contract: `analytics/` computes what `domain/` computes, for any cohort (hypothesis).

Each example is a whole cohort: several patients, three protocols (two with the stop rule on
and parameters drawn per example, in any of the three worsening modes; knee rocking with it
off), sessions written in many UTC offsets (so local days do not follow start instants), ties
on the start instant, repetitions with gaps in their indices or more than 16 of them (the
general path), rows stored out of order, distances, peripheral symptoms and form faults.
The domain runs one session and one patient's protocol at a time; the analytics run the whole
cohort at once; every class, figure, hold, window, status and count must be identical.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import adherence, classification, readiness, stop_rule
from analytics.protocol_table import protocol_table
from domain import adherence as domain_adherence
from domain.pain_response import PainResponse, Repetition, classify_session
from domain.protocols import CATALOG, ProtocolParameters, StopRuleMode
from domain.readiness import PainReport, assess_readiness
from domain.stop_rule import SessionRecord, evaluate_protocol
from tests.unit.analytics.builders import (
    DAY0,
    EXTENSION,
    FLEXION,
    ROCKING,
    Session,
    numbered_frames,
    repetition_frame,
    session_frame,
)

CUSTOM = "custom-flexion"
PROTOCOLS = (FLEXION, CUSTOM, ROCKING)
# Minutes east of UTC, the extremes often: local days then run against the start instants.
OFFSETS = [-660, -660, -300, -60, 0, 60, 330, 600, 840, 840]
FAULTS = ("head-raised", "neck-strain", "legs-straightened-on-lowering")

PARITY = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def parameters(draw: st.DrawFn) -> ProtocolParameters:
    retry_min = draw(st.sampled_from([1, 1, 2, 3, 5, 7, 9]))
    return ProtocolParameters(
        stop_rule_mode=draw(st.sampled_from(list(StopRuleMode))),
        worsening_min_rise=draw(st.integers(1, 3)),
        worsening_min_rises=draw(st.integers(1, 3)),
        slope_threshold=draw(st.sampled_from([0.25, 0.5, 0.6, 1.0])),
        severe_pain=draw(st.sampled_from([None, None, 7, 9])),
        retry_min_days=retry_min,
        retry_max_days=retry_min + draw(st.integers(0, 8)),
        max_failed_retries=draw(st.integers(1, 3)),
        min_reps=draw(st.integers(3, 5)),
        max_reps=draw(st.integers(5, 7)),
        min_sessions_per_day=draw(st.integers(1, 2)),
        max_sessions_per_day=draw(st.integers(2, 3)),
        extension_within_minutes=draw(st.sampled_from([0, 5, 15])),
    )


def _pains(rng: random.Random) -> list[int]:
    n = rng.choice([0, 1, 2, 3, 3, 4, 5, 5, 6, 6, 7, 8])
    shape = rng.randrange(10)
    pain = [rng.randint(0, 10) for _ in range(n)]
    if shape < 3:
        return sorted(pain)  # rises and plateaus: the worsening modes' boundaries
    if shape < 5:
        return sorted(pain, reverse=True)  # wearing off
    if shape < 6:
        return [rng.randint(0, 2) for _ in range(n)]  # near no-change
    if shape == 6:
        return [0] * n  # pain-free
    if shape == 7:
        return [rng.randint(0, 10) for _ in range(rng.randint(15, 20))]  # beyond 16 slots
    return pain


def _repetitions(rng: random.Random) -> tuple[tuple[Repetition, ...], tuple[int, ...] | None]:
    pain = _pains(rng)
    n = len(pain)
    if rng.randrange(5) == 0:  # gaps in the repetition index
        indices = sorted(rng.sample(range(1, 25), n))
    else:
        indices = list(range(1, n + 1))
    distance_style = rng.choice(["none", "none", "all", "some"])
    reps = []
    for index, p in zip(indices, pain, strict=True):
        distance = None
        if distance_style == "all" or (distance_style == "some" and rng.random() < 0.7):
            distance = rng.choice([20.0, 24.5, 25.0, 30.0])
        faults = tuple(rng.choice(FAULTS) for _ in range(rng.choice([0, 0, 0, 1, 2])))
        reps.append(
            Repetition(
                index,
                p,
                distance_cm=distance,
                form_faults=faults,
                peripheral_symptoms=rng.randrange(40) == 0,
            )
        )
    order = None
    if rng.random() < 0.5:  # rows stored out of index order
        shuffled = list(range(n))
        rng.shuffle(shuffled)
        order = tuple(shuffled)
    return tuple(reps), order


@dataclass(frozen=True)
class Cohort:
    params: dict[str, ProtocolParameters]
    sessions: list[Session]
    reports: list[tuple[str, date, int]]
    as_of: date


@st.composite
def cohorts(draw: st.DrawFn) -> Cohort:
    """Parameters, sizes and the date from hypothesis; the many small choices inside each
    session from a `random.Random` seeded with a drawn integer (fast, reproducible)."""
    params = {
        FLEXION: draw(parameters()),
        CUSTOM: draw(parameters()),
        ROCKING: CATALOG[ROCKING].parameters,
        EXTENSION: CATALOG[EXTENSION].parameters,
    }
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    span = draw(st.sampled_from([10, 30, 60]))  # days: dense histories hit every transition
    patients = [f"pat-{k}" for k in range(draw(st.integers(1, 4)))]
    planned = [
        (patient, protocol)
        for patient in patients
        for protocol in PROTOCOLS
        for _ in range(rng.randint(0, 14))
    ]
    # Procedure ids in an order unrelated to time, so ties on the instant are a real test.
    names = list(range(len(planned)))
    rng.shuffle(names)
    sessions = []
    for (patient, protocol), name in zip(planned, names, strict=True):
        zone = timezone(timedelta(minutes=rng.choice(OFFSETS)))
        start = datetime.combine(
            DAY0 + timedelta(days=rng.randint(0, span)), datetime.min.time(), zone
        ) + timedelta(minutes=rng.choice([0, 30, 8 * 60, 23 * 60 + 50]))
        reps, order = _repetitions(rng)
        end = start + timedelta(minutes=rng.randint(0, 6))
        sessions.append(Session(f"s{name:03d}", patient, protocol, start, reps, end, order))
        if rng.randrange(3) == 0:  # an extension session a few minutes later (or not)
            follow = end + timedelta(minutes=rng.choice([-1, 0, 5, 15, 16, 40]))
            sessions.append(Session(f"x{name:03d}", patient, EXTENSION, follow))
    reports = [
        (patient, DAY0 + timedelta(days=rng.randint(-20, span)), rng.choice([0, 0, 0, 1, 3, 4, 8]))
        for patient in patients
        for _ in range(rng.randint(0, 40))
    ]
    as_of = DAY0 + timedelta(days=draw(st.integers(-1, span + 20)))
    return Cohort(params, sessions, reports, as_of)


def _assessed(cohort: Cohort, exact: bool = False, numbered: bool = False) -> pl.DataFrame:
    if numbered:  # the star layout: repetitions name their session by its number
        sessions, repetitions = numbered_frames(cohort.sessions)
    else:
        sessions, repetitions = session_frame(cohort.sessions), repetition_frame(cohort.sessions)
    figures = classification.session_figures(repetitions.lazy(), exact)
    assessed = adherence.dosage_flags(
        classification.assess_sessions(sessions.lazy(), figures, protocol_table(cohort.params))
    ).collect()
    assert not classification.has_key_collision(assessed)
    return assessed


def _by_id(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["procedure_id"]: row for row in frame.iter_rows(named=True)}


@PARITY
@given(cohorts())
def test_every_session_gets_the_class_and_figures_of_classify_session(cohort: Cohort) -> None:
    found = _by_id(_assessed(cohort))
    exact = _by_id(_assessed(cohort, exact=True))  # keyed by the ids themselves, not hashes
    numbered = _by_id(_assessed(cohort, numbered=True))  # keyed by the source's numbers
    assert (
        {k: {**v, "session_key": None} for k, v in found.items()}
        == {k: {**v, "session_key": None} for k, v in exact.items()}
        == {k: {**v, "session_key": None} for k, v in numbered.items()}
    )
    for s in cohort.sessions:
        expected = classify_session(s.repetitions, cohort.params[s.protocol])
        row = found[s.procedure_id]
        assert row["response"] == expected.response, s
        assert row["n"] == len(expected.pain)
        assert row["slope"] == expected.slope  # the same bits, None included
        assert (row["first"], row["last"], row["peak"]) == (
            expected.first,
            expected.last,
            expected.peak,
        )
        assert (row["rises"], row["falls"]) == (expected.rises, expected.falls)
        assert row["progressing"] == expected.progressing
        flag = domain_adherence.dosage_flag(
            len(expected.pain), expected.response, expected.parameters
        )
        assert row["dosage"] == (None if flag is None else flag.value)


@PARITY
@given(cohorts())
def test_star_layout_sessions_in_order_are_assessed_alike_without_the_hash_join(
    cohort: Cohort,
) -> None:
    # The report's path for star-layout files as written (every session on the fast path,
    # the figures and the sessions in session order): a merge of the two key columns and a
    # join of the pain figures per (n, code) give assess_sessions' rows.
    _, repetitions = numbered_frames(cohort.sessions)
    regular = set(
        classification.figures_and_faults(repetitions.lazy())[0]
        .packed.filter("regular")["session_key"]
        .to_list()
    )
    kept = [s for k, s in enumerate(cohort.sessions) if k in regular or not s.repetitions]
    sessions, repetitions = numbered_frames(kept)
    figures = classification.figures_and_faults(repetitions.lazy())[0]
    assert figures.in_order and figures.general is None
    table = protocol_table(cohort.params)
    classified_by = ["stop_rule_mode", "worsening_min_rise", "worsening_min_rises"]
    classified_by += ["slope_threshold", "severe_pain"]
    rules = [
        pl.col("protocol").replace_strict(table["protocol"], table[c]).alias(c)
        for c in classified_by
    ]
    found = classification.assess_in_order(sessions, figures, rules)
    assert found is not None
    expected = classification.assess_sessions(sessions.lazy(), figures.frame(), table)
    columns = ["procedure_id", "session_key", "n", "first", "last", "peak", "low", "rises"]
    columns += ["falls", "peripheral", "slope", "progressing", "faulty_reps", "code", "response"]
    assert (
        found.select(columns)
        .collect()
        .sort("session_key")
        .equals(expected.select(columns).collect().sort("session_key"))
    )


def _records(cohort: Cohort, assessed: pl.DataFrame) -> dict[tuple[str, str], list[SessionRecord]]:
    response = {
        r["procedure_id"]: PainResponse(r["response"]) for r in assessed.iter_rows(named=True)
    }
    by_pair: dict[tuple[str, str], list[SessionRecord]] = defaultdict(list)
    for s in cohort.sessions:
        record = SessionRecord(s.procedure_id, s.day, s.started_at, response[s.procedure_id])
        by_pair[(s.patient_id, s.protocol)].append(record)
    return by_pair


def _stop_rule(cohort: Cohort) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    assessed = _assessed(cohort)
    in_time = assessed.filter(pl.col("local_date") <= cohort.as_of)
    roles = stop_rule.session_roles(in_time.filter("stop_rule").lazy()).collect()
    states = pl.concat(
        [
            stop_rule.protocol_states(roles.lazy(), cohort.as_of).collect(),
            stop_rule.unchecked_states(in_time.filter(~pl.col("stop_rule")).lazy()).collect(),
        ],
        how="diagonal_relaxed",
    )
    return assessed, roles, states, stop_rule.holds(roles.lazy()).collect()


@PARITY
@given(cohorts())
def test_every_status_hold_window_and_count_matches_evaluate_protocol(cohort: Cohort) -> None:
    assessed, roles, states, holds = _stop_rule(cohort)
    # The report's path: patients and protocols as Enum codes (one packed sort key).
    checked = assessed.filter(pl.col("local_date") <= cohort.as_of).filter("stop_rule")
    codes = checked.with_columns(
        pl.col("patient_id").cast(pl.Enum(sorted({s.patient_id for s in cohort.sessions}))),
        pl.col("protocol").cast(pl.Enum(list(cohort.params))),
    )
    encoded = stop_rule.session_roles(codes.lazy()).collect()
    assert (
        encoded.with_columns(pl.col("patient_id", "protocol").cast(pl.String))
        .sort("procedure_id")
        .equals(roles.sort("procedure_id"))
    )
    by_pair = _records(cohort, assessed)
    state_rows = {(r["patient_id"], r["protocol"]): r for r in states.iter_rows(named=True)}
    for pair, records in by_pair.items():
        expected = evaluate_protocol(records, cohort.as_of, cohort.params[pair[1]])
        row = state_rows.get(pair)
        if row is None:
            assert expected.status == "no-sessions"
            continue
        assert row["status"] == expected.status, (pair, expected.explanation)
        assert row["failed_retries"] == expected.failed_retries
        assert row["premature_retries"] == expected.premature_retries
        assert row["retries"] == len(expected.retry_procedure_ids)
        assert row["sessions"] == sum(r.day <= cohort.as_of for r in records)
        open_hold = expected.hold
        assert (row["hold_since"], row["retry_from"], row["retry_until"]) == (
            (None, None, None)
            if open_hold is None
            else (open_hold.since, open_hold.retry_from, open_hold.retry_until)
        )
        mine = roles.filter((pl.col("patient_id") == pair[0]) & (pl.col("protocol") == pair[1]))
        assert tuple(mine.filter("premature")["procedure_id"]) == expected.premature_procedure_ids
        assert tuple(mine.filter("retry")["procedure_id"]) == expected.retry_procedure_ids
        pair_holds = holds.filter(
            (pl.col("patient_id") == pair[0]) & (pl.col("protocol") == pair[1])
        ).sort("number")
        assert [
            (
                h["since"],
                h["retry_from"],
                h["retry_until"],
                h["opened_by"],
                h["closed_by"],
                h["closed_on"],
                h["outcome"],
            )
            for h in pair_holds.iter_rows(named=True)
        ] == [
            (
                h.since,
                h.retry_from,
                h.retry_until,
                h.opened_by,
                h.closed_by,
                h.closed_on,
                None if h.outcome is None else h.outcome.value,
            )
            for h in expected.holds
        ]


@PARITY
@given(cohorts())
def test_days_per_day_flags_and_missing_extension_match_the_domain(cohort: Cohort) -> None:
    assessed, _roles, _states, holds = _stop_rule(cohort)
    in_time = assessed.filter(pl.col("local_date") <= cohort.as_of)
    days = adherence.daily_flags(in_time.lazy(), holds.lazy()).collect()
    found = {
        (r["patient_id"], r["protocol"], r["local_date"]): r["day_flag"]
        for r in days.iter_rows(named=True)
        if r["day_flag"] is not None
    }
    by_pair = _records(cohort, assessed)
    expected: dict[tuple[str, str, date], str] = {}
    for (patient, protocol), records in by_pair.items():
        params = cohort.params[protocol]
        state = evaluate_protocol(records, cohort.as_of, params)
        known = [r.day for r in records if r.day <= cohort.as_of]
        for day, flag in domain_adherence.daily_flags(known, state.holds, params).items():
            expected[(patient, protocol, day)] = flag.value
    assert found == expected
    # The days between sessions without any: counted per pair, as the domain lists them.
    counts = adherence.day_counts(days.lazy(), holds.lazy()).collect()
    found_skipped = {
        (r["patient_id"], r["protocol"]): r["skipped"]
        for r in counts.iter_rows(named=True)
        if r["skipped"]
    }
    expected_skipped: dict[tuple[str, str], int] = {}
    for (patient, protocol), records in by_pair.items():
        params = cohort.params[protocol]
        known = [r.day for r in records if r.day <= cohort.as_of]
        holds_then = evaluate_protocol(records, cohort.as_of, params).holds
        idle = [
            d
            for d in domain_adherence.active_days(known)
            if d not in known and not domain_adherence.on_hold(d, holds_then)
        ]
        if idle:
            expected_skipped[(patient, protocol)] = len(idle)
    assert found_skipped == expected_skipped
    # The report's path: patients and protocols as Enum codes (holds found by an as-of join).
    codes = {
        "patient_id": pl.Enum(sorted({s.patient_id for s in cohort.sessions})),
        "protocol": pl.Enum(list(cohort.params)),
    }
    encoded_days = adherence.daily_flags(
        in_time.lazy().with_columns(pl.col(c).cast(t) for c, t in codes.items()),
        holds.lazy().with_columns(pl.col(c).cast(t) for c, t in codes.items()),
    ).collect()
    assert (
        encoded_days.with_columns(pl.col("patient_id", "protocol").cast(pl.String))
        .sort(["patient_id", "protocol", "local_date"])
        .equals(days.sort(["patient_id", "protocol", "local_date"]))
    )

    flexion = in_time.filter(pl.col("category") == "flexion")
    extension_starts = session_frame(
        s for s in cohort.sessions if s.protocol == EXTENSION and s.day <= cohort.as_of
    )
    missing = adherence.missing_extension(flexion.lazy(), extension_starts.lazy()).collect()
    # The report's path: patients as Enum codes, one Int128 key instead of a grouped as-of.
    patients = pl.Enum(sorted({s.patient_id for s in cohort.sessions}))
    encoded = adherence.missing_extension(
        flexion.lazy().with_columns(pl.col("patient_id").cast(patients)),
        extension_starts.lazy().with_columns(pl.col("patient_id").cast(patients)),
    ).collect()
    assert dict(encoded.select("procedure_id", "extension_missing").iter_rows()) == dict(
        missing.select("procedure_id", "extension_missing").iter_rows()
    )
    for s in cohort.sessions:
        if s.protocol == EXTENSION or s.day > cohort.as_of:
            continue
        params = cohort.params[s.protocol]
        starts = [
            e.started_at
            for e in cohort.sessions
            if e.protocol == EXTENSION and e.patient_id == s.patient_id and e.day <= cohort.as_of
        ]
        timed = domain_adherence.TimedSession(
            s.procedure_id, s.started_at, s.ended_at or s.started_at
        )
        expected_missing = bool(
            domain_adherence.missing_extension([timed], starts, params.extension_within)
        )
        row = missing.filter(pl.col("procedure_id") == s.procedure_id)
        assert row["extension_missing"].item() is expected_missing


@PARITY
@given(cohorts())
def test_form_faults_are_counted_per_session_like_the_domain(cohort: Cohort) -> None:
    counts = adherence.form_fault_counts(repetition_frame(cohort.sessions).lazy()).collect()
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for row in counts.iter_rows(named=True):
        found[row["procedure_id"]][row["fault"]] = row["reps"]
    for s in cohort.sessions:
        assert found.get(s.procedure_id, {}) == domain_adherence.form_fault_counts(s.repetitions)


@PARITY
@given(cohorts(), st.sampled_from([14, 17, 21]), st.integers(1, 14))
def test_readiness_as_of_a_date_and_on_every_session_day_matches_assess_readiness(
    cohort: Cohort, days: int, min_reported: int
) -> None:
    params = ProtocolParameters(readiness_days=days, readiness_min_reported_days=min_reported)
    reports = pl.DataFrame(
        cohort.reports,
        schema={"patient_id": pl.String, "local_date": pl.Date, "pain": pl.Int8},
        orient="row",
    )
    domain_reports: dict[str, list[PainReport]] = defaultdict(list)
    for patient, day, pain in cohort.reports:
        domain_reports[patient].append(PainReport(day, pain))

    now = readiness.readiness_as_of(reports.lazy(), cohort.as_of, params).collect()
    found = {r["patient_id"]: r for r in now.iter_rows(named=True)}
    for patient in {s.patient_id for s in cohort.sessions} | set(domain_reports):
        expected = assess_readiness(domain_reports[patient], cohort.as_of, params)
        row = found.get(patient)
        if row is None:
            assert expected.reported_days == 0 and expected.readiness == "unknown"
            continue
        assert (
            row["readiness"],
            row["reported_days"],
            row["pain_free_days"],
            row["worst_pain"],
        ) == (
            expected.readiness,
            expected.reported_days,
            expected.pain_free_days,
            expected.worst_pain,
        )

    session_days = pl.DataFrame(
        [(s.patient_id, s.day) for s in cohort.sessions],
        schema={"patient_id": pl.String, "local_date": pl.Date},
        orient="row",
    )
    on_days = readiness.readiness_on_days(reports.lazy(), session_days.lazy(), params).collect()
    for patient, day, verdict in on_days.iter_rows():
        assert verdict == assess_readiness(domain_reports[patient], day, params).readiness
