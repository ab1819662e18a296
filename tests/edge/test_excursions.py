"""Excursion grouping: runs, closing, severity changes, overlap, reload, drain."""

from __future__ import annotations

from packproof.edge.excursions import Excursion, ExcursionTracker
from packproof.edge.thresholds import Check

HOT = Check("T.2", "temperature_c", "violation", 75.0, 72.0, "> 72")
HOTTER = Check("T.2", "temperature_c", "violation", 78.0, 72.0, "> 72")
WARM = Check("T.2", "temperature_c", "warning", 65.0, 60.0, "> 60")
THIN = Check("T.1", "pressure_kpa", "violation", 9.0, 11.6, "< 11.6")
THINNER = Check("T.1", "pressure_kpa", "violation", 8.5, 11.6, "< 11.6")


def feed(t: ExcursionTracker, *checks: tuple[Check, ...], device: str = "d", start: int = 0) -> None:
    for i, c in enumerate(checks):
        t.observe(device, "S", start + i, f"ts{start + i}", c)


def test_a_run_of_violations_is_one_excursion_with_its_peak() -> None:
    t = ExcursionTracker()
    feed(t, (), (HOT,), (HOTTER,), (HOT,), ())
    (e,) = t.drain_changed()
    assert (e.start_seq, e.end_seq, e.readings, e.peak, e.open) == (1, 3, 3, 78.0, False)
    assert (e.start, e.end) == ("ts1", "ts3")


def test_low_side_peak_is_the_minimum() -> None:
    t = ExcursionTracker()
    feed(t, (THIN,), (THINNER,), (THIN,))
    (e,) = t.drain_changed()
    assert e.peak == 8.5 and e.open


def test_severity_change_closes_one_and_opens_another() -> None:
    t = ExcursionTracker()
    feed(t, (WARM,), (HOT,), (WARM,))
    es = sorted(t.drain_changed(), key=lambda e: e.id)
    assert [(e.severity, e.start_seq, e.end_seq, e.open) for e in es] == [
        ("warning", 0, 0, False), ("violation", 1, 1, False), ("warning", 2, 2, True)]


def test_two_tests_overlap_independently() -> None:
    t = ExcursionTracker()
    feed(t, (HOT,), (HOT, THIN), (THIN,), ())
    es = {e.test: e for e in t.drain_changed()}
    assert (es["T.2"].start_seq, es["T.2"].end_seq) == (0, 1)
    assert (es["T.1"].start_seq, es["T.1"].end_seq) == (1, 2)
    assert not es["T.1"].open and not es["T.2"].open


def test_devices_do_not_share_runs() -> None:
    t = ExcursionTracker()
    t.observe("a", "S", 0, "t", (HOT,))
    t.observe("b", "S", 0, "t", ())
    t.observe("a", "S", 1, "t", (HOT,))
    (e,) = t.drain_changed()
    assert e.device_id == "a" and e.readings == 2


def test_drain_reports_each_change_once() -> None:
    t = ExcursionTracker()
    feed(t, (HOT,))
    assert len(t.drain_changed()) == 1
    assert t.drain_changed() == []
    feed(t, (), start=1)
    (e,) = t.drain_changed()
    assert not e.open
    feed(t, (), (), start=2)
    assert t.drain_changed() == []


def test_open_excursions_reload_after_a_restart() -> None:
    stored = Excursion(7, "d", "S", "T.2", "temperature_c", "violation", "ts0", "ts3", 0, 3, 76.0, 72.0, "> 72",
                       4, True)
    t = ExcursionTracker(next_id=1, open_excursions=[stored])
    feed(t, (HOTTER,), (), start=4)
    (e,) = t.drain_changed()
    assert (e.id, e.readings, e.end_seq, e.peak, e.open) == (7, 5, 4, 78.0, False)
    feed(t, (HOT,), start=6)
    assert t.drain_changed()[0].id == 8  # new ids continue after the reloaded ones


def test_a_late_reading_inside_an_open_run_joins_it_without_moving_its_end() -> None:
    t = ExcursionTracker()
    feed(t, (HOT,), (HOT,))  # seq 0, 1
    feed(t, (HOT,), start=3)  # seq 2 was lost; 3 arrives
    t.drain_changed()
    t.observe_late("d", "S", 2, "ts2", (HOTTER,))
    (e,) = t.drain_changed()
    assert (e.start_seq, e.end_seq, e.readings, e.peak, e.open) == (0, 3, 4, 78.0, True)


def test_a_late_violation_outside_any_run_is_kept_as_its_own_closed_excursion() -> None:
    t = ExcursionTracker()
    feed(t, (), (), (), (HOT,))  # seq 0..3; 3 opens a run
    t.drain_changed()
    t.observe_late("d", "S", 1, "ts1", (THIN,))
    (e,) = t.drain_changed()
    assert (e.test, e.start_seq, e.end_seq, e.open) == ("T.1", 1, 1, False)
    feed(t, (HOT,), start=4)  # the open run goes on, untouched by the late reading
    (run,) = t.drain_changed()
    assert (run.test, run.start_seq, run.end_seq, run.open) == ("T.2", 3, 4, True)


def test_a_late_nominal_reading_ends_nothing() -> None:
    t = ExcursionTracker()
    feed(t, (HOT,), (HOT,), start=5)
    t.drain_changed()
    t.observe_late("d", "S", 2, "ts2", ())
    assert t.drain_changed() == []
