"""Server-minted resource ids (`store.resource_store.new_resource_id`)."""

from __future__ import annotations

import re
import uuid

from store.resource_store import new_resource_id

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
MS = 1_790_000_000_000  # a fixed instant: the tests never read the clock


def test_an_id_is_a_valid_fhir_id_and_a_version_7_uuid_carrying_its_millisecond() -> None:
    minted = new_resource_id(MS)
    assert FHIR_ID.fullmatch(minted)
    parsed = uuid.UUID(minted)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert parsed.int >> 80 == MS


def test_ids_minted_in_later_milliseconds_sort_later() -> None:
    minted = [new_resource_id(MS + step) for step in (0, 1, 2, 1000, 86_400_000)]
    assert minted == sorted(minted)


def test_ids_minted_in_the_same_millisecond_differ() -> None:
    minted = {new_resource_id(MS) for _ in range(10_000)}
    assert len(minted) == 10_000
