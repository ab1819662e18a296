"""Largest-Triangle-Three-Buckets downsampling (Steinarsson, "Downsampling Time Series for
Visual Representation", University of Iceland, 2013, §4.2). Pure.

A pack with 100,000 readings cannot be drawn point by point in a browser in well under a
second, and an evenly spaced or averaged subsample hides exactly what a condition chart is
for: the one hot reading, the one shock. LTTB keeps the first and the last point and, from
each of `n - 2` equal buckets in between, the point forming the largest triangle with the
point kept before it and the mean of the next bucket; a lone extreme makes a large triangle,
so it survives. The dashboard's series endpoint (api/series.py) draws what this picks.

Returns indices into the input, so the caller keeps whatever rides along with a point (its
seq, to verify that reading).
"""

from __future__ import annotations

from collections.abc import Sequence


def lttb(xs: Sequence[float], ys: Sequence[float], n: int) -> list[int]:
    """The indices (ascending) of the `n` points LTTB keeps of the series (xs ascending).

    All points when there are no more than `n`; `n` below 3 keeps the first and last only.
    """
    size = len(xs)
    if len(ys) != size:
        raise ValueError(f"lttb: xs has {size} values, ys {len(ys)}: expected the same number")
    if n >= size:
        return list(range(size))
    if n < 3:
        return [0, size - 1][:max(n, 0)] if size > 1 else list(range(min(size, max(n, 0))))
    out = [0]
    span, buckets = size - 2, n - 2  # bucket i holds points 1 + floor(i * span / buckets) .. (exact integers)
    a = 0
    for i in range(buckets):
        start, end = 1 + i * span // buckets, 1 + (i + 1) * span // buckets
        nstart, nend = end, min(1 + (i + 2) * span // buckets, size)  # the next bucket: the last point at the end
        count = nend - nstart
        mx = sum(xs[nstart:nend]) / count
        my = sum(ys[nstart:nend]) / count
        ax, ay = xs[a], ys[a]
        best, best_area = start, -1.0
        for j in range(start, end):
            area = abs((ax - mx) * (ys[j] - ay) - (ax - xs[j]) * (my - ay))  # twice the triangle's area
            if area > best_area:
                best, best_area = j, area
        out.append(best)
        a = best
    out.append(size - 1)
    return out
