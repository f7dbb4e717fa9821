"""The cohort outcome report (CLINICAL_RULES section 7) from one tenant's `Facts`.

`cohort_report` is the one entry point the API and the `reptrend report` command share, so
both give the same numbers. It returns the summary (plain JSON values) and the patient-level
table (one row per patient and protocol, and one for each member on no protocol).
`stop_rule_statuses` gives that table's stop-rule rows alone, from the same first steps, for
the dashboard's worklist.

Which sessions each metric counts (decisions the rules leave open, kept in one place):
- everything is as of `as_of`: sessions and reports dated after it do not exist;
- sessions by pain response, the pain-per-repetition curve, slopes, form faults and
  progression count flexion-category sessions with at least one rated repetition
  (extension sessions are often posted without repetitions and would all be `insufficient`);
- weeks count from the patient's first such session in the cohort;
- patients by status count (patient, protocol) pairs of protocols with the stop rule on, a
  prescribed protocol without sessions being `no-sessions`;
- dosage adherence counts sessions of protocols with dosage checked, and days with sessions
  that no hold covers; extension adherence counts flexion-category sessions that require it;
- retry success is tolerated retries over retries; the premature-retry rate is holds with at
  least one premature retry over holds opened; the overdue rate is `retry-overdue` over
  protocols with a hold open (`on-hold`, `retry-due`, `retry-overdue`);
- days from hold to resumed run from the start of a hold episode (through restarts and
  failed retries) to the tolerated retry that ended it;
- started before ready counts (patient, protocol) pairs of protocols that require readiness
  whose first session day was `not-ready` (the per-session flag of section 6 stays with the
  session views); the readiness counts are those of prescribed protocols not yet started;
- an extension session after `as_of`'s end does not follow a flexion session of that day.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import polars as pl

from analytics import adherence, classification, readiness, stop_rule, trends
from analytics.cohorts import Cohort, cohort_patients
from analytics.facts import SESSION_KEY, Facts, prescribed_as_of
from analytics.outcomes import RESPONDER_POINTS, RESPONDER_SHARE, pain_outcomes
from analytics.protocol_table import protocol_table
from domain.pain_response import PainResponse
from domain.protocols import CATALOG, Category, ProtocolParameters
from domain.readiness import Readiness
from domain.stop_rule import ProtocolStatus
from store.errors import InvalidRequest

FLEXION: Final = Category.FLEXION.value
EXTENSION: Final = Category.EXTENSION.value

PATIENT_TABLE_COLUMNS: Final = (
    "patient_id",
    "organization_id",
    "protocol",
    "status",
    "readiness",
    "sessions",
    "first_session",
    "last_session",
    "worsening_sessions",
    "holds",
    "failed_retries",
    "premature_retries",
    "retries",
    "tolerated_retries",
    "hold_since",
    "retry_from",
    "retry_until",
    "under_dose_sessions",
    "over_dose_sessions",
    "started_before_ready",
    "missing_extension_sessions",
    "form_fault_sessions",
    "progressing_sessions",
    "first_week_pain",
    "latest_week_pain",
    "pain_change",
    "responder",
)


@dataclass(frozen=True, slots=True)
class CohortReport:
    summary: dict[str, Any]  # JSON values only
    patients: pl.DataFrame  # PATIENT_TABLE_COLUMNS


def rate(count: int, of: int) -> dict[str, Any]:
    """A share with its numerator and denominator, so a dashboard can show both."""
    return {"count": count, "of": of, "rate": (count / of) if of else None}


def _counts(frame: pl.DataFrame, column: str, labels: list[str]) -> dict[str, int]:
    found = dict(frame.lazy().group_by(column).len().collect().iter_rows()) if frame.height else {}
    return {label: int(found.get(label, 0)) for label in labels}


def _parameters(
    parameters: Mapping[str, ProtocolParameters] | None,
) -> dict[str, ProtocolParameters]:
    merged = {code: p.parameters for code, p in CATALOG.items()}
    merged.update(parameters or {})
    return merged


@dataclass(frozen=True, slots=True)
class _Keys:
    """Patient and protocol ids as `pl.Enum` codes: every later sort, window, group and join
    then works on small integers, not uuid strings."""

    patients: pl.Enum
    protocols: pl.Enum

    def encode(self, frame: pl.LazyFrame, strangers: bool = False) -> pl.LazyFrame:
        """Members only (a non-member casts to null and is dropped), keyed by codes;
        `strangers`: non-members are kept, with a null patient."""
        encoded = frame.with_columns(pl.col("patient_id").cast(self.patients, strict=False))
        if "protocol" in frame.collect_schema():
            encoded = encoded.with_columns(pl.col("protocol").cast(self.protocols, strict=False))
            encoded = encoded.filter(pl.col("protocol").is_not_null())
        return encoded if strangers else encoded.filter(pl.col("patient_id").is_not_null())


def _rule(table: pl.DataFrame, column: str) -> pl.Expr:
    """The parameter `column` of each row's protocol, looked up by its code (`table` is in
    code order): the sessions keep no copy of their protocol's parameters, and need no join."""
    return pl.lit(table[column]).gather(pl.col("protocol").to_physical()).alias(column)


def _rules(table: pl.DataFrame, *columns: str) -> list[pl.Expr]:
    return [_rule(table, column) for column in columns]


def _of(table: pl.DataFrame, condition: pl.Expr) -> pl.Expr:
    """Whether each row's protocol meets `condition` (over the parameter table's columns)."""
    return pl.lit(table.select(condition.alias("_of")).to_series()).gather(
        pl.col("protocol").to_physical()
    )


# What the form-fault counts read of a repetition.
_FAULT_COLUMNS: Final = ("repetition_index", "form_faults")


@dataclass(frozen=True, slots=True)
class _Sessions:
    """What the metrics read besides the assessed sessions."""

    extension: pl.DataFrame  # every member's extension sessions (patient, protocol, day, start)
    repetitions: pl.LazyFrame  # the cohort's repetitions (but those of stored figures)
    faulty: pl.LazyFrame  # the cohort's repetitions' form faults (`_figures`), only those with one
    general: pl.DataFrame  # session keys of the sessions off the fast path
    exact: bool  # session keys are the procedure ids themselves


def _sessions(
    facts: Facts,
    cohort: Cohort,
    as_of: date,
    table: pl.DataFrame,
    keys: _Keys,
    listed_only: bool = False,
) -> tuple[pl.DataFrame, _Sessions] | None:
    """The cohort's non-extension sessions, classified, and the rest the metrics read.
    `listed_only`: `keys` has the tenant's listed patients only (not those with facts and no
    Patient resource): None when a session has such a patient."""
    repetitions, stored, faulty = facts.repetitions, facts.stored_figures, facts.faulty_repetitions
    if cohort.everyone:
        # The largest step first, while nothing else is held in memory; the rows with a form
        # fault in the same read.
        found, faults = _figures(repetitions, stored, faulty)
    member_sessions = keys.encode(
        facts.sessions.filter(pl.col("local_date") <= as_of), strangers=listed_only
    )
    if classification.numbered(facts.sessions):
        # Numbered sessions need no procedure id: it only orders sessions of one protocol
        # that start at the same instant (`_with_procedure_ids` reads them if any do),
        # and not reading 3.3M uuids is a fifth of the sessions' cost. Nor a column of
        # nulls in their place (27 MB per copy of 1.7M sessions): the stop rule's roles
        # get one (`_roles`).
        member_sessions = member_sessions.drop("procedure_id")
    extension_codes = table.filter(pl.col("category") == EXTENSION)["protocol"].implode()
    is_extension = pl.col("protocol").is_in(extension_codes)
    # Every extension session counts for extension adherence, whatever the cohort's protocol;
    # they need no figures, so not their procedure ids either.
    extension, sessions = pl.collect_all(
        [
            member_sessions.filter(is_extension).select(
                *stop_rule.PATIENT_PROTOCOL_DAY, "started_at"
            ),
            member_sessions.filter(~is_extension),
        ]
    )
    strangers = extension["patient_id"].null_count() + sessions["patient_id"].null_count()
    if listed_only and strangers:
        return None
    if cohort.protocol is not None:
        sessions = sessions.filter(pl.col("protocol") == cohort.protocol)
    if not cohort.everyone:
        session = classification.session_id(repetitions)
        members = sessions.lazy().select(session)
        repetitions = repetitions.join(members, on=session, how="semi")
        if stored is not None and faulty is not None:
            stored = stored.join(members, on=session, how="semi")
            faulty = faulty.join(members, on=session, how="semi")
        found, faults = _figures(repetitions, stored, faulty)
    in_order = classification.assess_in_order(sessions, found, _rules(table, *_RULE_COLUMNS[1:]))
    if in_order is not None:  # star-layout files as written: no hash join of the figures
        assessed = _select_assessed(adherence.dosage_flags(in_order))
        general = pl.DataFrame(schema={"session_key": sessions.schema["session_key"]})
        exact = False
    else:
        figures = found.frame()
        assessed = _assess(sessions, figures, table)
        if classification.has_key_collision(assessed):
            figures = classification.session_figures(repetitions, exact=True, stored=stored)
            assessed = _assess(sessions, figures, table)
        general = figures.filter(pl.col("code").is_null()).select("session_key")
        exact = figures.schema["session_key"] == pl.String
    return assessed.drop("key_collision"), _Sessions(
        extension=extension,
        repetitions=repetitions,
        faulty=faults.lazy(),
        general=general,
        exact=exact,
    )


def _figures(
    repetitions: pl.LazyFrame, stored: pl.LazyFrame | None, faulty: pl.LazyFrame | None
) -> tuple[classification.Figures, pl.DataFrame]:
    """`classification.session_figures`, and the rows the form-fault counts read: the
    source's faulty repetitions of every session when it stores figures (then `repetitions`
    lacks those sessions'), else those of `repetitions`, read with the figures."""
    columns = (classification.session_id(repetitions), *_FAULT_COLUMNS)
    rows = (repetitions if faulty is None else faulty).select(columns)
    figures, faults = classification.figures_and_faults(
        repetitions, stored=stored, faulty=rows.filter(pl.col("form_faults").is_not_null())
    )
    assert faults is not None
    return figures, faults


@dataclass(frozen=True, slots=True)
class _Assessed:
    """What every metric starts from: the cohort's sessions, classified, and the stop rule's
    view of them."""

    params: dict[str, ProtocolParameters]
    protocols: pl.Enum
    table: pl.DataFrame  # protocol parameters, protocol as `protocols`
    members: pl.DataFrame  # patient_id (String), organization_id
    keys: _Keys
    assessed: pl.DataFrame
    loaded: _Sessions
    roles: pl.DataFrame  # `stop_rule.session_roles` of the stop-rule sessions


def _assessed(
    facts: Facts,
    cohort: Cohort,
    as_of: date,
    parameters: Mapping[str, ProtocolParameters] | None,
) -> _Assessed:
    params = _parameters({**facts.parameters, **(parameters or {})})
    if cohort.protocol is not None and cohort.protocol not in params:
        raise InvalidRequest(
            f"unknown protocol {cohort.protocol!r}; known: {', '.join(sorted(params))}",
            "protocol",
        )
    protocols = pl.Enum(list(params))
    # In code order, so a session's protocol code is its protocol's row (`_rule`).
    table = protocol_table(params).with_columns(pl.col("protocol").cast(protocols)).sort("protocol")
    # The whole tenant's members are its listed patients unless a session has a patient
    # without a Patient resource: the sessions' encoding shows whether one does (a null
    # code), so their 3.3M patient ids are not also compared with the list first.
    listed_only = cohort.everyone
    members = cohort_patients(facts, cohort, as_of, sessions_listed=listed_only).collect()
    keys = _Keys(pl.Enum(members["patient_id"].to_list()), protocols)
    read = _sessions(facts, cohort, as_of, table, keys, listed_only)
    if read is None:  # a session's patient has no Patient resource: a member too
        members = cohort_patients(facts, cohort, as_of).collect()
        keys = _Keys(pl.Enum(members["patient_id"].to_list()), protocols)
        read = _sessions(facts, cohort, as_of, table, keys)
        assert read is not None
    assessed, loaded = read
    roles = _roles(assessed, table)
    if classification.numbered(facts.sessions) and stop_rule.has_tied_starts(roles):
        assessed = _with_procedure_ids(assessed, facts.sessions)
        roles = _roles(assessed, table)
    return _Assessed(params, protocols, table, members, keys, assessed, loaded, roles)


# The stop rule's state names two columns as the patient table does not.
_STATE_TO_TABLE: Final = {"first_day": "first_session", "last_day": "last_session"}
# The patient table's columns that the stop rule alone decides (and the patient's
# organization), in the table's order.
STATUS_COLUMNS: Final = tuple(
    column
    for column in PATIENT_TABLE_COLUMNS
    if column == "organization_id"
    or column in {_STATE_TO_TABLE.get(c, c) for c in stop_rule.STATE_COLUMNS}
)


def stop_rule_statuses(
    facts: Facts,
    cohort: Cohort,
    as_of: date,
    parameters: Mapping[str, ProtocolParameters] | None = None,
) -> pl.DataFrame:
    """The rows of `cohort_report`'s patient table for protocols with the stop rule on and at
    least one session (`STATUS_COLUMNS`, the same values), without the other metrics: what a
    worklist of holds and retries needs, for less than half the work of the whole report."""
    front = _assessed(facts, cohort, as_of, parameters)
    states = stop_rule.protocol_states(front.roles.lazy(), as_of).collect()
    members = front.members.with_columns(pl.col("patient_id").cast(front.keys.patients))
    return (
        states.join(members, on="patient_id", how="inner")
        .rename(_STATE_TO_TABLE)
        .select(STATUS_COLUMNS)
        .with_columns(pl.col("patient_id", "protocol").cast(pl.String))
        .sort("patient_id", "protocol")
    )


def cohort_report(
    facts: Facts,
    cohort: Cohort,
    as_of: date,
    parameters: Mapping[str, ProtocolParameters] | None = None,
) -> CohortReport:
    """Every section 7 metric for the cohort as of `as_of`.

    `parameters` override the tenant's (`facts.parameters`), which override the built-in
    catalog.
    """
    front = _assessed(facts, cohort, as_of, parameters)
    params, protocols, table, keys = front.params, front.protocols, front.table, front.keys
    members, loaded = front.members, front.loaded
    # Procedure ids only ordered sessions at the same instant (and name holds): done with.
    assessed = front.assessed.drop("procedure_id", strict=False).lazy()
    roles = front.roles.lazy()
    del front  # so the frames it holds are freed as the report drops them
    # Every metric below is a lazy query over the assessed sessions and the stop rule's
    # roles, and they are collected together: the engine runs independent ones side by side
    # (both cores busy through each query's single-threaded stretches) and computes a
    # subquery several metrics share (the rated sessions' weeks, the states, the pain
    # reports) once.
    holds = stop_rule.holds(roles)
    unchecked = pl.concat(
        [
            assessed.filter(~_of(table, pl.col("stop_rule"))).select(
                stop_rule.PATIENT_PROTOCOL_DAY
            ),
            loaded.extension.lazy()
            .filter(pl.col("protocol") == cohort.protocol if cohort.protocol else pl.lit(True))
            .select(stop_rule.PATIENT_PROTOCOL_DAY),
        ]
    )
    states = pl.concat(
        [stop_rule.protocol_states(roles, as_of), stop_rule.unchecked_states(unchecked)]
    )
    rated = trends.session_weeks(
        assessed.filter(_of(table, pl.col("category") == FLEXION) & (pl.col("n") >= 1))
    ).select(_RATED_COLUMNS)
    pain_reports = keys.encode(facts.pain_reports)
    extension = _extension(assessed, loaded.extension, table)
    # Shared by several metrics: computed once.
    states, rated, pain_reports, extension = (
        frame.lazy() for frame in pl.collect_all([states, rated, pain_reports, extension])
    )
    outcomes = pain_outcomes(pain_reports, as_of)
    started = _started_before_ready(states, pain_reports, params)
    patient_table = _patient_table(
        members=members.with_columns(pl.col("patient_id").cast(keys.patients)),
        prescriptions=keys.encode(prescribed_as_of(facts.prescriptions, as_of)),
        cohort=cohort,
        states=states,
        assessed=assessed,
        extension=extension,
        started=started,
        readiness_now=_readiness_now(pain_reports, as_of, params, protocols),
        outcomes=outcomes,
        table=table,
    )
    queries = {
        "patient_table": patient_table,
        "outcomes": outcomes,
        "resumed": stop_rule.days_to_resume(roles).select("days"),
        "roles": _role_counts(roles),
        "holds": holds.select(pl.len().cast(pl.Int64)),
        "mix": rated.group_by("week", "response").len().sort("week"),
        "responses": rated.group_by("response").len(),
        "curve": trends.pain_curve(rated, _general_repetitions(loaded)),
        "slopes": trends.slope_counts(rated),
        "rated": rated.select(
            sessions=pl.len().cast(pl.Int64),
            faulty=(pl.col("faulty_reps") > 0).sum().cast(pl.Int64),
            progressing=pl.col("progressing").sum().cast(pl.Int64),
            judged_progress=pl.col("progressing").is_not_null().sum().cast(pl.Int64),
        ),
        "faults": _faults_by_code(loaded, rated),
        "adherence": _adherence_counts(assessed, holds, extension, started, table),
    }
    frames = dict(zip(queries, pl.collect_all(list(queries.values())), strict=True))
    patients = frames["patient_table"]
    rated_counts = frames["rated"].row(0, named=True)
    summary = {
        "cohort": {**cohort.as_dict(), "patients": members.height},
        "as_of": as_of.isoformat(),
        **_status_summary(patients, table),
        **_response_summary(frames["mix"], frames["responses"]),
        "pain_per_repetition": frames["curve"].to_dicts(),
        "slope_by_week": trends.mean_slopes(frames["slopes"]),
        **_stop_rule_summary(
            frames["roles"], frames["holds"].item(), frames["resumed"]["days"].to_list(), patients
        ),
        **_adherence_summary(frames["adherence"].row(0, named=True)),
        "form_faults": {
            "sessions": rate(rated_counts["faulty"], rated_counts["sessions"]),
            "repetitions_by_code": {code: int(n) for code, n in frames["faults"].iter_rows()},
        },
        "progression": rate(rated_counts["progressing"], rated_counts["judged_progress"]),
        "readiness": _counts(
            patients.filter(
                (pl.col("status") == ProtocolStatus.NO_SESSIONS.value)
                & pl.col("readiness").is_not_null()
            ),
            "readiness",
            [r.value for r in Readiness],
        ),
        "pain_outcome": _outcome_summary(frames["outcomes"]),
    }
    return CohortReport(summary, patients)


# The parameters classification and dosage read per session (the others are looked up by
# protocol code where a metric needs them, `_rule`).
_RULE_COLUMNS: Final = (
    "protocol",
    "stop_rule_mode",
    "worsening_min_rise",
    "worsening_min_rises",
    "slope_threshold",
    "severe_pain",
    "min_reps",
    "max_reps",
    "dosage_checked",
)


# What later metrics read of an assessed session (the rest is dropped to save memory).
_ASSESSED_COLUMNS: Final = (
    "procedure_id",
    "patient_id",
    "protocol",
    "local_date",
    "started_at",
    "ended_at",
    "session_key",
    "n",
    "code",
    "slope",
    "progressing",
    "faulty_reps",
    "response",
    "dosage",
)

# The stop rule's parameters, per session of its protocols.
_STOP_RULE_COLUMNS: Final = ("retry_min_days", "retry_max_days", "max_failed_retries")


# What the session-level metrics read of the rated flexion-category sessions.
_RATED_COLUMNS: Final = (
    "session_key",
    "patient_id",
    "week",
    "n",
    "code",
    "slope",
    "response",
    "progressing",
    "faulty_reps",
)


# What the metrics read of the stop rule's roles (and `has_tied_starts`, the start).
_ROLE_COLUMNS: Final = (
    *stop_rule.SESSION_ORDER,
    "local_date",
    *_STOP_RULE_COLUMNS,
    "worsening",
    "holds_before",
    "hold_since",
    "premature",
    "retry",
    "failed",
    "tolerated",
    "restarted",
    "episode_since",
)


def _roles(assessed: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    checked = assessed.lazy().filter(_of(table, pl.col("stop_rule")))
    if "procedure_id" not in assessed.columns:  # numbered sessions whose ids are not read
        checked = checked.with_columns(procedure_id=pl.lit(None, pl.String))
    # Sorting in memory is about twice as fast as the streaming engine's sort here.
    return (
        stop_rule.session_roles(checked.with_columns(_rules(table, *_STOP_RULE_COLUMNS)))
        .select(_ROLE_COLUMNS)
        .collect(engine="in-memory")
    )


def _with_procedure_ids(assessed: pl.DataFrame, sessions: pl.LazyFrame) -> pl.DataFrame:
    """`assessed` (numbered sessions) with their procedure ids, read from the source."""
    ids = sessions.select(SESSION_KEY, "procedure_id").collect()
    return assessed.drop("procedure_id", strict=False).join(
        ids, on=SESSION_KEY, how="left", maintain_order="left"
    )


def _assess(sessions: pl.DataFrame, figures: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    return _select_assessed(
        adherence.dosage_flags(
            classification.assess_sessions(sessions.lazy(), figures, table.select(_RULE_COLUMNS))
        )
    )


def _select_assessed(assessed: pl.LazyFrame) -> pl.DataFrame:
    columns = assessed.collect_schema()
    return assessed.select(
        c for c in (*_ASSESSED_COLUMNS, "key_collision") if c in columns
    ).collect()


def _extension(
    assessed: pl.LazyFrame, extension_sessions: pl.DataFrame, table: pl.DataFrame
) -> pl.LazyFrame:
    flexion = assessed.filter(
        _of(table, (pl.col("category") == FLEXION) & pl.col("requires_extension_after"))
    )
    return adherence.missing_extension(
        flexion.select(
            "patient_id",
            "protocol",
            "started_at",
            "ended_at",
            _rule(table, "extension_within_minutes"),
        ),
        extension_sessions.lazy().select("patient_id", "started_at"),
    ).select("patient_id", "protocol", "extension_missing")


def _started_before_ready(
    states: pl.LazyFrame,
    pain_reports: pl.LazyFrame,
    params: Mapping[str, ProtocolParameters],
) -> pl.LazyFrame:
    """Readiness on the day each patient started each protocol that requires it (the day of
    the first session, the state's `first_day`): `not-ready` is a start before the entry
    criteria were met."""
    frames = []
    for code, p in params.items():
        if not p.requires_readiness:
            continue
        starts = states.filter(pl.col("protocol") == code).select(
            "patient_id", "protocol", local_date="first_day"
        )
        verdicts = readiness.readiness_on_days(
            pain_reports, starts.select("patient_id", "local_date"), p
        )
        frames.append(starts.join(verdicts, on=["patient_id", "local_date"], how="left"))
    if not frames:
        return (
            states.select("patient_id", "protocol", local_date="first_day")
            .clear()
            .with_columns(readiness=pl.lit(None, readiness.READINESS))
        )
    return pl.concat(frames)


def _readiness_now(
    pain_reports: pl.LazyFrame,
    as_of: date,
    params: Mapping[str, ProtocolParameters],
    protocols: pl.Enum,
) -> pl.LazyFrame:
    frames = [
        readiness.readiness_as_of(pain_reports, as_of, p).select(
            "patient_id", "readiness", protocol=pl.lit(code, protocols)
        )
        for code, p in params.items()
        if p.requires_readiness
    ]
    if not frames:
        return (
            pain_reports.select("patient_id")
            .clear()
            .with_columns(
                readiness=pl.lit(None, readiness.READINESS), protocol=pl.lit(None, protocols)
            )
        )
    return pl.concat(frames)


def _patient_table(
    *,
    members: pl.DataFrame,
    prescriptions: pl.LazyFrame,
    cohort: Cohort,
    states: pl.LazyFrame,
    assessed: pl.LazyFrame,
    extension: pl.LazyFrame,
    started: pl.LazyFrame,
    readiness_now: pl.LazyFrame,
    outcomes: pl.LazyFrame,
    table: pl.DataFrame,
) -> pl.LazyFrame:
    key = ["patient_id", "protocol"]
    if cohort.protocol is not None:
        prescriptions = prescriptions.filter(pl.col("protocol") == cohort.protocol)
    pairs = pl.concat([states.select(key), prescriptions.select(key)]).unique()
    per_session = assessed.group_by(key).agg(
        worsening_sessions=(pl.col("response") == PainResponse.WORSENING.value).sum(),
        under_dose_sessions=(pl.col("dosage") == "under-dose").sum(),
        over_dose_sessions=(pl.col("dosage") == "over-dose").sum(),
        form_fault_sessions=(
            (pl.col("faulty_reps") > 0) & _of(table, pl.col("category") == FLEXION)
        ).sum(),
        progressing_sessions=pl.col("progressing").fill_null(False).sum(),
    )
    missing = extension.group_by(key).agg(
        missing_extension_sessions=pl.col("extension_missing").sum()
    )
    started_before_ready = started.select(
        *key, started_before_ready=pl.col("readiness") == Readiness.NOT_READY.value
    )
    counts = [
        "sessions",
        "worsening_sessions",
        "holds",
        "failed_retries",
        "premature_retries",
        "retries",
        "tolerated_retries",
        "under_dose_sessions",
        "over_dose_sessions",
        "missing_extension_sessions",
        "form_fault_sessions",
        "progressing_sessions",
    ]
    # Protocols whose readiness is assessed: their pairs without a verdict are `unknown`.
    assessed_readiness = readiness_now.select("protocol").unique().with_columns(_assessed=True)
    joined = (
        pairs.join(members.lazy(), on="patient_id", how="inner")
        .join(states, on=key, how="left")
        .join(per_session, on=key, how="left")
        .join(missing, on=key, how="left")
        .join(started_before_ready, on=key, how="left")
        .join(readiness_now, on=key, how="left")
        .join(outcomes, on="patient_id", how="left")
        .join(assessed_readiness, on="protocol", how="left")
        .with_columns(
            # As text: filled with text (polars' schema says String, but an Enum column
            # filled so keeps its Enum data, which a concat then refuses).
            status=pl.col("status").cast(pl.String).fill_null(ProtocolStatus.NO_SESSIONS.value),
            readiness=pl.when(pl.col("_assessed")).then(
                pl.col("readiness").cast(pl.String).fill_null(Readiness.UNKNOWN.value)
            ),
            **{table: pl.col(state) for state, table in _STATE_TO_TABLE.items()},
        )
        .with_columns(pl.col(c).fill_null(0).cast(pl.Int32) for c in counts)
    )
    # Members on no protocol (pain reports only, say) get a row too, protocol and status
    # empty: the table lists the cohort the summary counts (its pain outcome included).
    shape = joined.select(PATIENT_TABLE_COLUMNS).collect_schema()
    unassigned = (
        members.lazy()
        .join(pairs, on="patient_id", how="anti")
        .join(outcomes, on="patient_id", how="left")
        .with_columns(pl.lit(0, pl.Int32).alias(c) for c in counts)
    )
    present = unassigned.collect_schema()
    unassigned = unassigned.select(
        pl.col(c) if c in present else pl.lit(None, shape[c]).alias(c) for c in shape
    )
    return (
        pl.concat([joined.select(PATIENT_TABLE_COLUMNS), unassigned])
        .with_columns(pl.col("patient_id", "protocol").cast(pl.String))
        .sort("patient_id", "protocol")
    )


def _status_summary(patient_table: pl.DataFrame, table: pl.DataFrame) -> dict[str, Any]:
    statuses = [s.value for s in ProtocolStatus]
    checked = table.filter("stop_rule")["protocol"].cast(pl.String).to_list()
    by_protocol = [
        {
            "protocol": code,
            "patients_by_status": _counts(
                patient_table.filter(pl.col("protocol") == code), "status", statuses
            ),
        }
        for code in sorted(patient_table["protocol"].drop_nulls().unique().to_list())
    ]
    return {
        "patients_by_status": _counts(
            patient_table.filter(pl.col("protocol").is_in(checked)), "status", statuses
        ),
        "protocols": by_protocol,
    }


def _response_summary(mix: pl.DataFrame, responses: pl.DataFrame) -> dict[str, Any]:
    """Sessions by pain response, overall and by week since start (the response mix)."""
    labels = [r.value for r in PainResponse]
    by_week: dict[int, dict[str, int]] = {}
    for week, response, count in mix.iter_rows():
        by_week.setdefault(week, dict.fromkeys(labels, 0))[response] = count
    found = dict(responses.iter_rows())
    return {
        "sessions_by_response": {label: int(found.get(label, 0)) for label in labels},
        "responses_by_week": [
            {"week": week, "sessions_by_response": counts} for week, counts in by_week.items()
        ],
    }


def _general_repetitions(loaded: _Sessions) -> pl.LazyFrame:
    """The ordered repetitions of the sessions off the fast path (their pain curve rows)."""
    general, exact = loaded.general, loaded.exact
    if not general.height:
        return pl.LazyFrame(
            schema={
                "session_key": general.schema["session_key"],
                "repetition_index": pl.Int32,
                "pain": pl.Int8,
            }
        )
    return classification.keyed(
        classification.ordered_repetitions(
            classification.general_rows(loaded.repetitions, general, exact)
        ),
        exact,
    ).select("session_key", "repetition_index", "pain")


def _role_counts(roles: pl.LazyFrame) -> pl.LazyFrame:
    """Tolerated retries, retries, and holds that met at least one premature retry."""
    premature = roles.filter("premature").select("patient_id", "protocol", "holds_before")
    return pl.concat(
        [
            roles.select(
                tolerated=pl.col("tolerated").sum().cast(pl.Int64),
                retries=pl.col("retry").sum().cast(pl.Int64),
            ),
            premature.unique().select(with_premature=pl.len().cast(pl.Int64)),
        ],
        how="horizontal",
    )


def _stop_rule_summary(
    roles: pl.DataFrame, holds: int, resumed: list[int], patient_table: pl.DataFrame
) -> dict[str, Any]:
    counts = roles.row(0, named=True)
    open_statuses = [
        ProtocolStatus.ON_HOLD.value,
        ProtocolStatus.RETRY_DUE.value,
        ProtocolStatus.RETRY_OVERDUE.value,
    ]
    statuses = patient_table["status"].cast(pl.String)
    return {
        "hold_to_resume_days": {
            "episodes": len(resumed),
            "median": statistics.median(resumed) if resumed else None,
            "mean": statistics.fmean(resumed) if resumed else None,
        },
        "retry_success": rate(counts["tolerated"], counts["retries"]),
        "premature_retry": rate(counts["with_premature"], holds),
        "retry_overdue": rate(
            int((statuses == ProtocolStatus.RETRY_OVERDUE.value).sum()),
            int(statuses.is_in(open_statuses).sum()),
        ),
    }


def _adherence_counts(
    assessed: pl.LazyFrame,
    holds: pl.LazyFrame,
    extension: pl.LazyFrame,
    started: pl.LazyFrame,
    table: pl.DataFrame,
) -> pl.LazyFrame:
    """One row: the counts of the dosage, extension and started-before-ready rates."""
    checked = assessed.filter(_of(table, pl.col("dosage_checked")))
    dosage = pl.col("dosage")
    dosed = checked.select(
        sessions=pl.len().cast(pl.Int64),
        within=dosage.is_null().sum().cast(pl.Int64),
        under=(dosage == "under-dose").sum().cast(pl.Int64),
        over=(dosage == "over-dose").sum().cast(pl.Int64),
    )
    # Only days of protocols with dosage checked are judged: the others are not counted.
    days = adherence.daily_flags(
        checked.select(
            *stop_rule.PATIENT_PROTOCOL_DAY,
            *_rules(table, "dosage_checked", "min_sessions_per_day", "max_sessions_per_day"),
        ),
        holds,
    )
    # Days with sessions (not on hold) by their flag, and the days between a pair's first
    # and latest session without any: under its minimum, unless the clinic set that to 0.
    skipped = pl.col("skipped")
    judged = (
        adherence.day_counts(days.filter("dosage_checked"), holds)
        .with_columns(_rule(table, "min_sessions_per_day"))
        .with_columns(idle_under=skipped * (pl.col("min_sessions_per_day") > 0))
        .select(
            days=(pl.col("judged") + skipped).sum(),
            days_within=(pl.col("judged") - pl.col("under") - pl.col("over") + skipped).sum()
            - pl.col("idle_under").sum(),
            under_days=(pl.col("under") + pl.col("idle_under")).sum(),
            over_days=pl.col("over").sum(),
        )
        .with_columns(pl.all().cast(pl.Int64))
    )
    followed = extension.select(
        flexion=pl.len().cast(pl.Int64),
        followed=(~pl.col("extension_missing")).sum().cast(pl.Int64),
    )
    ready = started.select(
        starts=pl.len().cast(pl.Int64),
        not_ready=(pl.col("readiness") == Readiness.NOT_READY.value).sum().cast(pl.Int64),
    )
    return pl.concat([dosed, judged, followed, ready], how="horizontal")


def _adherence_summary(counts: dict[str, int]) -> dict[str, Any]:
    return {
        "dosage_adherence": {
            "sessions": rate(counts["within"], counts["sessions"]),
            "under_dose_sessions": counts["under"],
            "over_dose_sessions": counts["over"],
            "days": rate(counts["days_within"], counts["days"]),
            "under_sessions_days": counts["under_days"],
            "over_sessions_days": counts["over_days"],
        },
        "extension_adherence": rate(counts["followed"], counts["flexion"]),
        "started_before_ready": rate(counts["not_ready"], counts["starts"]),
    }


def _faults_by_code(loaded: _Sessions, rated: pl.LazyFrame) -> pl.LazyFrame:
    """Repetitions by form-fault code over the rated flexion-category sessions. Faults are
    rare: counted over the rows that have one, then kept for the sessions with a faulty
    repetition (a sixth of them: a smaller join)."""
    return (
        adherence.form_fault_counts(loaded.faulty)
        .pipe(classification.keyed, loaded.exact)
        .join(
            rated.filter(pl.col("faulty_reps") > 0).select("session_key"),
            on="session_key",
            how="semi",
        )
        .group_by("fault")
        .agg(pl.col("reps").sum())
        .sort("fault")
    )


def _mean(values: pl.Series) -> float | None:
    """Correctly rounded, so independent of row order (see `trends.slope_by_week`)."""
    return statistics.fmean(values.to_list()) if len(values) else None


def _outcome_summary(outcomes: pl.DataFrame) -> dict[str, Any]:
    evaluable = outcomes.filter(pl.col("pain_change").is_not_null())
    changes = evaluable["pain_change"].to_list()
    return {
        "patients": evaluable.height,
        "mean_first_week_pain": _mean(evaluable["first_week_pain"]),
        "mean_latest_week_pain": _mean(evaluable["latest_week_pain"]),
        "mean_change": statistics.fmean(changes) if changes else None,
        "median_change": statistics.median(changes) if changes else None,
        "responders": rate(int(evaluable["responder"].sum()), evaluable.height),
        "responder_rule": {"points": RESPONDER_POINTS, "share": RESPONDER_SHARE},
    }
