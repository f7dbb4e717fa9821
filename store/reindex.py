"""Rebuilding the search index from the stored resources (`reptrend reindex`).

Needed when a release changes what is indexed (a migration that adds a column to a search
table, a search parameter added or taken away): the stored bodies are the source of truth.
Each page of resources is its own transaction, so a large database is reindexed in bounded
memory and an interrupted run can simply be started again.

`fill_session_figures` computes the figures `exercise_session` keeps for each session
(migration 0006) where they are missing: sessions stored before that migration. A page of
sessions per transaction, likewise.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store import tables
from store.fact_writer import refresh_figures
from store.search_params import SUPPORTED_TYPES
from store.unit_of_work import UnitOfWork

_RESOURCE = tables.Resource.__table__  # type: ignore[attr-defined]
_SESSION = tables.ExerciseSession.__table__  # type: ignore[attr-defined]
PAGE = 1000


def tenants(engine: Engine) -> list[str]:
    """Every tenant that has stored resources."""
    with engine.connect() as connection:
        return sorted(connection.execute(sa.select(_RESOURCE.c.tenant).distinct()).scalars())


def reindex(
    engine: Engine, tenant: str, resource_types: Iterable[str] = SUPPORTED_TYPES, page: int = PAGE
) -> int:
    """Rebuild the search rows of every live resource of `tenant` of these types; returns how
    many resources were reindexed."""
    done = 0
    for resource_type in sorted(resource_types):
        after = ""
        while True:
            with UnitOfWork(engine, tenant, write=True) as uow:
                ids = uow.resources.reindex_page(resource_type, after, page)
                uow.commit()
            if not ids:
                break
            done += len(ids)
            after = ids[-1]
    return done


def fill_session_figures(engine: Engine, tenant: str, page: int = PAGE) -> int:
    """Compute the figures of every session of `tenant` that has none (`rated_repetitions`
    NULL); returns how many sessions were filled."""
    done = 0
    after = ""
    while True:
        with UnitOfWork(engine, tenant, write=True) as uow:
            ids = list(
                uow.connection.execute(
                    sa.select(_SESSION.c.procedure_id)
                    .where(
                        _SESSION.c.tenant == tenant,
                        _SESSION.c.procedure_id > after,
                        _SESSION.c.rated_repetitions.is_(None),
                    )
                    .order_by(_SESSION.c.procedure_id)
                    .limit(page)
                ).scalars()
            )
            if not ids:
                return done
            refresh_figures(uow.connection, tenant, ids)
            uow.commit()
        done += len(ids)
        after = ids[-1]
