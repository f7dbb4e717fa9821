"""`reptrend export` (a cohort's patient compartments as NDJSON or Bundles) and
`reptrend import` (NDJSON and Bundle files through the API's write path, resumable)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from api.errors import outcome_for
from api.settings import Settings
from store.database import create_engine
from store.errors import ReptrendError
from store.export_writer import Selection, export_selection, fsync_directory
from store.importer import DEFAULT_BATCH_SIZE, Importer, Rejection, import_order
from store.patient_compartment import (
    COMPARTMENT_TYPES,
    PatientScope,
    everything_page,
    patient_ids,
)
from store.resource_store import utc_now
from store.schema import require_migrated
from store.unit_of_work import UnitOfWork

DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
DEFAULT_REPORT = Path("import-rejected.ndjson")
_PAGE = 1000


def add_export_import_parsers(subparsers: Any) -> None:
    """Add `export` and `import` to the `reptrend` command's subparsers."""
    export = subparsers.add_parser(
        "export", help="export a cohort's patient compartments as NDJSON files or Bundles"
    )
    cohort = export.add_mutually_exclusive_group(required=True)
    cohort.add_argument("--group", metavar="ID", help="the members of Group/ID")
    cohort.add_argument("--organization", metavar="ID", help="the patients Organization/ID manages")
    export.add_argument(
        "--format",
        choices=("ndjson", "bundle"),
        default="ndjson",
        help="ndjson: one file per type (split at --max-file-bytes); "
        "bundle: one collection Bundle per patient",
    )
    export.add_argument("--out", type=Path, required=True, metavar="DIR")
    export.add_argument("--max-file-bytes", type=int, default=DEFAULT_MAX_FILE_BYTES)

    load = subparsers.add_parser(
        "import", help="import NDJSON and Bundle files (resumable; rejected lines reported)"
    )
    load.add_argument("files", nargs="+", type=Path, metavar="FILE")
    load.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    load.add_argument(
        "--report",
        type=Path,
        default=DEFAULT_REPORT,
        help="rejected lines, one JSON object each (appended; default %(default)s)",
    )
    load.add_argument(
        "--restart", action="store_true", help="forget earlier progress on these files"
    )


def _engine(settings: Settings) -> Engine | None:
    engine = create_engine(settings.database_url)
    try:
        require_migrated(engine)
    except ReptrendError as error:
        print(f"reptrend: {error.diagnostics}", file=sys.stderr)
        engine.dispose()
        return None
    return engine


# --- export ------------------------------------------------------------------------------------


def run_export(args: argparse.Namespace) -> int:
    settings = Settings()
    engine = _engine(settings)
    if engine is None:
        return 2
    tenant = settings.default_tenant
    scope = (
        PatientScope.group(args.group)
        if args.group
        else PatientScope.organization(args.organization)
    )
    try:
        with UnitOfWork(engine, tenant) as uow:
            uow.resources.read(
                "Group" if args.group else "Organization", args.group or args.organization
            )
        args.out.mkdir(parents=True, exist_ok=True)
        if args.format == "bundle":
            written = _export_bundles(engine, tenant, scope, args.out)
        else:
            written = _export_ndjson(engine, tenant, scope, args.out, args.max_file_bytes)
    except ReptrendError as error:
        print(f"reptrend: {error.diagnostics}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"{written} resources written to {args.out}")
    return 0


def _export_ndjson(
    engine: Engine, tenant: str, scope: PatientScope, out: Path, max_bytes: int
) -> int:
    until = utc_now()
    total = 0
    for resource_type in COMPARTMENT_TYPES:
        selection = Selection(tenant=tenant, type=resource_type, until=until, scope=scope)
        for exported in export_selection(engine, selection, out, resource_type, max_bytes):
            print(f"{exported.name}\t{exported.count}")
            total += exported.count
    return total


def _export_bundles(engine: Engine, tenant: str, scope: PatientScope, out: Path) -> int:
    total = 0
    with UnitOfWork(engine, tenant) as uow:
        patients = patient_ids(uow.resources, scope)
    for patient_id in patients:
        entries: list[dict[str, Any]] = []
        with UnitOfWork(engine, tenant) as uow:
            after = None
            while True:
                page = everything_page(uow.resources, patient_id, count=_PAGE, after=after)
                entries.extend({"resource": r.body} for r in page.resources)
                if page.next is None:
                    break
                after = page.next
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        name = f"Patient-{patient_id}.json"
        temporary = out / f".{name}.partial"
        with temporary.open("wb") as handle:
            handle.write(orjson.dumps(bundle))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, out / name)
        print(f"{name}\t{len(entries)}")
        total += len(entries)
    fsync_directory(out)
    return total


# --- import ------------------------------------------------------------------------------------


def run_import(args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        print(f"reptrend: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    settings = Settings()
    engine = _engine(settings)
    if engine is None:
        return 2
    rejected = 0
    with args.report.open("wb" if args.restart else "ab") as report:

        def record(rejection: Rejection) -> None:
            line = {
                "file": rejection.source,
                "line": rejection.line,
                "where": rejection.where,
                "outcome": outcome_for(rejection.error),
            }
            report.write(orjson.dumps(line) + b"\n")
            report.flush()

        importer = Importer(
            engine, settings.default_tenant, batch_size=args.batch_size, on_reject=record
        )
        try:
            for path in import_order(args.files):
                result = importer.import_file(path, restart=args.restart)
                rejected += result.rejected
                print(
                    f"{path}: {result.written} written, {result.rejected} rejected, "
                    f"{result.skipped} already imported"
                )
        finally:
            engine.dispose()
    if rejected:
        print(f"{rejected} rejected: see {args.report}", file=sys.stderr)
        return 1
    return 0
