"""The ack contract as the device reads it: strict, backward compatible, and what it makes resendable."""

from __future__ import annotations

import json

import pytest

from packproof.simulators.ack import Ack, parse_ack, resend_ranges


def ack(**doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_full_and_old_forms() -> None:
    assert parse_ack(ack(acked_seq=9, missing=4, highest=15, gaps=[[10, 10], [12, 13]])) == Ack(
        9, 4, 15, ((10, 10), (12, 13)))
    assert parse_ack(ack(acked_seq=9, missing=3)) == Ack(9, 3, 9, ())  # an older ingestor: H = N, no gaps
    assert parse_ack(ack(acked_seq=-1, missing=0)) == Ack(-1, 0, -1, ())
    assert parse_ack(b'{"acked_seq":3,"missing":0,"extra":1}').acked_seq == 3  # newer fields are fine


@pytest.mark.parametrize("payload", [
    b"", b"not json", b"\xff", b"[1, 2]", b'{"missing": 0}', b'{"acked_seq": 1}',
    ack(acked_seq=True, missing=0), ack(acked_seq=-2, missing=0), ack(acked_seq=1.5, missing=0),
    ack(acked_seq=1, missing=-1), ack(acked_seq=5, missing=0, highest=4),
    ack(acked_seq=1, missing=1, highest=9, gaps=[[1, 2]]),  # a gap at or below the mark
    ack(acked_seq=1, missing=1, highest=9, gaps=[[3, 9]]),  # a gap reaching the highest stored
    ack(acked_seq=1, missing=1, highest=9, gaps=[[5, 6], [3, 4]]),  # not lowest first
    ack(acked_seq=1, missing=1, highest=9, gaps=[[4, 3]]), ack(acked_seq=1, missing=1, highest=9, gaps=[[3]]),
    ack(acked_seq=1, missing=1, highest=9, gaps="3-4"),
    ack(acked_seq=0, missing=17, highest=100, gaps=[[2 * i + 1, 2 * i + 1] for i in range(17)]),
])
def test_malformed_acks_are_refused_whole(payload: bytes) -> None:
    with pytest.raises(ValueError):
        parse_ack(payload)


def test_resend_ranges_are_gaps_and_above_the_highest_up_to_the_unsent() -> None:
    a = Ack(9, 4, 15, ((10, 10), (12, 13)))
    assert resend_ranges(a, below=20) == [(10, 10), (12, 13), (16, 19)]
    assert resend_ranges(a, below=16) == [(10, 10), (12, 13)]
    assert resend_ranges(a, below=13) == [(10, 10), (12, 12)]
    assert resend_ranges(Ack(9, 0, 9), below=10) == []
    assert resend_ranges(Ack(9, 3, 9), below=14) == [(10, 13)]  # old form: everything above the mark


def test_while_the_ingestor_moves_on_only_gaps_are_resent() -> None:
    """Above the highest stored seq readings may be in flight: resent only once the ingestor stalls."""
    a = Ack(9, 3, 15, ((10, 10), (12, 13)))
    assert resend_ranges(a, below=20, stalled=False) == [(10, 10), (12, 13)]
    assert resend_ranges(Ack(-1, 0, -1), below=5, stalled=False) == []
    assert resend_ranges(Ack(-1, 0, -1), below=5) == [(0, 4)]  # nothing ever acknowledged, and no progress
