"""Delivery watermarks: dense runs advance, gaps hold them back and are counted, late fills release."""

from __future__ import annotations

import pytest

from edge.watermark import Watermarks


@pytest.mark.parametrize(("seqs", "expected"), [
    ([0, 1, 2], (2, 0)),
    ([5, 6, 7], (7, 0)),  # the first seq we see starts the run
    ([0, 1, 2, 5, 6], (2, 2)),  # 3 and 4 missing
    ([0, 1, 2, 5, 6, 3], (3, 1)),
    ([0, 1, 2, 5, 6, 3, 4], (6, 0)),  # the late fill releases everything above
    ([0, 2, 2, 1], (2, 0)),  # a duplicate above the watermark counts once
    ([3, 1], (3, 0)),  # before the first stored seq: nothing we can call missing
])
def test_watermark_and_missing(seqs: list[int], expected: tuple[int, int]) -> None:
    w = Watermarks()
    for s in seqs:
        w.add("d", s)
    assert w.state("d") == expected


def test_state_reloads_after_a_restart() -> None:
    w = Watermarks()
    w.load("d", 2, [5, 6])
    assert w.state("d") == (2, 2)
    w.add("d", 3)
    w.add("d", 4)
    assert w.state("d") == (6, 0)
