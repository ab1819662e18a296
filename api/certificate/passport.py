"""A pack's transport history as battery-passport data (Regulation (EU) 2023/1542, Annex XIII). Pure.

Annex XIII lists what a battery passport holds; the parts a transport record can feed are in the
information accessible to persons with a legitimate interest, which takes in the Annex VII
state-of-health and durability parameters; of those, "information on negative events, such as
accidents" and "operating environmental conditions, including temperature and time spent in
extreme temperatures" are what a transport record can feed (our reading of the regulation's
text; the export names attributes, not point numbers). We map:

| passport attribute (Annex VII / XIII)            | from the certificate                                 |
| negative events: accidents                        | each T.4 violation (shock beyond the test pulse), T.1 |
|                                                   | and T.3 violations, with time, place, custodian       |
| temperature: time spent in extreme temperatures   | T.2 `time_beyond_s` above t2_max / below t2_min       |
|   above / below thresholds                        | and `time_in_warning_s` in the warning band           |
| operating environmental conditions: temperature   | min / max with their times, mean kinetic temperature |
| unique identifier, manufacturer, model, chemistry | the pack registration (serial, maker, model, ...)    |
| (not in Annex XIII) evidence                      | the certificate's checkpoint and readings digest      |

Not covered: state of health, capacity fade, charge/discharge cycles, deep discharge events,
carbon footprint, recycled content, due diligence: a transport record does not measure them.
The passport is a record of the battery's life; this is one leg of it, dated and bounded.
"""

from __future__ import annotations

from typing import Any

from packproof.api.certificate.document import PackCertificate, ShipmentCertificate

FORMAT = "packproof-passport-transport/1"
REGULATION = "Regulation (EU) 2023/1542, Annex XIII with the Annex VII parameters (negative events; temperature)"


def passport_of(cert: PackCertificate) -> dict[str, Any]:
    c = cert.claims
    t2 = next(q for q in c.quantities if q.test == "T.2")
    p = cert.evidence.profile
    registration = c.un38_3
    events = [{"type": "accident" if e.test == "T.4" else "negative-event", "test": e.test, "quantity": e.quantity,
               "description": e.limit_crossed, "start": e.start, "end": e.end, "duration_s": e.duration_s,
               "peak": e.peak, "limit": e.limit,
               "location": e.place.model_dump() if e.place else None,
               "custodian": ({"owners": e.custody.owners, "carriers": e.custody.carriers} if e.custody else None)}
              for e in c.excursions if e.severity == "violation"]
    return {
        "format": FORMAT,
        "regulation": REGULATION,
        "battery": {"unique_identifier": c.custody.serial, "tracker": cert.subject.device_id,
                    "model": registration.model if registration else None,
                    "chemistry": registration.chemistry if registration else None,
                    "mass_kg": registration.mass_kg if registration else None,
                    "un38_3_test_summary": registration.report_id if registration else None},
        "period": {"start": c.period_start, "end": c.period_end, "shipment": cert.subject.shipment_id},
        "negative_events": events,
        "temperature_exposure": {
            "min_c": t2.min.value if t2.min else None, "min_at": t2.min.ts if t2.min else None,
            "max_c": t2.max.value if t2.max else None, "max_at": t2.max.ts if t2.max else None,
            "mean_kinetic_temperature_c": c.mkt_c,
            "time_above_extreme_s": sum(e.duration_s for e in c.excursions
                                        if e.test == "T.2" and e.severity == "violation" and e.peak > p.t2_max_c),
            "time_below_extreme_s": sum(e.duration_s for e in c.excursions
                                        if e.test == "T.2" and e.severity == "violation" and e.peak < p.t2_min_c),
            "time_beyond_envelope_s": t2.time_beyond_s, "time_in_warning_band_s": t2.time_in_warning_s,
            "extreme_thresholds_c": {"above": p.t2_max_c, "below": p.t2_min_c},
            "warning_thresholds_c": {"above": p.warn_temp_high_c, "below": p.warn_temp_low_c}},
        "transport_verdict": {"verdict": c.overall.verdict, "rule": c.overall.rule},
        "data_completeness": {"expected": c.completeness.expected, "received": c.completeness.carried,
                              "missing": c.completeness.missing, "unsealed": c.completeness.unsealed},
        "evidence": {"certificate_format": cert.format, "checkpoint": cert.evidence.log.checkpoint,
                     "readings_sha256": cert.evidence.readings.sha256},
        "not_covered": ["state of health", "capacity fade", "charge/discharge cycles", "deep discharge events",
                        "carbon footprint", "recycled content", "due diligence"],
    }


def passport_export(cert: PackCertificate | ShipmentCertificate) -> dict[str, Any]:
    if isinstance(cert, PackCertificate):
        return passport_of(cert)
    return {"format": FORMAT, "shipment": cert.shipment_id, "batteries": [passport_of(p) for p in cert.packs]}
