"""LTTB (packproof/lttb.py): known answers, the reference algorithm, and its properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packproof.lttb import lttb


def reference(data: list[tuple[float, float]], threshold: int) -> list[int]:
    """A line-by-line transcription of Steinarsson's published JavaScript (github.com/sveinn-steinarsson/
    flot-downsample, jquery.flot.downsample.js), returning indices: the independent implementation."""
    length = len(data)
    if threshold >= length or threshold == 0:
        return list(range(length))
    sampled = [0]
    every = (length - 2) / (threshold - 2)
    a = 0
    for i in range(threshold - 2):
        avg_start = math.floor((i + 1) * every) + 1
        avg_end = min(math.floor((i + 2) * every) + 1, length)
        avg_x = sum(p[0] for p in data[avg_start:avg_end]) / (avg_end - avg_start)
        avg_y = sum(p[1] for p in data[avg_start:avg_end]) / (avg_end - avg_start)
        offs, to = math.floor(i * every) + 1, math.floor((i + 1) * every) + 1
        ax, ay = data[a]
        max_area, nxt = -1.0, offs
        for j in range(offs, to):
            area = abs((ax - avg_x) * (data[j][1] - ay) - (ax - data[j][0]) * (avg_y - ay)) * 0.5
            if area > max_area:
                max_area, nxt = area, j
        sampled.append(nxt)
        a = nxt
    sampled.append(length - 1)
    return sampled


def test_known_answers() -> None:
    assert lttb([0, 1, 2, 3, 4, 5], [0, 0, 5, 0, 0, 0], 3) == [0, 2, 5]  # the spike is the largest triangle
    assert lttb(list(range(7)), [0, 1, 0, -3, 0, 2, 0], 4) == [0, 1, 3, 6]  # worked by hand in the commit
    assert lttb([0, 1, 2], [1, 2, 3], 10) == [0, 1, 2]  # fewer points than asked: all of them
    assert lttb([0, 1, 2, 3], [1, 2, 3, 4], 2) == [0, 3]
    assert lttb([], [], 5) == []


def test_mismatched_lengths_are_named() -> None:
    with pytest.raises(ValueError, match="xs has 3 values, ys 2"):
        lttb([0, 1, 2], [0, 1], 2)


def test_the_reference_on_a_long_wave() -> None:
    """Where the reference's float bucket bounds are exact (4998 / 294 = 17), the same indices."""
    xs = [float(i) for i in range(5000)]
    ys = [math.sin(i / 37) * 10 + (25 if i == 3210 else 0) for i in range(5000)]
    got = lttb(xs, ys, 296)
    assert got == reference(list(zip(xs, ys, strict=True)), 296)
    assert 3210 in got


series = st.integers(3, 400).flatmap(lambda size: st.tuples(
    st.lists(st.floats(-1e6, 1e6), min_size=size, max_size=size), st.integers(3, size + 5)))


@settings(max_examples=200, deadline=None)
@given(series)
def test_properties(case: tuple[list[float], int]) -> None:
    ys, n = case
    xs = [float(i) for i in range(len(ys))]
    got = lttb(xs, ys, n)
    assert len(got) == min(n, len(ys))  # the length asked for
    assert got[0] == 0 and got[-1] == len(ys) - 1  # the endpoints kept
    assert got == sorted(set(got))  # ascending, each point once
    if n < len(ys):  # one point from each bucket (the reference's buckets, up to its float rounding)
        span, buckets = len(ys) - 2, n - 2
        assert all(1 + i * span // buckets <= got[i + 1] < 1 + (i + 1) * span // buckets for i in range(buckets))


@settings(max_examples=200, deadline=None)
@given(st.integers(10, 2000), st.integers(3, 200), st.data())
def test_a_lone_extreme_survives(size: int, n: int, data: st.DataObject) -> None:
    """On a flat series one spike (up or down) is the largest triangle of its bucket: always picked."""
    spike = data.draw(st.integers(1, size - 2))
    height = data.draw(st.sampled_from([-50.0, 80.0]))
    ys = [20.0] * size
    ys[spike] = height
    assert spike in lttb([float(i) for i in range(size)], ys, min(n, size))
