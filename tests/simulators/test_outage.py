"""The outage schedule: which devices, when; deterministic from the seed."""

from __future__ import annotations

import pytest

from packproof.simulators.outage import OutageSchedule

IDS = [f"dev-{i:02d}" for i in range(40)]


def cut_times(s: OutageSchedule, device: str, until: float, step: float = 0.25) -> list[float]:
    return [i * step for i in range(int(until / step)) if s.down(device, i * step)]


def test_same_seed_same_outages_other_seed_other_devices() -> None:
    a = OutageSchedule(IDS, every=30, duration=5, fraction=0.25, seed=7, randomly=True)
    b = OutageSchedule(list(reversed(IDS)), every=30, duration=5, fraction=0.25, seed=7, randomly=True)
    assert a.affected == b.affected
    for d in sorted(a.affected)[:3]:
        assert cut_times(a, d, 300) == cut_times(b, d, 300)
    assert OutageSchedule(IDS, every=30, seed=8).affected != a.affected


@pytest.mark.parametrize(("fraction", "expected"), [(0.25, 10), (0.5, 20), (1.0, 40), (0.0, 0), (0.001, 1)])
def test_fraction_of_devices(fraction: float, expected: int) -> None:
    s = OutageSchedule(IDS, every=10, fraction=fraction)
    assert len(s.affected) == expected
    assert not any(s.down(d, 12) for d in set(IDS) - s.affected)


def test_periodic_outages_start_every_and_last_for() -> None:
    s = OutageSchedule(IDS, every=10, duration=3, fraction=1.0)
    d = IDS[0]
    assert [s.down(d, t) for t in (0, 5, 9.9, 10, 12.9, 13, 19.99, 20, 22, 23.5)] == [
        False, False, False, True, True, False, False, True, True, False]
    assert all(s.down(x, 31) for x in IDS)  # together, as in a tunnel


def test_random_outages_last_for_and_start_on_average_every() -> None:
    every, duration = 20.0, 2.0
    s = OutageSchedule(IDS, every=every, duration=duration, fraction=1.0, seed=3, randomly=True)
    horizon = 20_000.0
    for d in IDS[:3]:
        starts = [t for t in s.starts_until(d, horizon) if t < horizon]
        gaps = [b - (a + duration) for a, b in zip(starts, starts[1:], strict=False)]
        assert all(g >= 0 for g in gaps)  # never overlapping
        assert 0.85 * every < sum(gaps) / len(gaps) < 1.15 * every
        t0 = starts[5]
        assert s.down(d, t0) and s.down(d, t0 + duration - 0.01) and not s.down(d, t0 - 1e-9)
    assert s.starts_until(IDS[0], 100)[:3] != s.starts_until(IDS[1], 100)[:3]  # independent devices


def test_bad_schedules_are_refused() -> None:
    for kwargs in ({"every": 0}, {"every": 5, "duration": 0}, {"every": 5, "fraction": 1.5}):
        with pytest.raises(ValueError):
            OutageSchedule(IDS, **kwargs)  # type: ignore[arg-type]
