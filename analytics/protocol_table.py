"""Protocol parameters as a frame, so the vectorised rules read them per row.

Every number of CLINICAL_RULES is a per-protocol parameter (`domain.protocols`). Joining this
small table onto sessions by `protocol` lets one expression apply each protocol's own
parameters, e.g. a clinic that runs flexion-in-lying in `slope` mode and another protocol in
`rising` mode in the same cohort.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import polars as pl

from domain.protocols import CATALOG, Category, ProtocolParameters

PARAMETER_SCHEMA: Final = pl.Schema(
    {
        "protocol": pl.String,
        "category": pl.String,
        "stop_rule": pl.Boolean,
        "stop_rule_mode": pl.String,
        "worsening_min_rise": pl.Int32,
        "worsening_min_rises": pl.Int32,
        "slope_threshold": pl.Float64,
        "severe_pain": pl.Int32,
        "retry_min_days": pl.Int32,
        "retry_max_days": pl.Int32,
        "max_failed_retries": pl.Int32,
        "min_reps": pl.Int32,
        "max_reps": pl.Int32,
        "min_sessions_per_day": pl.Int32,
        "max_sessions_per_day": pl.Int32,
        "dosage_checked": pl.Boolean,
        "requires_extension_after": pl.Boolean,
        "extension_within_minutes": pl.Int32,
        "requires_readiness": pl.Boolean,
        "readiness_days": pl.Int32,
        "readiness_min_reported_days": pl.Int32,
        "readiness_max_pain": pl.Int32,
        "readiness_pain_free_share": pl.Float64,
    }
)

EXTENSION_PROTOCOLS: Final = frozenset(
    code for code, p in CATALOG.items() if p.category is Category.EXTENSION
)


def protocol_table(
    parameters: Mapping[str, ProtocolParameters] | None = None,
    categories: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """One row per protocol code; defaults to the built-in catalog.

    `parameters` overrides (or adds) protocols; `categories` gives the category of codes
    that are not in the catalog (default `flexion`, the category every exercise but the
    Cobra belongs to).
    """
    merged = {code: p.parameters for code, p in CATALOG.items()}
    merged.update(parameters or {})
    rows = []
    for code, p in merged.items():
        category = CATALOG[code].category.value if code in CATALOG else Category.FLEXION.value
        if categories and code in categories:
            category = categories[code]
        rows.append(
            {
                "protocol": code,
                "category": category,
                "stop_rule": p.stop_rule,
                "stop_rule_mode": str(p.stop_rule_mode),
                "worsening_min_rise": p.worsening_min_rise,
                "worsening_min_rises": p.worsening_min_rises,
                "slope_threshold": p.slope_threshold,
                "severe_pain": p.severe_pain,
                "retry_min_days": p.retry_min_days,
                "retry_max_days": p.retry_max_days,
                "max_failed_retries": p.max_failed_retries,
                "min_reps": p.min_reps,
                "max_reps": p.max_reps,
                "min_sessions_per_day": p.min_sessions_per_day,
                "max_sessions_per_day": p.max_sessions_per_day,
                "dosage_checked": p.dosage_checked,
                "requires_extension_after": p.requires_extension_after,
                "extension_within_minutes": p.extension_within_minutes,
                "requires_readiness": p.requires_readiness,
                "readiness_days": p.readiness_days,
                "readiness_min_reported_days": p.readiness_min_reported_days,
                "readiness_max_pain": p.readiness_max_pain,
                "readiness_pain_free_share": p.readiness_pain_free_share,
            }
        )
    return pl.DataFrame(rows, schema=PARAMETER_SCHEMA)
