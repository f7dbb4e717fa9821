"""search strings are folded by accent as well as by case

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

FHIR R4 string search matches "after both have been normalized by case and accent"; until
now `search_string.value` was only case-folded, so `family=muller` missed "Müller". The code
now folds with `store.string_folding.fold_string` (NFKD, combining diacritical marks dropped,
casefold). This revision refolds the stored rows from the text as written (`exact`, kept
since 0004), so no reindex is needed.

Only rows whose text is not plain ASCII can fold differently (for ASCII both folds are
`lower()`), so only those are read: a page at a time in primary-key order (keyset, so each
page starts where the last ended and memory stays one page), and only rows whose fold
changes are written. The fold is copied here, not imported, so this revision keeps doing
what it did when the code's fold changes again (that change gets a revision of its own).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from itertools import chain

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE = 1_000

_DIACRITICS: dict[int, None] = dict.fromkeys(
    chain(
        range(0x0300, 0x0370),
        range(0x1AB0, 0x1B00),
        range(0x1DC0, 0x1E00),
        range(0x20D0, 0x2100),
        range(0xFE20, 0xFE30),
    )
)


def _fold_by_case_and_accent(text: str) -> str:
    """store.string_folding.fold_string as of this revision."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKD", text).translate(_DIACRITICS).casefold()


def _fold_by_case(text: str) -> str:
    """The fold of revision 0007 and before."""
    return text.casefold()


_STRING = sa.table(
    "search_string",
    sa.column("tenant", sa.String()),
    sa.column("type", sa.String()),
    sa.column("resource_id", sa.String()),
    sa.column("ordinal", sa.Integer()),
    sa.column("value", sa.String()),
    sa.column("exact", sa.String()),
)
_KEY = (_STRING.c.tenant, _STRING.c.type, _STRING.c.resource_id, _STRING.c.ordinal)


def _not_ascii(connection: sa.Connection) -> sa.ColumnElement[bool]:
    """Text with a character outside ASCII: more bytes in UTF-8 than characters."""
    exact = _STRING.c.exact
    if connection.dialect.name == "postgresql":
        return sa.func.octet_length(exact) != sa.func.char_length(exact)
    return sa.func.length(sa.cast(exact, sa.LargeBinary())) != sa.func.length(exact)


def _refold(fold: Callable[[str], str]) -> None:
    connection = op.get_bind()
    page = (
        sa.select(*_KEY, _STRING.c.value, _STRING.c.exact)
        .where(_not_ascii(connection))
        .order_by(*_KEY)
        .limit(PAGE)
    )
    update = (
        sa.update(_STRING)
        .where(
            _STRING.c.tenant == sa.bindparam("k_tenant"),
            _STRING.c.type == sa.bindparam("k_type"),
            _STRING.c.resource_id == sa.bindparam("k_resource_id"),
            _STRING.c.ordinal == sa.bindparam("k_ordinal"),
        )
        .values(value=sa.bindparam("folded"))
    )
    after: tuple[object, ...] | None = None
    while True:
        query = page if after is None else page.where(sa.tuple_(*_KEY) > sa.tuple_(*after))
        rows = connection.execute(query).all()
        if not rows:
            return
        changed = [
            {
                "k_tenant": tenant,
                "k_type": type_,
                "k_resource_id": resource_id,
                "k_ordinal": ordinal,
                "folded": folded,
            }
            for tenant, type_, resource_id, ordinal, value, exact in rows
            if (folded := fold(exact)) != value
        ]
        if changed:
            connection.execute(update, changed)
        after = tuple(rows[-1][:4])


def upgrade() -> None:
    _refold(_fold_by_case_and_accent)


def downgrade() -> None:
    _refold(_fold_by_case)
