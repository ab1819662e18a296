"""Delivery watermarks: dense runs advance, gaps hold them back and are listed, late fills release."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from packproof.watermark import MAX_GAPS, Delivery, Watermarks


@pytest.mark.parametrize(("seqs", "acked", "missing", "highest", "gaps"), [
    ([0, 1, 2], 2, 0, 2, ()),
    ([1, 2], -1, 1, 2, ((0, 0),)),  # seq 0 never arrived: a gap from the device's first seq
    ([0, 1, 2, 5, 6], 2, 2, 6, ((3, 4),)),
    ([0, 1, 2, 5, 6, 3], 3, 1, 6, ((4, 4),)),
    ([0, 1, 2, 5, 6, 3, 4], 6, 0, 6, ()),  # the late fill releases everything above
    ([0, 2, 2, 1], 2, 0, 2, ()),  # a duplicate above the watermark counts once
    ([0, 2, 4, 6], 0, 3, 6, ((1, 1), (3, 3), (5, 5))),
    ([0, 6, 4, 2, 5, 3], 0, 1, 6, ((1, 1),)),  # runs merge from both sides
])
def test_watermark_missing_and_gaps(seqs: list[int], acked: int, missing: int, highest: int,
                                    gaps: tuple[tuple[int, int], ...]) -> None:
    w = Watermarks()
    for s in seqs:
        w.add("d", s)
    assert w.state("d") == Delivery(acked, missing, highest, gaps)


def test_a_device_registered_from_a_later_seq_starts_there() -> None:
    w = Watermarks()
    w.add("d", 1000, first_seq=1000)
    assert w.state("d") == Delivery(1000, 0, 1000, ())


def test_state_restores_from_what_the_store_keeps() -> None:
    w = Watermarks()
    w.restore("d", 2, 6, [[3, 4]])
    assert w.state("d") == Delivery(2, 2, 6, ((3, 4),))
    w.add("d", 3)
    w.add("d", 4)
    assert w.state("d") == Delivery(6, 0, 6, ())


def test_every_gap_is_kept_for_the_store_though_the_ack_lists_a_few() -> None:
    """The ack is bounded; the stored state is not, or a restore would take missing seqs for stored ones."""
    w = Watermarks()
    for s in range(0, 200, 2):
        w.add("d", s)
    kept = w.stored_gaps_json("d")
    assert len(w.state("d").gaps) == MAX_GAPS and kept.count("[") == 1 + 99
    again = Watermarks()
    again.restore("d", 0, 198, json.loads(kept))
    assert again.state("d") == w.state("d") and again.stored_gaps_json("d") == kept


def test_gaps_listed_are_bounded_and_lowest_first() -> None:
    w = Watermarks()
    for s in range(0, 200, 2):
        w.add("d", s)
    state = w.state("d")
    assert len(state.gaps) == MAX_GAPS and state.gaps[0] == (1, 1)
    assert state.missing == 99


def test_payload_is_the_documented_json() -> None:
    w = Watermarks()
    for s in (0, 1, 4):
        w.add("d", s)
    assert json.loads(w.state("d").payload()) == {"acked_seq": 1, "missing": 2, "highest": 4, "gaps": [[2, 3]]}


def test_memory_is_per_gap_not_per_reading() -> None:
    w = Watermarks()
    w.add("d", 0)
    for s in range(2, 100_000):  # seq 1 never comes: everything above waits
        w.add("d", s)
    state = w.state("d")
    assert state == Delivery(0, 1, 99_999, ((1, 1),))
    assert len(w._devices["d"].runs) == 1


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=80), st.randoms())
def test_agrees_with_a_naive_set(seqs: list[int], rnd: random.Random) -> None:
    rnd.shuffle(seqs)
    w = Watermarks()
    for s in seqs:
        w.add("d", s)
    if not seqs:
        return
    stored = set(seqs)
    acked = -1
    while acked + 1 in stored:
        acked += 1
    highest = max(stored)
    missing = [s for s in range(acked + 1, highest + 1) if s not in stored]
    state = w.state("d")
    assert (state.acked_seq, state.missing, state.highest) == (acked, len(missing), highest)
    listed = [s for a, b in state.gaps for s in range(a, b + 1)]
    assert listed == missing[:len(listed)]


def test_holds_is_exact_membership_of_what_is_counted_as_stored() -> None:
    w = Watermarks()
    for seq in (0, 1, 2, 5, 6, 9):
        w.add("d", seq)
    assert [s for s in range(12) if w.holds("d", s)] == [0, 1, 2, 5, 6, 9]
    assert not w.holds("other", 0)
