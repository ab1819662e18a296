"""anchor/anchor_state.py: every (state, event) pair and every (state, observation) case."""

from __future__ import annotations

import itertools

import pytest

from packproof.anchor.anchor_state import (
    FINAL,
    TRANSITIONS,
    AnchorEvent,
    IllegalTransition,
    Observation,
    depth,
    observe,
    step,
)
from packproof.records import AnchorState

S, E = AnchorState, AnchorEvent
EXPECTED = {
    (S.PENDING, E.MINED): S.MINED,
    (S.PENDING, E.REVERTED): S.FAILED,
    (S.PENDING, E.DROPPED): S.PENDING,
    (S.PENDING, E.STUCK): S.PENDING,
    (S.PENDING, E.REPLACED): S.REPLACED,
    (S.MINED, E.CONFIRMED): S.CONFIRMED,
    (S.MINED, E.REORGED): S.PENDING,
    (S.CONFIRMED, E.REORGED): S.PENDING,
}
BLOCK = (10, b"\x0a" * 32)
OTHER = b"\x0b" * 32


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, E)))
def test_every_pair_is_a_transition_or_refused(state: AnchorState, event: AnchorEvent) -> None:
    if (state, event) in EXPECTED:
        assert step(state, event) is EXPECTED[(state, event)]
    else:
        with pytest.raises(IllegalTransition, match=f"anchor in state {state.value}: event {event.value} cannot"):
            step(state, event)


def test_the_table_is_the_expected_one_and_final_states_have_no_way_out() -> None:
    assert TRANSITIONS == EXPECTED
    assert not [k for k in TRANSITIONS if k[0] in FINAL]


def test_depth_counts_the_block_itself() -> None:
    assert [depth(10, 10), depth(11, 10), depth(21, 10), depth(9, 10)] == [1, 2, 12, 0]


@pytest.mark.parametrize(("seen", "event"), [
    (Observation(head=5), None),  # in the pool
    (Observation(head=5, tx_known=False), E.DROPPED),
    (Observation(head=5, receipt_block=5, receipt_block_hash=OTHER), E.MINED),
    (Observation(head=5, receipt_block=5, receipt_block_hash=OTHER, receipt_ok=False), E.REVERTED),
])
def test_pending(seen: Observation, event: AnchorEvent | None) -> None:
    assert observe(S.PENDING, None, seen, 3) is event


def test_pending_too_long_is_stuck_unless_dropped_or_mined() -> None:
    assert observe(S.PENDING, None, Observation(head=5, waited=61), 3, stuck_after=60) is E.STUCK
    assert observe(S.PENDING, None, Observation(head=5, waited=59), 3, stuck_after=60) is None
    assert observe(S.PENDING, None, Observation(head=5, waited=61, tx_known=False), 3, stuck_after=60) is E.DROPPED
    assert observe(S.PENDING, None, Observation(head=5, waited=61, receipt_block=5), 3, stuck_after=60) is E.MINED


@pytest.mark.parametrize(("state", "seen", "n", "event"), [
    (S.MINED, Observation(head=10, canonical_hash=BLOCK[1]), 1, E.CONFIRMED),
    (S.MINED, Observation(head=11, canonical_hash=BLOCK[1]), 3, None),
    (S.MINED, Observation(head=12, canonical_hash=BLOCK[1]), 3, E.CONFIRMED),
    (S.MINED, Observation(head=12, canonical_hash=OTHER), 3, E.REORGED),  # another block at its height
    (S.MINED, Observation(head=9), 3, E.REORGED),  # no block at its height any more
    (S.CONFIRMED, Observation(head=40, canonical_hash=BLOCK[1]), 3, None),
    (S.CONFIRMED, Observation(head=40, canonical_hash=OTHER), 3, E.REORGED),
])
def test_mined_and_confirmed(state: AnchorState, seen: Observation, n: int, event: AnchorEvent | None) -> None:
    assert observe(state, BLOCK, seen, n) is event


def test_a_mined_state_without_a_block_counts_as_reorged() -> None:
    assert observe(S.MINED, None, Observation(head=3, canonical_hash=OTHER), 1) is E.REORGED


@pytest.mark.parametrize("state", sorted(FINAL))
def test_final_states_observe_nothing(state: AnchorState) -> None:
    assert observe(state, BLOCK, Observation(head=99, tx_known=False), 1) is None
    assert observe(state, None, Observation(head=99, receipt_block=1), 1) is None


def test_every_event_observe_returns_is_legal_from_its_state() -> None:
    seen = [Observation(head=h, receipt_block=r, receipt_ok=ok, tx_known=k, canonical_hash=c, waited=w)
            for h in (9, 10, 12) for r in (None, 10) for ok in (True, False) for k in (True, False)
            for c in (None, BLOCK[1], OTHER) for w in (0, 100)]
    for state, o, block in itertools.product(S, seen, (None, BLOCK)):
        event = observe(state, block, o, 2, stuck_after=50)
        if event is not None:
            step(state, event)  # raises if observe proposed an impossible event
