"""The `reptrend` command: serve, migrate, demo, reindex, export, import, report."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date

import uvicorn

from api.logging_setup import configure_logging
from api.settings import Settings
from cli.catalog import seed_catalog
from cli.export_import import add_export_import_parsers, run_export, run_import
from cli.report import add_report_parser, run_report
from store.database import create_engine
from store.errors import SchemaNotMigrated
from store.reindex import fill_session_figures, reindex, tenants
from store.schema import require_migrated, upgrade
from store.search_params import SUPPORTED_TYPES

log = logging.getLogger("reptrend.cli")


def _serve(settings: Settings, host: str, port: int, workers: int) -> int:
    engine = create_engine(settings.database_url)
    try:
        require_migrated(engine)
        # The protocol catalog (PlanDefinitions, ActivityDefinitions, CodeSystems) is FHIR data
        # like any other; make sure the default clinic has it before the first request.
        seed_catalog(engine, settings.default_tenant)
    except SchemaNotMigrated as error:
        print(f"reptrend: refusing to start: {error.diagnostics}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        # A worker imports the whole app before it answers the supervisor's health check:
        # 5-10 s on two busy cores, past uvicorn's default of 5 s, which killed and respawned
        # workers forever.
        timeout_worker_healthcheck=120,
    )
    return 0


def _migrate(settings: Settings) -> int:
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
    upgrade(settings.database_url)
    log.info("database migrated to head")
    return 0


def _demo(settings: Settings, host: str, port: int, anchor: date) -> int:
    from cli.demo_loader import database_is_empty, load_demo

    _migrate(settings)
    engine = create_engine(settings.database_url)
    try:
        if database_is_empty(engine, settings.default_tenant):
            log.info("loading demo data", extra={"as_of": anchor.isoformat()})
            written = load_demo(engine, settings.default_tenant, anchor)
            log.info("demo data loaded", extra={"resources": written})
        else:
            log.info("database already holds data: demo data not loaded")
    finally:
        engine.dispose()
    return _serve(settings, host, port, workers=1)


def _reindex(
    settings: Settings, tenant: str | None, types: list[str] | None, session_figures: bool
) -> int:
    unknown = sorted(set(types or ()) - set(SUPPORTED_TYPES))
    if unknown:
        print(f"reptrend reindex: unknown resource type {unknown[0]}", file=sys.stderr)
        return 2
    engine = create_engine(settings.database_url)
    try:
        require_migrated(engine)
        for name in [tenant] if tenant else tenants(engine):
            if session_figures:
                count = fill_session_figures(engine, name)
                print(f"{name}: figures of {count} sessions filled")
                continue
            count = reindex(engine, name, types or SUPPORTED_TYPES)
            print(f"{name}: {count} resources reindexed")
    except SchemaNotMigrated as error:
        print(f"reptrend reindex: {error.diagnostics}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reptrend", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service (the database must be migrated)")
    demo = commands.add_parser("demo", help="migrate, load the demo data if empty, and serve")
    for sub in (serve, demo):
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    demo.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=None,
        help="the day the demo data is built around (default: today)",
    )
    commands.add_parser("migrate", help="upgrade the database schema to the latest revision")
    reindex = commands.add_parser(
        "reindex", help="rebuild the search index from the stored resources (after an upgrade)"
    )
    reindex.add_argument("--tenant", help="only this tenant (default: every tenant)")
    reindex.add_argument("--type", action="append", dest="types", help="only this type (repeat)")
    reindex.add_argument(
        "--session-figures",
        action="store_true",
        help="instead: fill the figures of sessions stored before migration 0006",
    )
    add_export_import_parsers(commands)
    add_report_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level)
    if args.command == "serve":
        return _serve(settings, args.host, args.port, args.workers)
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "reindex":
        return _reindex(settings, args.tenant, args.types, args.session_figures)
    if args.command == "export":
        return run_export(args)
    if args.command == "import":
        return run_import(args)
    if args.command == "report":
        return run_report(args)
    return _demo(settings, args.host, args.port, args.as_of or date.today())


if __name__ == "__main__":
    sys.exit(main())
