"""The contract: the figures the store writes with a session (`domain.session_figures`) are
the ones the report would compute from the session's repetitions (`analytics.classification`).

Each example is a handful of sessions with any repetitions the tables can hold: indices with
gaps, duplicates (one repetition posted twice), below 1 or beyond 16, more than 16 of them,
pain off the 0-10 scale or missing, distances missing, equal, NaN, form faults (empty text
too) and peripheral symptoms, rows stored in any order.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import classification
from analytics.facts import REPETITION_SCHEMA, STORED_FIGURE_SCHEMA
from domain.session_figures import RepetitionRow, pack_session, signed_64

PARITY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _rows(distances: list[float | None]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(
        st.one_of(st.integers(1, 6), st.integers(-1, 20)),  # repetition index
        st.one_of(st.integers(0, 10), st.none(), st.integers(-3, 14)),  # pain
        st.sampled_from(distances),
        st.sampled_from([None, None, "", "head-raised", "neck-strain head-raised"]),  # faults
        st.booleans(),  # peripheral symptoms
    )


@st.composite
def regular_rows(draw: st.DrawFn, distances: list[float | None]) -> list[tuple[Any, ...]]:
    """Indices 1..n, each once (the usual session), in any order."""
    n = draw(st.integers(1, 17))
    rated = st.integers(0, 10)
    rows = [(k, draw(rated), *draw(_rows(distances))[2:]) for k in range(1, n + 1)]
    return draw(st.permutations(rows))


_DISTANCES: list[float | None] = [None, 20.0, 24.5, 25.0, 30.0]
# The store writes JSON numbers, never NaN; the packing still orders it as polars does.
_WITH_NAN: list[float | None] = [*_DISTANCES, math.nan]


def _sessions(distances: list[float | None]) -> st.SearchStrategy[list[list[tuple[Any, ...]]]]:
    session = st.one_of(regular_rows(distances), st.lists(_rows(distances), max_size=18))
    return st.lists(session, min_size=1, max_size=6)


def _frame(sessions: list[list[tuple[Any, ...]]]) -> pl.DataFrame:
    rows = [(f"s{k}", *row) for k, reps in enumerate(sessions) for row in reps]
    return pl.DataFrame(rows, schema=REPETITION_SCHEMA, orient="row")


def _packed(rows: list[tuple[Any, ...]]) -> Any:
    return pack_session(RepetitionRow(i, p, d, bool(f), s) for i, p, d, f, s in rows)


def _by_index(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=lambda row: row[0])


@PARITY
@given(_sessions(_WITH_NAN))
def test_the_stored_packing_is_the_analytics_packing_of_the_rows_in_index_order(
    sessions: list[list[tuple[Any, ...]]],
) -> None:
    rated = _frame([_by_index(s) for s in sessions]).filter(pl.col("pain").is_between(0, 10))
    packed = {
        row["procedure_id"]: row
        for row in classification.packed_sessions(
            rated.lazy().with_columns(session_key=pl.col("procedure_id")), exact=True
        )
        .collect()
        .rename({"session_key": "procedure_id"})
        .iter_rows(named=True)
    }
    for k, rows in enumerate(sessions):
        mine = _packed(rows)
        theirs = packed.get(f"s{k}")
        assert mine.rated == (0 if theirs is None else theirs["n"])
        if theirs is None or not theirs["regular"]:
            assert not mine.regular
            continue
        assert mine.regular
        assert (mine.code, mine.counts) == (theirs["code"], theirs["counts"])


@PARITY
@given(_sessions(_DISTANCES))
def test_figures_from_stored_packing_equal_figures_from_the_rows_in_any_order(
    sessions: list[list[tuple[Any, ...]]],
) -> None:
    # As a database gives them: the regular sessions' figures stored, the others' rows.
    stored, unstored = [], []
    for k, rows in enumerate(sessions):
        mine = _packed(rows)
        if mine.regular:
            # Through the signed bigint the column holds, and back.
            code = signed_64(mine.code) % (1 << 64)  # type: ignore[arg-type]
            stored.append((f"s{k}", mine.rated, code, mine.counts))
        else:
            unstored.append(k)
    everything = _frame(sessions)
    rest = everything.filter(pl.col("procedure_id").is_in([f"s{k}" for k in unstored]))
    from_rows = classification.session_figures(everything.lazy(), exact=True)
    from_stored = classification.session_figures(
        rest.lazy(),
        exact=True,
        stored=pl.DataFrame(stored, schema=STORED_FIGURE_SCHEMA, orient="row").lazy(),
    )
    stored_keys = [key for key, *_ in stored]
    is_stored = pl.col("session_key").is_in(stored_keys)
    mine = from_stored.filter(is_stored).sort("session_key")
    theirs = from_rows.filter(is_stored).sort("session_key")
    assert mine["session_key"].to_list() == sorted(stored_keys)
    # Rows out of order take the general path, which packs no pain code (the pain curve then
    # reads those rows); every other figure is the same.
    assert mine.drop("code").equals(theirs.drop("code"))
    packed = theirs["code"].is_not_null()
    assert mine.filter(packed)["code"].equals(theirs.filter(packed)["code"])
    # The other sessions come from their rows, as without stored figures, whatever rows
    # surround them (of two repetitions with one index, the general path keeps the same one).
    assert (
        from_stored.filter(~is_stored)
        .sort("session_key")
        .equals(from_rows.filter(~is_stored).sort("session_key"))
    )
