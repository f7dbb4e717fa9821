"""`reptrend report`: the cohort outcome report offline, from the database or from files.

    reptrend report --source sqlite:///var/reptrend.db --cohort organization=demo-clinic-1 \\
        --as-of 2026-11-21 --format html --output report.html

The numbers are those of `GET /analytics/cohorts/report` (both call
`analytics.report.cohort_report`); `--source` may also be a directory of fact files or of a
FHIR bulk export (NDJSON). Fact files may name each repetition's session by `procedure_id` or,
in the faster star layout, by `session`, the session's row in `exercise_session` (see
`analytics.sources`).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from analytics.cohorts import Cohort
from analytics.html import report_html
from analytics.report import cohort_report
from analytics.sources import read_source
from api.settings import Settings
from store.errors import ReptrendError

_COHORT_KEYS = ("group", "organization", "protocol", "start_month")


def parse_cohort(text: str) -> Cohort:
    """`all`, or `key=value` pairs joined by commas: group, organization, protocol,
    start_month (YYYY-MM)."""
    if text.strip() == "all":
        return Cohort()
    filters: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in _COHORT_KEYS or not value.strip():
            raise argparse.ArgumentTypeError(
                f"cohort {text!r}: use 'all' or key=value with key one of {', '.join(_COHORT_KEYS)}"
            )
        filters[key] = value.strip()
    try:
        return Cohort(**filters)
    except ReptrendError as error:
        raise argparse.ArgumentTypeError(error.diagnostics) from None


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="cohort outcome report (JSON or a self-contained HTML page)"
    )
    parser.add_argument(
        "--source", required=True, help="database URL, fact-file directory or FHIR NDJSON export"
    )
    parser.add_argument(
        "--cohort",
        type=parse_cohort,
        default=Cohort(),
        help="all (default) or e.g. organization=ID, group=ID, protocol=CODE, start_month=YYYY-MM",
    )
    parser.add_argument(
        "--as-of", type=date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)"
    )
    parser.add_argument("--format", choices=("json", "html"), default="json")
    parser.add_argument("--output", type=Path, default=None, help="file (default: stdout)")
    parser.add_argument(
        "--patients-csv", type=Path, default=None, help="also write the patient-level table"
    )
    parser.add_argument(
        "--tenant",
        default=None,
        help="the clinic, for database sources (default: REPTREND_DEFAULT_TENANT)",
    )
    return parser


def run_report(args: argparse.Namespace) -> int:
    as_of = args.as_of or date.today()
    tenant = args.tenant or Settings().default_tenant
    try:
        report = cohort_report(read_source(args.source, tenant), args.cohort, as_of)
    except ReptrendError as error:
        print(f"reptrend report: {error.diagnostics}", file=sys.stderr)
        return 2
    if args.format == "html":
        text = report_html(report.summary)
    else:
        text = json.dumps(report.summary, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    if args.patients_csv is not None:
        report.patients.write_csv(args.patients_csv)
    return 0
