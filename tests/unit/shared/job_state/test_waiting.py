"""Bounded label sets for the scheduler's metrics."""

from __future__ import annotations

from chatq.shared.job_state.waiting import OTHER, top_with_other


def test_the_top_values_keep_their_labels_and_the_rest_are_summed_as_other():
    values = {"a": 5.0, "b": 1.0, "c": 3.0, "d": 0.5}
    assert top_with_other(values, 2) == {"a": 5.0, "c": 3.0, OTHER: 1.5}
    assert top_with_other({"a": 1.0}, 2) == {"a": 1.0}
