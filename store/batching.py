"""Batch sizes for executemany and IN lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")

# Keeps each IN (...) list and executemany batch well under every driver's parameter limit.
CHUNK = 500


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
