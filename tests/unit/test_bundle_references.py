"""Rewriting Bundle-internal references (urn:uuid fullUrls) to the ids the server assigned."""

from __future__ import annotations

from store.bundles import _rewrite_references


def test_references_to_bundle_entries_point_at_the_new_ids() -> None:
    observation = {
        "resourceType": "Observation",
        "partOf": [{"reference": "urn:uuid:1"}],
        "subject": {"reference": "Patient/x"},
    }
    rewritten = _rewrite_references(observation, {"urn:uuid:1": "Procedure/abc"})
    assert rewritten["partOf"] == [{"reference": "Procedure/abc"}]
    assert rewritten["subject"] == {"reference": "Patient/x"}
    assert observation["partOf"] == [{"reference": "urn:uuid:1"}], "the input is not mutated"


def test_text_that_looks_like_a_reference_is_left_alone() -> None:
    note = 'he wrote "reference":"urn:uuid:1" in the note'
    observation = {"resourceType": "Observation", "note": [{"text": note}]}
    assert _rewrite_references(observation, {"urn:uuid:1": "Procedure/abc"}) == observation
