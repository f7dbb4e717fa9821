"""Rebuilding the search index from the stored resources (`reptrend reindex`).

Needed when a release changes what is indexed (a migration that adds a column to a search
table, a search parameter added or taken away): the stored bodies are the source of truth.
Each page of resources is its own transaction, so a large database is reindexed in bounded
memory and an interrupted run can simply be started again.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store import tables
from store.search_params import SUPPORTED_TYPES
from store.unit_of_work import UnitOfWork

_RESOURCE = tables.Resource.__table__  # type: ignore[attr-defined]
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
