"""The frames every analytics source produces and every metric reads: names and dtypes.

A source (database or files, see `analytics.sources`) yields one `Facts` per tenant. Each frame
is lazy and has exactly the columns of its schema below, so the rules never guess a dtype.

- `sessions`: one row per exercise session (the `exercise_session` fact table).
- `repetitions`: one row per *rated* repetition (`session_fact` rows with a pain score).
  Repetitions name their session by `procedure_id` (`REPETITION_SCHEMA`), or, when the source
  numbers its sessions (a fact-file directory in the star layout, see `analytics.sources`), by
  `session_key` (`KEYED_REPETITION_SCHEMA`): then every session carries its own `session_key`
  (`KEYED_SESSION_SCHEMA`), unique per session, and no uuid text is hashed per repetition.
- `stored_figures`: the figures a database keeps with its sessions (migration 0006), one row
  per session: what `classification.packed_sessions` would compute from its repetitions
  (`n`, the packed pain `code` and `counts`), always a regular session's. A source that gives
  them leaves those sessions' repetitions out of `repetitions`, and gives every rated
  repetition with a form fault, of any session, in `faulty_repetitions`: the form-fault
  counts read their codes from there. Both None when the source keeps no figures (files).
- `pain_reports`: general pain reports (`pain_report`).
- `patients`: every patient of the tenant with its managing organization.
- `group_members`: Group id -> member Patient id.
- `prescriptions`: which protocol each patient was prescribed (ServiceRequest code) and when,
  so a patient who has not started yet still shows as `no-sessions` (`prescribed_as_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Final

import polars as pl

from domain.protocols import ProtocolParameters

UTC_INSTANT: Final = pl.Datetime("us", "UTC")

SESSION_SCHEMA: Final = pl.Schema(
    {
        "procedure_id": pl.String(),
        "patient_id": pl.String(),
        "protocol": pl.String(),
        "local_date": pl.Date(),
        "started_at": UTC_INSTANT,
        "ended_at": UTC_INSTANT,
    }
)
REPETITION_SCHEMA: Final = pl.Schema(
    {
        "procedure_id": pl.String(),
        "repetition_index": pl.Int32(),
        "pain": pl.Int8(),
        "distance_cm": pl.Float64(),
        "form_faults": pl.String(),  # codes separated by spaces, null when none
        "peripheral_symptoms": pl.Boolean(),
    }
)
# A session number the source assigned (the session's row in the source's sessions file).
SESSION_KEY: Final = "session_key"
SESSION_KEY_DTYPE: Final = pl.UInt32()
KEYED_SESSION_SCHEMA: Final = pl.Schema({**SESSION_SCHEMA, SESSION_KEY: SESSION_KEY_DTYPE})
KEYED_REPETITION_SCHEMA: Final = pl.Schema(
    {
        SESSION_KEY: SESSION_KEY_DTYPE,
        **{k: v for k, v in REPETITION_SCHEMA.items() if k != "procedure_id"},
    }
)
STORED_FIGURE_SCHEMA: Final = pl.Schema(
    {"procedure_id": pl.String(), "n": pl.Int32(), "code": pl.UInt64(), "counts": pl.UInt64()}
)
FAULTY_REPETITION_SCHEMA: Final = pl.Schema(
    {"procedure_id": pl.String(), "repetition_index": pl.Int32(), "form_faults": pl.String()}
)
PAIN_REPORT_SCHEMA: Final = pl.Schema(
    {"patient_id": pl.String(), "local_date": pl.Date(), "pain": pl.Int8()}
)
PATIENT_SCHEMA: Final = pl.Schema({"patient_id": pl.String(), "organization_id": pl.String()})
GROUP_MEMBER_SCHEMA: Final = pl.Schema({"group_id": pl.String(), "patient_id": pl.String()})
# `authored_on`: the day the prescription was written (ServiceRequest.authoredOn as
# written); null when it has none, and then it counts whatever the report's date.
PRESCRIPTION_SCHEMA: Final = pl.Schema(
    {"patient_id": pl.String(), "protocol": pl.String(), "authored_on": pl.Date()}
)


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the cohort report reads for one tenant."""

    sessions: pl.LazyFrame
    repetitions: pl.LazyFrame
    pain_reports: pl.LazyFrame
    patients: pl.LazyFrame
    group_members: pl.LazyFrame
    prescriptions: pl.LazyFrame
    # The tenant's own protocol parameters (clinic-edited PlanDefinitions) by exercise code;
    # codes not here use the built-in catalog.
    parameters: Mapping[str, ProtocolParameters] = field(default_factory=dict)
    # STORED_FIGURE_SCHEMA and FAULTY_REPETITION_SCHEMA, both or neither.
    stored_figures: pl.LazyFrame | None = None
    faulty_repetitions: pl.LazyFrame | None = None


def conform(frame: pl.LazyFrame | pl.DataFrame, schema: pl.Schema) -> pl.LazyFrame:
    """Exactly the schema's columns in its order and dtypes (missing nullable columns as null).

    Sources differ in what they store (SQLite keeps dates as text, a Parquet export may use
    wider integers); everything downstream sees one shape.
    """
    lazy = frame.lazy()
    present = lazy.collect_schema()
    columns = []
    for name, dtype in schema.items():
        if name not in present:
            columns.append(pl.lit(None, dtype).alias(name))
        elif present[name] == dtype:
            columns.append(pl.col(name))
        elif present[name] == pl.String and dtype == pl.Date:
            columns.append(pl.col(name).str.slice(0, 10).str.to_date("%Y-%m-%d").alias(name))
        elif present[name] == pl.String and isinstance(dtype, pl.Datetime):
            columns.append(_utc_text(name))
        elif isinstance(present[name], pl.Datetime) and isinstance(dtype, pl.Datetime):
            columns.append(_utc_instant(name, present[name]))
        else:
            columns.append(pl.col(name).cast(dtype))
    return lazy.select(columns)


def _utc_text(name: str) -> pl.Expr:
    # SQLite keeps UTC instants as naive text ("2026-03-01 07:00:00.000000"); files may carry
    # an explicit offset or "Z". Either way the instant is what counts.
    text = pl.col(name).str.replace(" ", "T").str.replace("Z$", "+00:00")
    has_offset = text.str.contains(r"[+-]\d{2}:\d{2}$")
    return (
        pl.when(has_offset)
        .then(text.str.to_datetime(time_unit="us", time_zone="UTC", strict=False))
        .otherwise((text + "+00:00").str.to_datetime(time_unit="us", time_zone="UTC", strict=False))
        .alias(name)
    )


def _utc_instant(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if getattr(dtype, "time_zone", None) is None:
        column = column.dt.replace_time_zone("UTC")
    return column.dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias(name)


def empty_facts() -> Facts:
    """A tenant with no data at all."""
    return Facts(
        sessions=pl.LazyFrame(schema=SESSION_SCHEMA),
        repetitions=pl.LazyFrame(schema=REPETITION_SCHEMA),
        pain_reports=pl.LazyFrame(schema=PAIN_REPORT_SCHEMA),
        patients=pl.LazyFrame(schema=PATIENT_SCHEMA),
        group_members=pl.LazyFrame(schema=GROUP_MEMBER_SCHEMA),
        prescriptions=pl.LazyFrame(schema=PRESCRIPTION_SCHEMA),
    )


def prescribed_as_of(prescriptions: pl.LazyFrame, as_of: date) -> pl.LazyFrame:
    """Each (patient_id, protocol) prescribed on or before `as_of`: a report as of a past day
    does not know of a prescription written later. One without `authoredOn` always counts."""
    authored = pl.col("authored_on")
    return (
        prescriptions.filter(authored.is_null() | (authored <= as_of))
        .select("patient_id", "protocol")
        .unique()
    )
