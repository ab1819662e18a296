"""Every claim of a condition certificate, computed from the readings it carries. Pure.

The builder (`build.py`, from the store) and the offline verifier (`verify.py`, from the
certificate's own evidence) both call `claims_of`; the verifier compares what it gets with what
the document says, field by field, so a claim can only stand if the readings give it. The
envelope is `packproof.edge.thresholds.evaluate` (UN Manual of Tests and Criteria §38.3.4), the
excursions `packproof.edge.excursions.ExcursionTracker`, who held the pack
`packproof.edge.custody.custody_intervals` and `packproof.api.condition.attribute`: the very code
the ingestor and the condition report run, never a second copy.

Definitions (docs/design.md, "Certificates"):

* a reading stands for the time until the next one, unless that is longer than the silent limit
  (then for none of it): `time_in_warning_s` and `time_beyond_s` add those spans per test;
* a *silent period* is two consecutive readings further apart than
  max(SILENT_MIN_S, SILENT_FACTOR x the median interval);
* *gaps* are the seqs from the first registered seq (the device's registry record) to the last
  carried that the certificate does not carry: declared, never hidden;
* mean kinetic temperature (USP <1079.2>; ICH Q1A(R2)): T_k = (ΔH/R) / -ln((1/n) Σ exp(-ΔH/(R·T_i))),
  T in kelvin, ΔH = 83.144 kJ/mol, R = 8.3144 J/(mol·K), so ΔH/R = 10,000 K, over every reading;
* the verdict is the most severe of the rules in `RULES` that hold (a pure table, first match named).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from packproof.api.condition import attribute
from packproof.api.schemas import ExcursionCustody
from packproof.custody import CustodyEvent, PackRegistered, event_hash
from packproof.edge.custody import CustodyIntervals, custody_intervals
from packproof.edge.excursions import ExcursionTracker
from packproof.edge.thresholds import Profile, evaluate
from packproof.reading import Reading
from packproof.records import Excursion
from packproof.timefmt import epoch_of

Verdict = Literal["fit", "inspect before use", "do not install"]
VERDICTS: tuple[Verdict, ...] = ("fit", "inspect before use", "do not install")  # least to most severe
TestVerdict = Literal["pass", "warning", "violation", "no data"]
TESTS = ("T.1", "T.2", "T.3", "T.4")
QUANTITY = {"T.1": "pressure_kpa", "T.2": "temperature_c", "T.3": "vibration.peak_g", "T.4": "shock.peak_g"}
TEST_NAME = {"T.1": "altitude (§38.3.4.1)", "T.2": "thermal (§38.3.4.2)", "T.3": "vibration (§38.3.4.3)",
             "T.4": "shock (§38.3.4.4)"}

DH_OVER_R_K = 83_144.0 / 8.3144  # ΔH/R for MKT: 83.144 kJ/mol over 8.3144 J/(mol·K) = 10,000 K
KELVIN = 273.15
SILENT_MIN_S = 60.0
SILENT_FACTOR = 10.0


# ---- the verdict rules: one table --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    verdict: Verdict
    when: str  # in words, as the certificate prints it


RULES: tuple[Rule, ...] = (
    Rule("type-test-failed", "do not install",
         "the pack's UN 38.3 test summary records a failed test: its type is not certified for transport"),
    Rule("T.2-violation", "do not install",
         "a temperature beyond the T.2 range: thermal abuse can damage cells with no outward sign"),
    Rule("T.4-violation", "do not install",
         "a shock beyond the T.4 pulse (peak or velocity change): internal damage cannot be ruled out"),
    Rule("T.1-violation", "inspect before use",
         "a pressure below the T.1 altitude limit: check for leakage, venting, swelling"),
    Rule("T.3-violation", "inspect before use",
         "vibration above the T.3 sweep: check connections, fixings and the enclosure"),
    Rule("warning", "inspect before use", "a warning-band event, inside the envelope but worth a look"),
    Rule("no-readings", "inspect before use", "no reading: nothing is known of the journey"),
    Rule("missing-readings", "inspect before use", "seqs never received: a gap may hide an excursion"),
    Rule("silent-period", "inspect before use", "the sensor was silent for longer than the silent limit"),
    Rule("unsealed", "inspect before use",
         "readings stored after the bound checkpoint: the certificate does not cover them"),
    Rule("no-test-summary", "inspect before use",
         "no pack registration with a UN 38.3 test summary is on record for this tracker"),
    Rule("all-clear", "fit",
         "every reading from the first registered seq on is here, sealed, and inside the envelope and its "
         "warning bands; the type passed UN 38.3"),
)
RULE_BY_ID = {r.id: r for r in RULES}


def verdict_of(matched: Sequence[str]) -> tuple[Verdict, str]:
    """The most severe verdict among the rules that hold, and the first such rule in table order."""
    rules = [RULE_BY_ID[m] for m in matched] or [RULE_BY_ID["all-clear"]]
    worst = max((r.verdict for r in rules), key=VERDICTS.index)
    first = next(r for r in RULES if r.id in {x.id for x in rules} and r.verdict == worst)
    return worst, first.id


# ---- the claims, as the document carries them ----------------------------------------------------

_MODEL = ConfigDict(extra="forbid", frozen=True)


class Extreme(BaseModel):
    model_config = _MODEL
    value: float
    seq: int
    ts: str


class QuantityStats(BaseModel):
    model_config = _MODEL
    quantity: str
    test: str
    min: Extreme | None
    max: Extreme | None
    time_in_warning_s: float
    time_beyond_s: float


class TestClaim(BaseModel):
    model_config = _MODEL
    test: str
    name: str
    verdict: TestVerdict
    readings: int
    violations: int  # readings beyond the envelope
    warnings: int  # readings in the warning band
    rule: str  # in words: what gave the verdict


class Place(BaseModel):
    model_config = _MODEL
    lat: float
    lon: float


class ExcursionClaim(BaseModel):
    model_config = _MODEL
    test: str
    quantity: str
    severity: str
    start: str
    end: str
    start_seq: int
    end_seq: int
    duration_s: float
    peak: float
    peak_seq: int
    limit: float
    limit_crossed: str
    readings: int
    place: Place | None  # where the peak reading was taken
    custody: ExcursionCustody | None


class Gap(BaseModel):
    model_config = _MODEL
    first_seq: int
    last_seq: int


class Silence(BaseModel):
    model_config = _MODEL
    after_seq: int
    before_seq: int
    start: str
    end: str
    seconds: float


class Completeness(BaseModel):
    model_config = _MODEL
    first_registered_seq: int
    first_seq: int | None
    last_seq: int | None
    expected: int  # seqs from the first registered to the last carried
    carried: int
    missing: int
    gaps: list[Gap]
    silent_limit_s: float
    silent: list[Silence]
    unsealed: int  # stored after the bound checkpoint (the store's word at issue time)


class CustodyStepClaim(BaseModel):
    model_config = _MODEL
    event_id: str
    kind: str
    ts: str
    actor: str
    place: str | None
    to: str | None
    hash: str


class Holding(BaseModel):
    model_config = _MODEL
    role: Literal["owner", "carrier", "holder"]
    party: str
    start: str
    end: str | None


class CustodyClaim(BaseModel):
    model_config = _MODEL
    serial: str | None
    chain_intact: bool
    problems: list[str]
    events: list[CustodyStepClaim]
    holdings: list[Holding]


class Un38_3Claim(BaseModel):
    model_config = _MODEL
    registration_event: str
    model: str
    chemistry: str
    mass_kg: float
    report_id: str
    lab: str
    date: str
    manual_revision: str
    results: dict[str, str]
    failed: list[str]


class OverallClaim(BaseModel):
    model_config = _MODEL
    verdict: Verdict
    rule: str
    rule_text: str
    reasons: list[str]  # every rule that holds


class Claims(BaseModel):
    model_config = _MODEL
    device_id: str
    shipment_id: str
    profile: str
    edition: str
    un38_3: Un38_3Claim | None
    period_start: str | None
    period_end: str | None
    tests: list[TestClaim]
    overall: OverallClaim
    quantities: list[QuantityStats]
    mkt_c: float | None
    excursions: list[ExcursionClaim]
    completeness: Completeness
    custody: CustodyClaim


# ---- computing them ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the claims are computed from: the pack's readings in rising seq order (all of them, as
    many as the certificate carries), its custody events in chain order, and the parameters."""

    device_id: str
    shipment_id: str
    profile: Profile
    readings: Sequence[Reading]
    first_registered_seq: int
    custody: Sequence[CustodyEvent]
    handover_window_s: float
    unsealed: int


def value_of(r: Reading, quantity: str) -> float:
    if quantity == "pressure_kpa":
        return r.pressure_kpa
    if quantity == "temperature_c":
        return r.temperature_c
    if quantity == "vibration.peak_g":
        return r.vibration.peak_g
    return r.shock.peak_g


def mean_kinetic_temperature(celsius: Sequence[float]) -> float:
    """MKT in °C of equally spaced temperatures (USP <1079.2>, ICH Q1A(R2)), ΔH/R = 10,000 K.

    Computed as T_min-shifted log-sum-exp so a long cold series does not underflow exp()."""
    if not celsius:
        raise ValueError("mean kinetic temperature of no readings")
    xs = [-DH_OVER_R_K / (c + KELVIN) for c in celsius]
    top = max(xs)
    mean = math.fsum(math.exp(x - top) for x in xs) / len(xs)
    return DH_OVER_R_K / -(top + math.log(mean)) - KELVIN


def silent_limit(epochs: Sequence[float]) -> float:
    steps = [b - a for a, b in zip(epochs, epochs[1:], strict=False)]
    median = statistics.median(steps) if steps else 0.0
    return max(SILENT_MIN_S, SILENT_FACTOR * median)


def _gaps(first: int, seqs: Sequence[int]) -> list[Gap]:
    out: list[Gap] = []
    at = first
    for s in seqs:
        if s > at:
            out.append(Gap(first_seq=at, last_seq=s - 1))
        at = max(at, s + 1)
    return out


def _custody(serial: str | None, events: Sequence[CustodyEvent]) -> tuple[CustodyClaim, CustodyIntervals | None]:
    """The pack's custody steps, and whether each names the one before it in `prev` (its per-pack hash chain)."""
    if serial is None:
        return CustodyClaim(serial=None, chain_intact=True, problems=[], events=[], holdings=[]), None
    problems: list[str] = []
    prev: str | None = None
    steps = []
    for e in events:
        if serial not in e.packs:
            problems.append(f"event {e.event_id} does not name pack {serial}")
        elif e.prev.get(serial) != prev:
            problems.append(f"event {e.event_id} chains to {e.prev.get(serial)}, the event before it hashes to {prev}")
        digest = event_hash(e)
        prev = digest
        steps.append(CustodyStepClaim(event_id=e.event_id, kind=e.kind, ts=e.ts, actor=e.actor,
                                      place=e.location.name, to=getattr(e, "to", None), hash=digest))
    intervals = custody_intervals(serial, events)
    holdings = [Holding(role=role, party=i.party, start=i.start, end=i.end)
                for role, spans in (("owner", intervals.owners), ("carrier", intervals.carriers),
                                    ("holder", intervals.holders)) for i in spans]
    return CustodyClaim(serial=serial, chain_intact=not problems, problems=problems, events=steps,
                        holdings=holdings), intervals


def _registration(device_id: str, events: Sequence[CustodyEvent]) -> PackRegistered | None:
    return next((e for e in events if isinstance(e, PackRegistered) and e.tracker == device_id), None)


def claims_of(inp: Inputs) -> Claims:
    p = inp.profile
    readings = inp.readings
    epochs = [r.epoch for r in readings]
    limit = silent_limit(epochs)
    steps = zip(epochs, epochs[1:], strict=False)
    spans = [(b - a) if b - a <= limit else 0.0 for a, b in steps] + [0.0] * bool(epochs)  # the last: none

    counts = {t: {"violation": 0, "warning": 0} for t in TESTS}
    timed = {t: {"violation": 0.0, "warning": 0.0} for t in TESTS}
    tracker = ExcursionTracker()
    for r, span in zip(readings, spans, strict=True):
        checks = evaluate(p, r)
        for c in checks:
            counts[c.test][c.severity] += 1
            timed[c.test][c.severity] += span
        tracker.observe(r.device_id, r.shipment_id, r.seq, r.ts, checks)

    tests = []
    for t in TESTS:
        v, w = counts[t]["violation"], counts[t]["warning"]
        verdict: TestVerdict = ("no data" if not readings else "violation" if v else "warning" if w else "pass")
        rule = {"no data": "no reading to judge by",
                "violation": f"{v} reading(s) beyond the {TEST_NAME[t]} envelope of {p.name} ({p.edition})",
                "warning": f"{w} reading(s) in the warning band, none beyond the envelope",
                "pass": "every reading inside the envelope and below its warning band"}[verdict]
        tests.append(TestClaim(test=t, name=TEST_NAME[t], verdict=verdict, readings=len(readings), violations=v,
                               warnings=w, rule=rule))

    quantities = []
    for t in TESTS:
        q = QUANTITY[t]
        lo = hi = None
        for r in readings:
            x = value_of(r, q)
            if lo is None or x < lo.value:
                lo = Extreme(value=x, seq=r.seq, ts=r.ts)
            if hi is None or x > hi.value:
                hi = Extreme(value=x, seq=r.seq, ts=r.ts)
        quantities.append(QuantityStats(quantity=q, test=t, min=lo, max=hi,
                                        time_in_warning_s=round(timed[t]["warning"], 3),
                                        time_beyond_s=round(timed[t]["violation"], 3)))

    serial_event = _registration(inp.device_id, inp.custody)
    serial = serial_event.serial if serial_event else None
    custody, intervals = _custody(serial, inp.custody)

    by_seq = {r.seq: r for r in readings}
    excursions = []
    for e in sorted(tracker.drain_changed(), key=lambda x: x.id):
        excursions.append(_excursion(e, by_seq, intervals, inp.handover_window_s))

    seqs = [r.seq for r in readings]
    gaps = _gaps(inp.first_registered_seq, seqs)
    silent = [Silence(after_seq=readings[k].seq, before_seq=readings[k + 1].seq, start=readings[k].ts,
                      end=readings[k + 1].ts, seconds=round(epochs[k + 1] - epochs[k], 3))
              for k in range(len(readings) - 1) if epochs[k + 1] - epochs[k] > limit]
    expected = seqs[-1] - inp.first_registered_seq + 1 if seqs else 0
    completeness = Completeness(first_registered_seq=inp.first_registered_seq, first_seq=seqs[0] if seqs else None,
                                last_seq=seqs[-1] if seqs else None, expected=expected, carried=len(seqs),
                                missing=sum(g.last_seq - g.first_seq + 1 for g in gaps), gaps=gaps,
                                silent_limit_s=limit, silent=silent, unsealed=inp.unsealed)

    un38 = None
    if serial_event is not None:
        s = serial_event.un38_3
        un38 = Un38_3Claim(registration_event=serial_event.event_id, model=serial_event.model,
                           chemistry=serial_event.chemistry, mass_kg=serial_event.mass_kg, report_id=s.report_id,
                           lab=s.lab, date=s.date, manual_revision=s.manual_revision,
                           results=s.results.model_dump(), failed=list(s.results.failed()))

    matched = []
    if un38 is not None and un38.failed:
        matched.append("type-test-failed")
    for t in ("T.2", "T.4", "T.1", "T.3"):
        if counts[t]["violation"]:
            matched.append(f"{t}-violation")
    if any(counts[t]["warning"] for t in TESTS):
        matched.append("warning")
    if not readings:
        matched.append("no-readings")
    if gaps:
        matched.append("missing-readings")
    if silent:
        matched.append("silent-period")
    if inp.unsealed:
        matched.append("unsealed")
    if un38 is None:
        matched.append("no-test-summary")
    overall_verdict, rule = verdict_of(matched)
    overall = OverallClaim(verdict=overall_verdict, rule=rule, rule_text=RULE_BY_ID[rule].when,
                           reasons=matched or ["all-clear"])

    return Claims(device_id=inp.device_id, shipment_id=inp.shipment_id, profile=p.name, edition=p.edition,
                  un38_3=un38, period_start=readings[0].ts if readings else None,
                  period_end=readings[-1].ts if readings else None, tests=tests, overall=overall,
                  quantities=quantities,
                  mkt_c=round(mean_kinetic_temperature([r.temperature_c for r in readings]), 4) if readings else None,
                  excursions=excursions, completeness=completeness, custody=custody)


def _excursion(e: Excursion, by_seq: dict[int, Reading], intervals: CustodyIntervals | None,
               window_s: float) -> ExcursionClaim:
    run = [by_seq[s] for s in range(e.start_seq, e.end_seq + 1) if s in by_seq]
    peak_reading = next((r for r in run if value_of(r, e.quantity) == e.peak), run[0])
    loc = peak_reading.location
    return ExcursionClaim(test=e.test, quantity=e.quantity, severity=e.severity, start=e.start, end=e.end,
                          start_seq=e.start_seq, end_seq=e.end_seq,
                          duration_s=round(epoch_of(e.end) - epoch_of(e.start), 3), peak=e.peak,
                          peak_seq=peak_reading.seq, limit=e.limit, limit_crossed=e.limit_crossed,
                          readings=e.readings, place=Place(lat=loc.lat, lon=loc.lon) if loc else None,
                          custody=attribute(e, intervals, window_s) if intervals is not None else None)


def differences(said: Any, found: Any, path: str = "claims") -> list[tuple[str, Any, Any]]:
    """Where two JSON values differ, as (dotted path, said, found); lists by index, objects by key."""
    if isinstance(said, dict) and isinstance(found, dict):
        out = []
        for k in sorted(set(said) | set(found)):
            out += differences(said.get(k), found.get(k), f"{path}.{k}")
        return out
    if isinstance(said, list) and isinstance(found, list):
        out = []
        for i in range(max(len(said), len(found))):
            a = said[i] if i < len(said) else "(absent)"
            b = found[i] if i < len(found) else "(absent)"
            out += differences(a, b, f"{path}[{i}]")
        return out
    if said == found and type(said) is type(found) or (isinstance(said, float | int) and isinstance(found, float | int)
                                                        and not isinstance(said, bool) and said == found):
        return []
    return [(path, said, found)]
