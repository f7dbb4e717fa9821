"""The stop rule across a cohort (CLINICAL_RULES section 5), without a per-patient fold.

`domain.stop_rule.evaluate_protocol` folds one patient's sessions in start order. Here the
same state machine is computed for every patient and protocol at once from three window
values per session, after sorting the sessions once by (patient, protocol, start, procedure):

1. Every `worsening` session opens a hold from its own day, whatever the state (a first hold,
   a restarted premature retry, a failed retry). So the hold a session can meet is the one
   opened by the last worsening session before it: `holds_before` (how many worsening
   sessions came before) and `hold_since` (that session's day).
2. That hold is still open when the session arrives unless an earlier session since it was on
   or after the window start: only such a session (the retry) closes a hold without opening a
   new one. So the hold is open iff `seen_max` (the latest day among the sessions since the
   hold opened, before this one) is before `hold_since + retry_min_days`. Days are the local
   dates as written, which need not grow with the start instant (offsets differ), hence the
   maximum rather than the previous day.
3. The session's role follows: open and before the window -> premature retry (restarting the
   hold when worsening); open and in or after the window -> the retry (failed when worsening,
   else tolerated); not open -> an ordinary session (opening a hold when worsening).

Each value is a cumulative sum, forward fill or cumulative maximum within an ordered group,
so the whole cohort costs one sort and a few linear passes (the window helpers below compute
what `.over(...)` would, without regrouping). The parity test holds every status, hold, window
and count to the domain fold.
"""

from __future__ import annotations

from datetime import date
from typing import Final

import polars as pl

from domain.pain_response import PainResponse
from domain.stop_rule import HoldOutcome, ProtocolStatus

PROTOCOL_STATUS: Final = pl.Enum([s.value for s in ProtocolStatus])
HOLD_OUTCOME: Final = pl.Enum([o.value for o in HoldOutcome])
PATIENT_PROTOCOL: Final = ("patient_id", "protocol")
PATIENT_PROTOCOL_DAY: Final = (*PATIENT_PROTOCOL, "local_date")
SESSION_ORDER: Final = (*PATIENT_PROTOCOL, "started_at", "procedure_id")

STATE_COLUMNS: Final = (
    *PATIENT_PROTOCOL,
    "sessions",
    "first_day",
    "last_day",
    "holds",
    "failed_retries",
    "premature_retries",
    "retries",
    "tolerated_retries",
    "status",
    "hold_since",
    "retry_from",
    "retry_until",
)

_WORSENING: Final = PainResponse.WORSENING.value


def _days(column: str) -> pl.Expr:
    return pl.duration(days=pl.col(column))


# Window values over rows sorted by group. Each is what `expr.over(group)` gives, computed with
# one sequential pass and a mask at the group's first row: measured on 1.4M sessions, each
# `.over((patient, protocol))` costs a hash grouping (~0.15 s here) and these a few ms.


def _run_starts(columns: list[str]) -> pl.Expr:
    """True on the first row of each run of equal `columns` (rows sorted by them)."""
    change = pl.lit(False)
    for column in columns:
        change = change | (pl.col(column) != pl.col(column).shift(1))
    return change.fill_null(True)


def _running_count(flag: pl.Expr, starts: pl.Expr) -> pl.Expr:
    """How many rows before this one in its group have `flag`: the
    `(flag.cum_sum() - flag).over(group)` of the module docstring."""
    value = flag.cast(pl.Int32)
    before = value.cum_sum() - value
    return before - pl.when(starts).then(before).forward_fill()


def _last_before(value: pl.Expr, starts: pl.Expr) -> pl.Expr:
    """The last non-null `value` strictly before this row in its group:
    `value.forward_fill().shift(1).over(group)`."""
    group = starts.cum_sum()
    owner = pl.when(value.is_not_null()).then(group).forward_fill().shift(1)
    return pl.when(owner == group).then(value.forward_fill().shift(1))


def _last_so_far(value: pl.Expr, starts: pl.Expr) -> pl.Expr:
    """The last non-null `value` up to this row in its group: `value.forward_fill().over(group)`."""
    group = starts.cum_sum()
    owner = pl.when(value.is_not_null()).then(group).forward_fill()
    return pl.when(owner == group).then(value.forward_fill())


_DAY_BITS: Final = 32
_EARLIEST: Final = -(1 << 63)  # the smallest instant, in microseconds


def _max_day_before(day: pl.Expr, starts: pl.Expr) -> pl.Expr:
    """The latest `day` strictly before this row in its segment:
    `day.cum_max().shift(1).over(segment)`. Segments are numbered in row order, so packing the
    segment number above the day makes one global running maximum stay within a segment."""
    segment = starts.cum_sum().cast(pl.Int64)
    packed = (segment * (1 << _DAY_BITS) + day.cast(pl.Int32).cast(pl.Int64)).cum_max()
    previous = packed.shift(1) - segment * (1 << _DAY_BITS)
    return pl.when(~starts).then(previous).cast(pl.Int32).cast(pl.Date)


def has_tied_starts(roles: pl.DataFrame) -> bool:
    """Whether two sessions of one patient and protocol start at the same instant in
    `session_roles` rows (sorted, so such sessions are adjacent): only then does the order
    between them, by procedure id, matter."""
    same = pl.lit(True)
    for column in (*PATIENT_PROTOCOL, "started_at"):
        same = same & (pl.col(column) == pl.col(column).shift(1))
    return bool(roles.select(same.fill_null(False).any()).item())


def session_order(sessions: pl.LazyFrame) -> pl.LazyFrame:
    """Sessions sorted as the fold reads them: by patient, protocol, start instant and, at the
    same instant, procedure id."""
    schema = sessions.collect_schema()
    if not all(isinstance(schema[c], pl.Enum) for c in PATIENT_PROTOCOL):
        return sessions.sort(list(SESSION_ORDER))
    # Patient and protocol as codes (the report's keys): the first three keys packed into one
    # Int128 (32 bits of code each, 64 of instant), ordered the same way, sort in two thirds
    # of the time of four separate keys.
    instant = pl.col("started_at").dt.epoch("us").fill_null(_EARLIEST)  # nulls first
    packed = (
        pl.col("patient_id").to_physical().cast(pl.Int128) * (1 << 96)
        + pl.col("protocol").to_physical().cast(pl.Int128) * (1 << 64)
        + (instant.cast(pl.Int128) - _EARLIEST)
    )
    return sessions.sort(packed, pl.col("procedure_id"))


def session_roles(sessions: pl.LazyFrame) -> pl.LazyFrame:
    """Per session of a stop-rule protocol: its place in the state machine.

    Expects one row per session dated on or before as_of, with `patient_id`, `protocol`,
    `procedure_id`, `local_date`, `started_at`, `response` and the protocol's
    `retry_min_days`, `retry_max_days` and `max_failed_retries` (other columns are dropped).
    Returns them in session order with `worsening`, `holds_before`, `hold_since`,
    `retry_from`, `hold_open` (at arrival), `premature`, `retry`, `failed`, `tolerated`,
    `restarted`, `plain_open` (a hold opened while none was) and `episode_since` (the day the
    run of holds this session belongs to began).
    """
    key = list(PATIENT_PROTOCOL)
    day = pl.col("local_date")
    worsening = pl.col("worsening")
    starts = pl.col("_starts")
    ordered = session_order(
        sessions.select(
            *SESSION_ORDER,
            "local_date",
            "response",
            "retry_min_days",
            "retry_max_days",
            "max_failed_retries",
        )
    ).with_columns(worsening=pl.col("response") == _WORSENING, _starts=_run_starts(key))
    staged = ordered.with_columns(
        holds_before=_running_count(worsening, starts),
        hold_since=_last_before(pl.when(worsening).then(day), starts),
        # A new segment starts with each group and after each worsening session.
        _segment_starts=starts | worsening.shift(1).fill_null(False),
    ).with_columns(
        seen_max=_max_day_before(day, pl.col("_segment_starts")),
        retry_from=pl.col("hold_since") + _days("retry_min_days"),
    )
    hold_open = (pl.col("holds_before") >= 1) & (
        pl.col("seen_max").is_null() | (pl.col("seen_max") < pl.col("retry_from"))
    )
    roles = staged.with_columns(hold_open=hold_open.fill_null(False)).with_columns(
        premature=pl.col("hold_open") & (day < pl.col("retry_from")),
        retry=pl.col("hold_open") & (day >= pl.col("retry_from")),
    )
    return (
        roles.with_columns(
            failed=pl.col("retry") & worsening,
            tolerated=pl.col("retry") & ~worsening,
            restarted=pl.col("premature") & worsening,
            plain_open=worsening & ~pl.col("hold_open"),
        )
        .with_columns(
            episode_since=_last_so_far(pl.when("plain_open").then(day), starts),
        )
        .drop("_starts", "_segment_starts")
    )


def protocol_states(roles: pl.LazyFrame, as_of: date) -> pl.LazyFrame:
    """Status of each patient's stop-rule protocol as of `as_of` from `session_roles` rows.

    One row per (patient, protocol) with at least one session; `no-sessions` rows come from
    the cohort (prescriptions) and are added by the report.
    """
    day = pl.col("local_date")
    worsening = pl.col("worsening")
    # After a session the hold is open iff it opened one, or was a premature retry that kept
    # the hold it met; the open hold is then the one of the last worsening session.
    open_after = worsening | (pl.col("premature") & ~worsening)
    since_after = pl.when(worsening).then(day).otherwise(pl.col("hold_since"))
    states = roles.group_by(list(PATIENT_PROTOCOL)).agg(
        sessions=pl.len().cast(pl.Int32),
        first_day=day.min(),
        last_day=day.max(),
        holds=worsening.sum().cast(pl.Int32),
        failed_retries=pl.col("failed").sum().cast(pl.Int32),
        premature_retries=pl.col("premature").sum().cast(pl.Int32),
        retries=pl.col("retry").sum().cast(pl.Int32),
        tolerated_retries=pl.col("tolerated").sum().cast(pl.Int32),
        hold_open=open_after.last(),
        open_since=since_after.last(),
        retry_min_days=pl.col("retry_min_days").first(),
        retry_max_days=pl.col("retry_max_days").first(),
        max_failed_retries=pl.col("max_failed_retries").first(),
    )
    hold_open = pl.col("hold_open")
    retry_from = pl.col("open_since") + _days("retry_min_days")
    retry_until = pl.col("open_since") + _days("retry_max_days")
    as_of_lit = pl.lit(as_of, pl.Date)
    status = (
        pl.when(pl.col("failed_retries") >= pl.col("max_failed_retries"))
        .then(pl.lit(ProtocolStatus.CLINICIAN_REVIEW.value))
        .when(hold_open & (as_of_lit < retry_from))
        .then(pl.lit(ProtocolStatus.ON_HOLD.value))
        .when(hold_open & (as_of_lit <= retry_until))
        .then(pl.lit(ProtocolStatus.RETRY_DUE.value))
        .when(hold_open)
        .then(pl.lit(ProtocolStatus.RETRY_OVERDUE.value))
        .when(pl.col("holds") >= 1)
        .then(pl.lit(ProtocolStatus.RESUMED.value))
        .otherwise(pl.lit(ProtocolStatus.ACTIVE.value))
    )
    return states.with_columns(
        status=status.cast(PROTOCOL_STATUS),
        hold_since=pl.when(hold_open).then(pl.col("open_since")),
        retry_from=pl.when(hold_open).then(retry_from),
        retry_until=pl.when(hold_open).then(retry_until),
    ).select(STATE_COLUMNS)


def unchecked_states(sessions: pl.LazyFrame) -> pl.LazyFrame:
    """Protocols with the stop rule off: `active` once there is a session, never a hold."""
    zero = pl.lit(0, pl.Int32)
    no_day = pl.lit(None, pl.Date)
    return (
        sessions.group_by(list(PATIENT_PROTOCOL))
        .agg(
            sessions=pl.len().cast(pl.Int32),
            first_day=pl.col("local_date").min(),
            last_day=pl.col("local_date").max(),
        )
        .with_columns(
            holds=zero,
            failed_retries=zero,
            premature_retries=zero,
            retries=zero,
            tolerated_retries=zero,
            status=pl.lit(ProtocolStatus.ACTIVE.value, PROTOCOL_STATUS),
            hold_since=no_day,
            retry_from=no_day,
            retry_until=no_day,
        )
        .select(STATE_COLUMNS)
    )


def holds(roles: pl.LazyFrame) -> pl.LazyFrame:
    """Every hold opened, as `domain.stop_rule.Hold`: since, window, who opened and closed it.

    Hold `number` k (1-based per patient and protocol) is opened by the k-th worsening session
    and closed, if at all, by the session that met it open and was a tolerated retry, a failed
    retry or a worsening premature retry.
    """
    key = list(PATIENT_PROTOCOL)
    opened = roles.filter("worsening").select(
        *key,
        number=pl.col("holds_before") + 1,
        since="local_date",
        retry_from=pl.col("local_date") + _days("retry_min_days"),
        retry_until=pl.col("local_date") + _days("retry_max_days"),
        opened_by="procedure_id",
    )
    outcome = (
        pl.when("tolerated")
        .then(pl.lit(HoldOutcome.TOLERATED.value))
        .when("failed")
        .then(pl.lit(HoldOutcome.FAILED.value))
        .otherwise(pl.lit(HoldOutcome.RESTARTED.value))
    )
    closed = roles.filter(pl.col("tolerated") | pl.col("failed") | pl.col("restarted")).select(
        *key,
        number="holds_before",
        closed_by="procedure_id",
        closed_on="local_date",
        outcome=outcome.cast(HOLD_OUTCOME),
    )
    # A left join keeps no row order by default; holds are read in the order they opened.
    return opened.join(closed, on=[*key, "number"], how="left").sort([*key, "number"])


def days_to_resume(roles: pl.LazyFrame) -> pl.LazyFrame:
    """Days from the start of each hold episode (a hold opened while none was, through any
    restarts and failed retries) to the tolerated retry that ended it."""
    return roles.filter("tolerated").select(
        *PATIENT_PROTOCOL,
        "procedure_id",
        days=(pl.col("local_date") - pl.col("episode_since")).dt.total_days().cast(pl.Int32),
    )
