"""Dosage, sequence and form across a cohort (CLINICAL_RULES section 6), vectorised.

Matches `domain.adherence`: `dosage_flag` per session, `daily_flags` per day with sessions
(days a hold covers are not judged), `day_counts` per pair, with the days of `active_days`
without any, `missing_extension` per flexion-category session and `form_fault_counts` per session.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from analytics.classification import session_id
from domain.adherence import DayFlag, SessionFlag
from domain.pain_response import PainResponse

DOSAGE_FLAG: Final = pl.Enum([SessionFlag.UNDER_DOSE.value, SessionFlag.OVER_DOSE.value])
DAY_FLAG: Final = pl.Enum([f.value for f in DayFlag])
PATIENT_PROTOCOL_DAY: Final = ("patient_id", "protocol", "local_date")


def dosage_flags(assessed: pl.LazyFrame) -> pl.LazyFrame:
    """Adds `dosage`: `under-dose` below min_reps unless the session was worsening (stopping
    then is right), `over-dose` above max_reps, null within or when dosage is not checked."""
    n = pl.col("n")
    flag = (
        pl.when(~pl.col("dosage_checked"))
        .then(None)
        .when((n < pl.col("min_reps")) & (pl.col("response") != PainResponse.WORSENING.value))
        .then(pl.lit(SessionFlag.UNDER_DOSE.value, DOSAGE_FLAG))
        .when(n > pl.col("max_reps"))
        .then(pl.lit(SessionFlag.OVER_DOSE.value, DOSAGE_FLAG))
    )
    return assessed.with_columns(dosage=flag.cast(DOSAGE_FLAG))


def daily_flags(assessed: pl.LazyFrame, holds: pl.LazyFrame) -> pl.LazyFrame:
    """One row per patient, protocol and day with a session: the session count, whether a hold
    covers the day (`Hold.covers`: from its day to the day it closed, or on while open) and the
    day's flag for protocols with dosage checked."""
    key = list(PATIENT_PROTOCOL_DAY)
    # The parameters are the protocol's: looked up once per protocol, not kept per row.
    per_protocol = assessed.select(
        "protocol", "dosage_checked", "min_sessions_per_day", "max_sessions_per_day"
    ).unique("protocol")
    days = (
        assessed.group_by(key)
        .agg(sessions=pl.len().cast(pl.Int32))
        .join(per_protocol, on="protocol", how="left")
    )
    held = holds.select("patient_id", "protocol", "since", "closed_on")
    schema = assessed.collect_schema()
    if all(isinstance(schema[c], pl.Enum) for c in key[:2]):
        days = _with_cover(days, held)
    else:
        covered = (
            days.select(key)
            .join(held.select(key[:2]).unique(), on=key[:2], how="semi")
            .join(held, on=key[:2])
            .filter(
                (pl.col("since") <= pl.col("local_date"))
                & (pl.col("closed_on").is_null() | (pl.col("local_date") <= pl.col("closed_on")))
            )
            .select(key)
            .unique()
            .with_columns(on_hold=pl.lit(True))
        )
        days = days.join(covered, on=key, how="left").with_columns(
            on_hold=pl.col("on_hold").fill_null(False)
        )
    count = pl.col("sessions")
    flag = (
        pl.when(~pl.col("dosage_checked") | pl.col("on_hold"))
        .then(None)
        .when(count < pl.col("min_sessions_per_day"))
        .then(pl.lit(DayFlag.UNDER_SESSIONS.value, DAY_FLAG))
        .when(count > pl.col("max_sessions_per_day"))
        .then(pl.lit(DayFlag.OVER_SESSIONS.value, DAY_FLAG))
    )
    return days.with_columns(day_flag=flag.cast(DAY_FLAG)).select(
        *key, "sessions", "dosage_checked", "on_hold", "day_flag"
    )


def day_counts(days: pl.LazyFrame, holds: pl.LazyFrame) -> pl.LazyFrame:
    """Per patient and protocol of `days` (`daily_flags` rows): the days judged with sessions
    (`judged`, `under`, `over`: not on hold) and `skipped`, the days from its first session
    to its latest (`domain.adherence.active_days`) with no session and no hold covering them.
    Skipped days are counted without listing them: the span, less the days with sessions,
    less the session-free days the holds cover (their union, clipped to the span)."""
    pair = ["patient_id", "protocol"]
    free = ~pl.col("on_hold")
    flag = pl.col("day_flag")
    spans = days.group_by(pair).agg(
        first=pl.col("local_date").min(),
        last=pl.col("local_date").max(),
        session_days=pl.len(),
        held_session_days=pl.col("on_hold").sum(),
        judged=free.sum(),
        under=(free & (flag == DayFlag.UNDER_SESSIONS.value)).sum(),
        over=(free & (flag == DayFlag.OVER_SESSIONS.value)).sum(),
    )
    start = pl.max_horizontal("since", "first")
    end = pl.min_horizontal(pl.col("closed_on").fill_null(pl.col("last")), "last")
    covered = (
        holds.select(*pair, "since", "closed_on")
        .join(spans.select(*pair, "first", "last"), on=pair)
        .select(*pair, start=start.cast(pl.Int32), end=end.cast(pl.Int32))
        .filter(pl.col("start") <= pl.col("end"))
        .sort(*pair, "start")
        # The union of a pair's intervals: each adds the days past the furthest end before it.
        .with_columns(reach=pl.col("end").cum_max().shift(1).over(pair))
        .select(
            *pair,
            covered=(
                pl.col("end")
                - pl.max_horizontal("start", pl.col("reach").fill_null(-(1 << 30)) + 1)
                + 1
            ).clip(lower_bound=0),
        )
        .group_by(pair)
        .agg(covered=pl.col("covered").sum())
    )
    span = (pl.col("last") - pl.col("first")).dt.total_days() + 1
    idle_held = pl.col("covered").fill_null(0) - pl.col("held_session_days")
    return spans.join(covered, on=pair, how="left").select(
        *pair,
        *(pl.col(c).cast(pl.Int64) for c in ("judged", "under", "over")),
        skipped=(span - pl.col("session_days") - idle_held).cast(pl.Int64),
    )


_DAY_BITS: Final = 32
_OPEN: Final = (1 << 31) - 1  # the end of a hold still open: after every day


def _pair_day(day: pl.Expr) -> pl.Expr:
    """(patient, protocol, day) as one Int128 in that order (patient and protocol must be
    integer-backed: Enums): 32 bits each, the day offset to be non-negative."""
    patient = pl.col("patient_id").to_physical().cast(pl.Int128)
    protocol = pl.col("protocol").to_physical().cast(pl.Int128)
    offset_day = day.cast(pl.Int32).cast(pl.Int128) + (1 << (_DAY_BITS - 1))
    return (patient * (1 << _DAY_BITS) + protocol) * (1 << _DAY_BITS) + offset_day


def _with_cover(days: pl.LazyFrame, held: pl.LazyFrame) -> pl.LazyFrame:
    """`days` with `on_hold`, without pairing every day with every hold of its protocol (3M
    rows for 1.1M days here): a day is covered iff the latest end among the holds of its
    patient and protocol opened on or before it reaches it. So the holds, one row per
    (patient, protocol, since) with that running maximum of their ends, are found by one
    backward as-of join on (patient, protocol, day) packed in one key."""
    end = pl.col("closed_on").cast(pl.Int32).fill_null(_OPEN)
    pair = pl.col("_key") // (1 << _DAY_BITS)
    reach = (
        held.group_by("patient_id", "protocol", "since")
        .agg(_end=end.max())
        .select(_key=_pair_day(pl.col("since")), _end="_end")
        .sort("_key")
        .with_columns(_reach=pl.col("_end").cum_max().over(pair), _held=pl.col("_key"))
        .select("_key", "_held", "_reach")
    )
    day = pl.col("local_date").cast(pl.Int32)
    return (
        days.with_columns(_key=_pair_day(pl.col("local_date")))
        .sort("_key")
        .join_asof(reach, on="_key", strategy="backward", check_sortedness=False)
        .with_columns(
            on_hold=(
                (pl.col("_held") // (1 << _DAY_BITS) == pair) & (pl.col("_reach") >= day)
            ).fill_null(False)
        )
        .drop("_key", "_held", "_reach")
    )


def _patient_instant(instant: pl.Expr) -> pl.Expr:
    """(patient, instant) as one Int128, ordered by patient then instant: one sort key and one
    as-of key instead of a grouped as-of join (patient_id must be integer-backed: an Enum)."""
    patient = pl.col("patient_id").to_physical().cast(pl.Int128)
    return patient * (1 << 64) + instant.dt.epoch("us").cast(pl.Int128)


def missing_extension(flexion: pl.LazyFrame, extension: pl.LazyFrame) -> pl.LazyFrame:
    """Adds `extension_missing` to flexion-category sessions.

    Followed means an extension-in-lying session of the same patient starts at or after the
    session's end (its start when no end was recorded) and at most `extension_within_minutes`
    later, both ends inclusive; instants are compared, so offsets do not matter. One
    extension session may follow several flexion sessions.
    """
    end = pl.coalesce("ended_at", "started_at")
    within = pl.duration(minutes=pl.col("extension_within_minutes"))
    if isinstance(flexion.collect_schema()["patient_id"], pl.Enum):
        # The first extension start at or after the end, across all patients at once; it
        # belongs to this patient only if it is within the window (which also bounds it).
        # Sorted by the key alone: the extension side is only its keys (a sort of the values,
        # not of rows), and the flexion side carries its window, not its instants.
        columns = [c for c in flexion.collect_schema() if c not in ("started_at", "ended_at")]
        window = within.dt.total_microseconds().cast(pl.Int128)
        ends = flexion.select(*columns, _key=_patient_instant(end), _window=window).sort("_key")
        starts = extension.select(_key=_patient_instant(pl.col("started_at")).sort()).with_columns(
            _next=pl.col("_key")
        )
        joined = ends.join_asof(starts, on="_key", strategy="forward", check_sortedness=False)
        return joined.with_columns(
            extension_missing=pl.col("_next").is_null()
            | (pl.col("_next") - pl.col("_key") > pl.col("_window"))
        ).drop("_key", "_next", "_window")
    ends = flexion.with_columns(_end=end).sort("patient_id", "_end")
    starts = (
        extension.select("patient_id", _next=pl.col("started_at"))
        .with_columns(_end=pl.col("_next"))
        .sort("patient_id", "_end")
    )
    return (
        ends.join_asof(
            starts, on="_end", by="patient_id", strategy="forward", check_sortedness=False
        )
        .with_columns(
            extension_missing=pl.col("_next").is_null()
            | (pl.col("_next") > pl.col("_end") + within)
        )
        .drop("_end", "_next")
    )


def form_fault_counts(repetitions: pl.LazyFrame) -> pl.LazyFrame:
    """Per session (as the repetitions name it: `session_key` or `procedure_id`) and fault
    code: the repetitions showing it (a code repeated within one repetition counts once)."""
    session = session_id(repetitions)
    return (
        repetitions.filter(pl.col("form_faults").is_not_null())
        .select(
            session,
            "repetition_index",
            fault=pl.col("form_faults").str.split(" ").list.unique(),
        )
        .explode("fault")
        .filter(pl.col("fault") != "")
        .group_by(session, "fault")
        .agg(reps=pl.len().cast(pl.Int32))
    )
