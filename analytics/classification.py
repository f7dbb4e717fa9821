"""Pain response of every session at once (CLINICAL_RULES section 3), vectorised.

Matches `domain.pain_response.classify_session` exactly (a hypothesis parity test holds it to
that): same class, slope (same integers, one correctly rounded division), first, last, peak,
rises, falls and `progressing`.

How the repetitions of a session are put in order, and why not by sorting 10M rows:

Measured on this 2-core machine (polars 2.1, 10M repetitions, uuid procedure ids), sorting the
repetition rows by (procedure_id, repetition_index) takes 4-9 s and `diff().over(...)` after it
more still, while one hash `group_by` with a handful of sums takes under a second. So the fast
path needs no order, and as few aggregations as possible:

- Each rated repetition adds `pain * 16**(index-1)` to a per-session 64-bit `code`: with indices
  1..n (n <= 16) every 4-bit slot holds one repetition's pain (0..10 < 16), in index order,
  whatever order the rows arrived in. A second sum of `2**(index-1)` proves the indices are
  exactly 1..n, each once (a multiset of n powers of two sums to 2**n - 1 only when they are
  the n distinct powers). First, last, peak, rises, falls and the exact slope sums are then
  read from the slots with a fixed set of column expressions (16 slots, no loop over rows).
- Knee-to-chest distances are floats and cannot be packed; `progressing` compares each
  repetition with the previous row (a global shift masked at session boundaries, which is
  `diff().over(session)` without a second grouping). That is only right when a session's rows
  are contiguous and in index order, so the same group_by counts the session's order breaks
  (a new run of rows, or an index not above the previous one) and proves it per session.
- The small per-session counts (order breaks, missing distances, distances going up and
  down, repetitions with a form fault or peripheral symptoms) travel as 10-bit fields of one
  64-bit sum: with at most 16 repetitions none can overflow, and a session with more takes
  the general path anyway.
- Every session the fast path cannot prove (indices with gaps or duplicates, more than 16
  repetitions, distances in rows out of order) goes to the general path: its rows are sorted
  once by (procedure_id, repetition_index), duplicate indices are resolved (see
  `ordered_repetitions`), and the figures are computed with masked shifts on the sorted rows.
  Data written by the service (one transaction per session) hardly ever needs it.

Sessions are grouped and joined by `session_key`. A source that numbers its sessions (the
star layout of fact files, `analytics.facts.KEYED_SESSION_SCHEMA`) gives it: repetitions
carry their session's number, never its uuid, and the number is exact. Otherwise it is a
64-bit hash of the procedure id: grouping 10M rows by it takes a third of the time of
grouping by the uuid text. A 32-bit check hash of the procedure id is summed per key
(`check_sum`); a session whose own check times its repetition count differs from the sum it
joined shares its key with another procedure id (`has_key_collision`), and the caller starts
again with the ids themselves as keys (`exact=True`). Results never depend on the hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import polars as pl

from analytics.facts import SESSION_KEY
from domain import session_figures as layout
from domain.codes import PAIN_MAX, PAIN_MIN
from domain.pain_response import MIN_RATED_REPETITIONS, PainResponse
from domain.protocols import StopRuleMode

PAIN_RESPONSE: Final = pl.Enum([r.value for r in PainResponse])
PACKED_SLOTS: Final = layout.PACKED_SLOTS  # 4 bits per repetition in a UInt64

_U64: Final = pl.UInt64
# Weights by repetition index 0..17 (indices are clipped): 16**(i-1) packs the pain, 2**(i-1)
# marks the index. Outside 1..16 the pain weight is 0 and the marker 2**20, which can never
# complete 2**n - 1 for n <= 16, so such a session always takes the general path.
_OUTSIDE: Final = 1 << 20
_PAIN_WEIGHT: Final = pl.Series([0] + [16**k for k in range(PACKED_SLOTS)] + [0], dtype=_U64)
_INDEX_MARK: Final = pl.Series(
    [_OUTSIDE] + [2**k for k in range(PACKED_SLOTS)] + [_OUTSIDE], dtype=_U64
)
# Per-session counts packed into one sum, 10 bits each (field k is worth 2**(10k)); the
# layout is `domain.session_figures`', which the store writes with each session.

_KEY_SEED: Final = 0x5E55_1011
_CHECK_SEED: Final = 0xC4EC_2022

FIGURE_SCHEMA: Final = pl.Schema(
    {
        "session_key": _U64,  # pl.String with exact keys, the source's dtype when numbered
        "check_sum": _U64,  # null when the source numbered its sessions
        "n": pl.Int32,  # rated repetitions
        "first": pl.Int8,
        "last": pl.Int8,
        "peak": pl.Int8,
        "low": pl.Int8,
        "rises": pl.Int32,
        "falls": pl.Int32,
        "peripheral": pl.Boolean,
        "slope": pl.Float64,  # None when n < 2
        "progressing": pl.Boolean,  # None unless every repetition recorded a distance
        "faulty_reps": pl.Int32,  # repetitions showing at least one form fault
        "code": _U64,  # pain per repetition packed by index; null on the general path
    }
)


def session_key(exact: bool = False) -> pl.Expr:
    """The column sessions are grouped and joined by: the procedure id's 64-bit hash, or
    the procedure id itself when `exact`."""
    procedure = pl.col("procedure_id")
    return (procedure if exact else procedure.hash(_KEY_SEED)).alias("session_key")


def numbered(frame: pl.LazyFrame) -> bool:
    """Whether the source numbered the sessions of `frame` (it has its own `session_key`)."""
    return SESSION_KEY in frame.collect_schema()


def keyed(frame: pl.LazyFrame, exact: bool = False) -> pl.LazyFrame:
    """`frame` (sessions or repetitions) with a `session_key`: the source's own, or one made
    from the procedure id."""
    return frame if numbered(frame) else frame.with_columns(session_key(exact))


def session_id(frame: pl.LazyFrame) -> str:
    """The column naming a row's session: the source's number, or the procedure id."""
    return SESSION_KEY if numbered(frame) else "procedure_id"


def _check() -> pl.Expr:
    """An independent 32-bit hash of the procedure id (sums of it cannot overflow)."""
    return pl.col("procedure_id").hash(_CHECK_SEED) % (1 << 32)


def _field(flag: pl.Expr, field: int) -> pl.Expr:
    # One select per row rather than a cast and a multiplication (a fifth less time on 10M
    # rows here); a null flag counts as false.
    return (
        pl.when(flag)
        .then(pl.lit(1 << (layout.COUNT_BITS * field), _U64))
        .otherwise(pl.lit(0, _U64))
    )


def _count(field: int) -> pl.Expr:
    return (
        (pl.col("counts") // (1 << (layout.COUNT_BITS * field))) % (1 << layout.COUNT_BITS)
    ).cast(pl.Int32)


def _has_fault() -> pl.Expr:
    return pl.col("form_faults").str.len_bytes() > 0


def _packed_rows(repetitions: pl.LazyFrame, exact: bool) -> pl.LazyFrame:
    """One row per repetition: its session key, the shares of the packed sums it adds (its
    pain in its index's slot, its index's mark, its counts) and, for hashed keys, the check."""
    index = pl.col("repetition_index")
    slot = index.clip(0, PACKED_SLOTS + 1)
    key = pl.col("session_key")
    same = pl.col("_same")
    distance = pl.col("distance_cm")
    previous = distance.shift(1)
    check = not numbered(repetitions)  # a number the source gave cannot collide
    return (
        keyed(repetitions, exact)
        .with_columns(_same=(key == key.shift(1)).fill_null(False))
        .select(
            "session_key",
            *([_check().alias("_check")] if check else []),
            _code=pl.col("pain").cast(_U64) * pl.lit(_PAIN_WEIGHT).gather(slot),
            _mark=pl.lit(_INDEX_MARK).gather(slot),
            _counts=_field(~same | (index <= index.shift(1)), layout.BREAKS)
            + _field(distance.is_null(), layout.NO_DISTANCE)
            + _field(same & (distance > previous), layout.DISTANCE_UP)
            + _field(same & (distance < previous), layout.DISTANCE_DOWN)
            + _field(_has_fault(), layout.FAULTY)
            + _field(pl.col("peripheral_symptoms"), layout.PERIPHERAL),
        )
    )


def _with_regular(packed: pl.LazyFrame) -> pl.LazyFrame:
    n = pl.col("n")
    return packed.with_columns(
        regular=(n <= PACKED_SLOTS)
        & (pl.col("mark") == pl.lit(2, _U64).pow(n.cast(_U64)) - 1)
        # Distances are read in row order: then the rows must be one run, in order.
        & ((_count(layout.NO_DISTANCE) == n) | (_count(layout.BREAKS) == 1))
    )


def packed_sessions(repetitions: pl.LazyFrame, exact: bool = False) -> pl.LazyFrame:
    """One row per session key: n, the packed pain `code`, the index `mark`, `check_sum` and
    the packed `counts`; `regular` says whether the fast path's figures can be trusted."""
    check = not numbered(repetitions)
    packed = (
        _packed_rows(repetitions, exact)
        .group_by("session_key")
        .agg(
            n=pl.len().cast(pl.Int32),
            check_sum=pl.col("_check").sum() if check else pl.lit(None, _U64),
            code=pl.col("_code").sum(),
            mark=pl.col("_mark").sum(),
            counts=pl.col("_counts").sum(),
        )
    )
    return _with_regular(packed)


def _packed_runs(repetitions: pl.LazyFrame) -> pl.LazyFrame:
    """`packed_sessions` of numbered repetitions stored one session after another (each
    session's rows together, sessions in ascending number), without grouping: each sum is a
    difference of running sums taken at the last row of each run of equal numbers (64-bit
    sums wrap, so differences are exact). Rows in session order, one per run: a number that
    is not strictly above the one before proves the rows were not in that order, and then the
    result must not be used (`session_figures` checks)."""
    key = pl.col("session_key")
    sums = ("_code", "_mark", "_counts")
    ends = (
        _packed_rows(repetitions, exact=False)
        .with_columns(pl.col(sums).cum_sum(), _row=pl.int_range(pl.len(), dtype=pl.Int64))
        .filter((key != key.shift(-1)).fill_null(True))
    )

    def own(column: str, before: int = 0) -> pl.Expr:
        return pl.col(column) - pl.col(column).shift(1, fill_value=before)

    packed = ends.select(
        "session_key",
        n=own("_row", -1).cast(pl.Int32),
        check_sum=pl.lit(None, _U64),
        code=own("_code"),
        mark=own("_mark"),
        counts=own("_counts"),
    )
    return _with_regular(packed)


def _in_session_order(packed: pl.DataFrame) -> bool:
    """Whether `_packed_runs` met every session in one run: numbers strictly ascending."""
    key = pl.col("session_key")
    return bool(packed.select((key > key.shift(1)).fill_null(True).all()).item())


def _slot(k: int) -> pl.Expr:
    """Pain of repetition k (1-based) from the packed code; 0 beyond the session's end."""
    return ((pl.col("code") // (1 << (4 * (k - 1)))) % 16).cast(pl.Int16)


def _progressing(n: pl.Expr, missing: pl.Expr, ups: pl.Expr, downs: pl.Expr) -> pl.Expr:
    """Knees at least as close every repetition and closer at the end than at the start
    (for a sequence that never goes up, the same as going down at least once); None unless
    every repetition recorded a distance."""
    return pl.when((n >= 1) & (missing == 0)).then((ups == 0) & (downs >= 1)).otherwise(None)


def figures_from_packed(packed: pl.LazyFrame) -> pl.LazyFrame:
    """Section 3 figures of the `regular` sessions of `packed_sessions`.

    The pain figures depend on (n, code) alone, and sessions share few of those (21,019 among
    1.7M sessions in the benchmark): they are unpacked once per distinct pair and joined
    back, a third of the time of unpacking 16 slots for every session.
    """
    counted = counted_figures(packed)
    return counted.join(pain_figures(counted), on=["n", "code"], how="left").select(
        list(FIGURE_SCHEMA)
    )


def counted_figures(packed: pl.LazyFrame) -> pl.LazyFrame:
    """The figures of the `regular` sessions of `packed_sessions` that their packed counts
    give (n, code, peripheral, progressing, faulty repetitions), in the rows' order; the
    rest depend on (n, code) alone (`pain_figures`)."""
    return packed.filter("regular").select(
        "session_key",
        "check_sum",
        "n",
        peripheral=_count(layout.PERIPHERAL) > 0,
        progressing=_progressing(
            pl.col("n"),
            _count(layout.NO_DISTANCE),
            _count(layout.DISTANCE_UP),
            _count(layout.DISTANCE_DOWN),
        ),
        faulty_reps=_count(layout.FAULTY),
        code="code",
    )


def pain_figures(counted: pl.LazyFrame) -> pl.LazyFrame:
    """First, last, peak, low, rises, falls and slope of each distinct (n, code) of
    `counted`."""
    return _pain_figures(counted.select("n", "code").unique())


def _pain_figures(codes: pl.LazyFrame) -> pl.LazyFrame:
    """First, last, peak, low, rises, falls and slope of each distinct (n, code)."""
    n = pl.col("n")
    slots = [_slot(k) for k in range(1, PACKED_SLOTS + 1)]
    steps = range(1, PACKED_SLOTS)  # step k compares repetition k+1 with repetition k
    sum_y = pl.sum_horizontal(slots)  # slots beyond n are 0
    sum_xy = pl.sum_horizontal([k * s for k, s in enumerate(slots, start=1)])
    n64 = n.cast(pl.Int64)
    sum_x = n64 * (n64 + 1) // 2
    sum_xx = n64 * (n64 + 1) * (2 * n64 + 1) // 6
    last = (pl.col("code") // pl.lit(16, _U64).pow(n.cast(_U64) - 1)) % 16
    return codes.select(
        "n",
        "code",
        first=slots[0].cast(pl.Int8),
        last=last.cast(pl.Int8),
        peak=pl.max_horizontal(slots).cast(pl.Int8),
        low=pl.min_horizontal([pl.when(n >= k).then(s) for k, s in enumerate(slots, 1)]).cast(
            pl.Int8
        ),
        # A rise needs repetition k+1 to exist: beyond n the slot is 0, which never rises.
        rises=pl.sum_horizontal([slots[k] > slots[k - 1] for k in steps]).cast(pl.Int32),
        falls=pl.sum_horizontal([(n > k) & (slots[k] < slots[k - 1]) for k in steps]).cast(
            pl.Int32
        ),
        slope=_slope(n64, sum_x, sum_xx, sum_y.cast(pl.Int64), sum_xy.cast(pl.Int64)),
    )


def _slope(n: pl.Expr, sum_x: pl.Expr, sum_xx: pl.Expr, sum_y: pl.Expr, sum_xy: pl.Expr) -> pl.Expr:
    """(n*Sxy - Sx*Sy) / (n*Sxx - Sx^2): exact integers, one correctly rounded division,
    the same bits as `domain.pain_response._slope`."""
    numerator = n * sum_xy - sum_x * sum_y
    denominator = n * sum_xx - sum_x * sum_x
    return (
        pl.when(n >= 2)
        .then(numerator.cast(pl.Float64) / denominator.cast(pl.Float64))
        .cast(pl.Float64)
    )


def _same_session(column: str) -> pl.Expr:
    """True when a row continues the session of the row before it (null-safe)."""
    session = pl.col(column)
    return (session == session.shift(1)).fill_null(False)


def ordered_repetitions(repetitions: pl.LazyFrame) -> pl.LazyFrame:
    """Rows sorted by session and repetition index, one row per index.

    Two rows with the same index in one session (a repetition posted twice, in two
    Observations) keep the worse report: higher pain, then peripheral symptoms, then a form
    fault, so the row kept never depends on the rows around it. The domain rejects such a
    session outright; a report over stored data must still count it.
    """
    session = session_id(repetitions)
    keys = [session, "repetition_index", "pain", "peripheral_symptoms", "distance_cm"]
    descending = [False, False, True, True, False]
    if "form_faults" in repetitions.collect_schema():
        keys.append("form_faults")
        descending.append(True)
    return repetitions.sort(keys, descending=descending, nulls_last=True).filter(
        ~(
            _same_session(session)
            & (pl.col("repetition_index") == pl.col("repetition_index").shift(1))
        )
    )


def figures_from_ordered(ordered: pl.LazyFrame, exact: bool = False) -> pl.LazyFrame:
    """Section 3 figures from `ordered_repetitions` rows: the general path."""
    session = session_id(ordered)
    same = _same_session(session)
    pain = pl.col("pain").cast(pl.Int16)
    index = pl.col("repetition_index").cast(pl.Int64)
    distance = pl.col("distance_cm")
    rows = ordered.with_columns(
        _step=pl.when(same).then(pain - pain.shift(1)),
        _distance_step=pl.when(same).then(distance - distance.shift(1)),
    )
    grouped = rows.group_by(session).agg(
        n=pl.len().cast(pl.Int32),
        first=pl.col("pain").first(),
        last=pl.col("pain").last(),
        peak=pl.col("pain").max(),
        low=pl.col("pain").min(),
        rises=(pl.col("_step") > 0).sum().cast(pl.Int32),
        falls=(pl.col("_step") < 0).sum().cast(pl.Int32),
        peripheral=pl.col("peripheral_symptoms").fill_null(False).any(),
        sum_x=index.sum(),
        sum_xx=(index * index).sum(),
        sum_y=pain.cast(pl.Int64).sum(),
        sum_xy=(index * pain.cast(pl.Int64)).sum(),
        missing=distance.is_null().sum(),
        ups=(pl.col("_distance_step") > 0).sum(),
        downs=(pl.col("_distance_step") < 0).sum(),
        faulty_reps=_has_fault().sum().cast(pl.Int32),
    )
    n = pl.col("n")
    n64 = n.cast(pl.Int64)
    numbered_rows = session == SESSION_KEY
    return grouped.select(
        SESSION_KEY if numbered_rows else session_key(exact),
        check_sum=pl.lit(None, _U64) if numbered_rows else _check() * n.cast(_U64),
        n="n",
        first=pl.col("first").cast(pl.Int8),
        last=pl.col("last").cast(pl.Int8),
        peak=pl.col("peak").cast(pl.Int8),
        low=pl.col("low").cast(pl.Int8),
        rises="rises",
        falls="falls",
        peripheral="peripheral",
        slope=_slope(n64, pl.col("sum_x"), pl.col("sum_xx"), pl.col("sum_y"), pl.col("sum_xy")),
        progressing=_progressing(n, pl.col("missing"), pl.col("ups"), pl.col("downs")),
        faulty_reps=pl.col("faulty_reps").fill_null(0),
        code=pl.lit(None, _U64),
    )


def stored_packed(stored: pl.LazyFrame, exact: bool = False) -> pl.LazyFrame:
    """`packed_sessions` rows from figures a source stored with its sessions
    (`analytics.facts.STORED_FIGURE_SCHEMA`): the same n, code and counts, always regular."""
    check = not numbered(stored)
    n = pl.col("n")
    return keyed(stored, exact).select(
        "session_key",
        n=n,
        check_sum=_check() * n.cast(_U64) if check else pl.lit(None, _U64),
        code="code",
        mark=pl.lit(2, _U64).pow(n.cast(_U64)) - 1,
        counts="counts",
        regular=pl.lit(True),
    )


@dataclass(frozen=True, slots=True)
class Figures:
    """Every session's figures, before they are put in one frame: the packed rows, whether
    they are in session order (one row per session number, ascending, flagged sorted: the
    star layout read in runs), and the figures of the sessions off the fast path."""

    packed: pl.DataFrame  # `packed_sessions` rows
    in_order: bool
    general: pl.DataFrame | None  # FIGURE_SCHEMA, `figures_from_ordered`; None when none

    def frame(self) -> pl.DataFrame:
        """One frame of FIGURE_SCHEMA: the fast path's figures and the general path's."""
        fast = figures_from_packed(self.packed.lazy()).collect()
        if self.general is None:
            return fast
        return pl.concat([fast, self.general.cast(dict(fast.schema))], how="vertical")  # type: ignore[arg-type]


def session_figures(
    repetitions: pl.LazyFrame, exact: bool = False, stored: pl.LazyFrame | None = None
) -> pl.DataFrame:
    """Figures of every session with rated repetitions: the fast path, and the general path
    for the sessions it cannot prove. Collects (the report reads the result many times).

    Repetitions with a pain off the 0-10 scale are not rated repetitions (the store refuses
    them; a file might hold them) and are left out. `stored`: the packed figures a source
    kept for sessions whose repetitions are not in `repetitions`.
    """
    return figures_and_faults(repetitions, exact, stored)[0].frame()


def figures_and_faults(
    repetitions: pl.LazyFrame,
    exact: bool = False,
    stored: pl.LazyFrame | None = None,
    faulty: pl.LazyFrame | None = None,
) -> tuple[Figures, pl.DataFrame | None]:
    """`session_figures` (as `Figures`), and `faulty` (a query over the same source, the
    rated rows with a form fault for the fault counts) collected with it, so the source is
    read once.

    Numbered repetitions (a star-layout source) are usually stored in session order: their
    sums are then taken over runs of rows (`_packed_runs`, about a third less CPU than
    grouping 10M rows), and grouped only when the runs prove they were not in that order.
    """
    rated = repetitions.filter(pl.col("pain").is_between(PAIN_MIN, PAIN_MAX))
    runs = numbered(rated) and stored is None
    packed_rows = _packed_runs(rated) if runs else packed_sessions(rated, exact)
    if stored is not None:
        packed_rows = pl.concat([stored_packed(stored, exact), packed_rows], how="vertical_relaxed")
    if faulty is None:
        packed, faults = packed_rows.collect(), None
    else:
        packed, faults = pl.collect_all([packed_rows, faulty])
    in_order = runs and _in_session_order(packed)
    if in_order:
        packed = packed.set_sorted("session_key")
    elif runs:
        packed = packed_sessions(rated, exact).collect()
    irregular = packed.filter(~pl.col("regular")).select("session_key")
    if irregular.height == 0:
        return Figures(packed, in_order, None), faults
    slow = figures_from_ordered(
        ordered_repetitions(general_rows(rated, irregular, exact)), exact
    ).collect()
    return Figures(packed, in_order, slow), faults


def general_rows(
    repetitions: pl.LazyFrame, sessions: pl.DataFrame, exact: bool = False
) -> pl.LazyFrame:
    """The repetition rows of the sessions whose `session_key` is in `sessions`."""
    rows = keyed(repetitions, exact).join(
        sessions.lazy().select("session_key"), on="session_key", how="semi"
    )
    return rows if numbered(repetitions) else rows.drop("session_key")


def _response(response: PainResponse) -> pl.Expr:
    # Enum literals: the chosen class is a small code, never a string cast per session.
    return pl.lit(response.value, PAIN_RESPONSE)


def classify(sessions: pl.LazyFrame) -> pl.LazyFrame:
    """Adds `response` to sessions carrying their figures and protocol parameters.

    Sessions without a rated repetition have `n` null or 0 and are `insufficient`, like a
    session `classify_session` is given no repetition.
    """
    n = pl.col("n").fill_null(0)
    first, last, peak = pl.col("first"), pl.col("last"), pl.col("peak")
    net_rise = last.cast(pl.Int32) - first.cast(pl.Int32)
    mode = pl.col("stop_rule_mode")
    by_mode = (
        pl.when(mode == StopRuleMode.STRICT.value)
        .then(pl.col("rises") == n - 1)
        .when(mode == StopRuleMode.RISING.value)
        .then(
            (net_rise >= pl.col("worsening_min_rise"))
            & (pl.col("falls") == 0)
            & (pl.col("rises") >= pl.col("worsening_min_rises"))
        )
        .otherwise(
            (net_rise >= pl.col("worsening_min_rise"))
            & (pl.col("slope") >= pl.col("slope_threshold"))
        )
    )
    severe = pl.col("severe_pain").is_not_null() & (peak >= pl.col("severe_pain"))
    response = (
        pl.when(n < MIN_RATED_REPETITIONS)
        .then(_response(PainResponse.INSUFFICIENT))
        .when(pl.col("peripheral") | severe | by_mode)
        .then(_response(PainResponse.WORSENING))
        .when(peak == 0)
        .then(_response(PainResponse.PAIN_FREE))
        .when((first > 0) & (last <= peak - 1) & (last <= first))
        .then(_response(PainResponse.WEARS_OFF))
        .when(peak - pl.col("low") <= 1)
        .then(_response(PainResponse.NO_CHANGE))
        .otherwise(_response(PainResponse.FLUCTUATING))
    )
    return sessions.with_columns(
        n=n.cast(pl.Int32),
        rises=pl.col("rises").fill_null(0),
        falls=pl.col("falls").fill_null(0),
        faulty_reps=pl.col("faulty_reps").fill_null(0),
        response=response.cast(PAIN_RESPONSE),
    )


def assess_sessions(
    sessions: pl.LazyFrame, figures: pl.DataFrame, parameters: pl.DataFrame
) -> pl.LazyFrame:
    """Sessions with their protocol's parameters, figures, `session_key` and `response`.

    Sessions of a protocol the parameter table does not know are left out: no rule is
    defined for them. Check the result with `has_key_collision`.
    """
    with_parameters = sessions.join(parameters.lazy(), on="protocol", how="inner")
    if numbered(sessions):
        joined = with_parameters.join(figures.lazy(), on="session_key", how="left")
        return classify(joined.with_columns(key_collision=pl.lit(False)).drop("check_sum"))
    exact = figures.schema["session_key"] == pl.String
    joined = with_parameters.with_columns(session_key(exact), _own_check=_check()).join(
        figures.lazy(), on="session_key", how="left"
    )
    collided = pl.col("check_sum").is_not_null() & (
        pl.col("check_sum") != pl.col("_own_check") * pl.col("n").cast(_U64)
    )
    return classify(joined.with_columns(key_collision=collided).drop("_own_check", "check_sum"))


def assess_in_order(
    sessions: pl.DataFrame, figures: Figures, rules: Sequence[pl.Expr]
) -> pl.LazyFrame | None:
    """`assess_sessions` of numbered sessions whose figures are all on the fast path and in
    session order, as are the sessions (a star-layout source read in order): the figures
    join the sessions by merging two sorted key columns instead of a hash join of 1.7M
    rows, and the pain figures join after, per (n, code). `rules`: the parameter columns
    `classify` reads, as expressions (no join, so the sessions keep their order). None
    when that does not hold: then `assess_sessions`."""
    key = sessions[SESSION_KEY] if numbered(sessions.lazy()) else None
    if key is None or not figures.in_order or figures.general is not None:
        return None
    if not key.is_sorted():
        return None
    ordered = sessions.with_columns(key.set_sorted()).lazy()
    # Collected, so the engine sees both key columns sorted (a subset of sorted rows).
    found = counted_figures(figures.packed.lazy()).drop("check_sum").collect()
    counted = found.with_columns(found[SESSION_KEY].set_sorted()).lazy()
    joined = ordered.join(counted, on=SESSION_KEY, how="left").with_columns(rules)
    return classify(
        joined.join(pain_figures(counted), on=["n", "code"], how="left").with_columns(
            key_collision=pl.lit(False)
        )
    )


def has_key_collision(assessed: pl.DataFrame) -> bool:
    """Whether a session met the figures of another procedure id with the same key."""
    return bool(assessed["key_collision"].any())
