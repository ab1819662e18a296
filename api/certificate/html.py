"""A certificate as one self-contained printable HTML page: inline CSS, inline SVG charts and QR code,
no script and no external asset, so it prints and files as it is.

Page 1: the verdict and the rule that gave it, per-test verdicts, the UN 38.3 test summary, the
figures per quantity, completeness and the checkpoint; then the charts, the excursion table, the
custody timeline and the verification material (QR code).
"""

from __future__ import annotations

from html import escape

import segno

from packproof.anchor.note import parse_note
from packproof.anchor.tlog_checkpoint import parse_checkpoint
from packproof.api.certificate.charts import charts_of, svg
from packproof.api.certificate.claims import RULES, Claims
from packproof.api.certificate.document import PackCertificate, ShipmentCertificate, anchor_summary, readings_of

CSS = """
body{font:11pt/1.35 "DejaVu Sans",Helvetica,Arial,sans-serif;color:#222;margin:0 auto;max-width:190mm;padding:8mm}
h1{font-size:17pt;margin:0 0 2mm}h2{font-size:12.5pt;margin:6mm 0 2mm;border-bottom:1px solid #bbb}
table{border-collapse:collapse;width:100%;margin:1mm 0 3mm}td,th{border-bottom:1px solid #ddd;padding:1mm 2mm;
text-align:left;vertical-align:top;font-size:9.5pt}th{background:#f3f3f3}
.verdict{font-size:20pt;font-weight:bold;padding:3mm 4mm;border-radius:2mm;display:inline-block;margin:2mm 0}
.fit{background:#d8f0dc;color:#1e6b2c}.inspect{background:#fcefd2;color:#8a5a00}.donot{background:#f8d7d3;color:#a02416}
.pass{color:#1e6b2c}.warning{color:#8a5a00}.violation{color:#a02416;font-weight:bold}
.page{page-break-after:always;break-after:page}.small{font-size:8.5pt;color:#555}
svg.chart{width:100%;height:auto;margin:2mm 0}svg.chart .title{font:bold 12px sans-serif}
svg.chart .tick,svg.chart .legend{font:9px sans-serif;fill:#444}svg.chart .axis{font:10px sans-serif;fill:#333}
svg.chart .grid{stroke:#e4e4e4}svg.chart .frame{fill:none;stroke:#999}
.qr{float:right;margin-left:4mm}code{font-size:8.5pt;word-break:break-all}code.note{display:block;white-space:pre-wrap}
@media print{body{padding:0}}
"""
VERDICT_CLASS = {"fit": "fit", "inspect before use": "inspect", "do not install": "donot"}


def _f(x: float | None, unit: str = "", digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}{unit}"


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:g} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def verification_text(cert: PackCertificate, link: str | None) -> str:
    """What the QR code carries: where to fetch the certificate and what pins it (checkpoint, readings)."""
    cp = parse_checkpoint(parse_note(cert.evidence.log.checkpoint.encode()).text)
    pins = (f"packproof-certificate/1 {cert.subject.device_id} checkpoint {cp.origin} {cp.size} "
            f"{cp.root.hex()} readings-sha256 {cert.evidence.readings.sha256}")
    return f"{link}\n{pins}" if link else pins


def _pack(cert: PackCertificate, link: str | None) -> str:
    c: Claims = cert.claims
    verdict = c.overall.verdict
    out = [f'<section class="page"><h1>Condition certificate · pack {escape(cert.subject.device_id)}</h1>']
    qr = segno.make(verification_text(cert, link), error="m")
    out.append(f'<div class="qr">{qr.svg_inline(scale=2)}</div>')
    out.append(f'<p>Serial <b>{escape(cert.subject.serial or "(no pack registration)")}</b> · shipment '
               f'<b>{escape(cert.subject.shipment_id)}</b> · issued {escape(cert.issued_at)}<br>'
               f'Profile <b>{escape(c.profile)}</b> (UN Manual of Tests and Criteria §38.3, {escape(c.edition)}) · '
               f'readings {escape(c.period_start or "-")} to {escape(c.period_end or "-")}</p>')
    out.append(f'<div class="verdict {VERDICT_CLASS[verdict]}">{escape(verdict.upper())}</div>')
    out.append(f'<p>Rule <b>{escape(c.overall.rule)}</b>: {escape(c.overall.rule_text)}. '
               f'Rules that hold: {escape(", ".join(c.overall.reasons))}.</p>')
    out.append("<table><tr><th>test</th><th>verdict</th><th>violations</th><th>warnings</th><th>rule</th></tr>")
    for t in c.tests:
        cls = {"pass": "pass", "warning": "warning", "violation": "violation"}.get(t.verdict, "")
        out.append(f'<tr><td>{t.test} {escape(t.name)}</td><td class="{cls}">{t.verdict}</td><td>{t.violations}</td>'
                   f"<td>{t.warnings}</td><td>{escape(t.rule)}</td></tr>")
    out.append("</table>")
    if c.un38_3:
        u = c.un38_3
        out.append(f"<p>UN 38.3 test summary <b>{escape(u.report_id)}</b>, {escape(u.lab)}, {escape(u.date)}, "
                   f"{escape(u.manual_revision)}: {escape(', '.join(f'{k} {v}' for k, v in u.results.items()))} "
                   f"(model {escape(u.model)}, {escape(u.chemistry)}, {u.mass_kg:g} kg; registered in "
                   f"{escape(u.registration_event)})</p>")
    else:
        out.append("<p><b>No UN 38.3 test summary on record</b> (no pack registration names this tracker).</p>")
    out.append("<table><tr><th>quantity</th><th>min (at)</th><th>max (at)</th><th>in warning band</th>"
               "<th>beyond envelope</th></tr>")
    for q in c.quantities:
        lo = f"{q.min.value:g} (seq {q.min.seq}, {escape(q.min.ts)})" if q.min else "-"
        hi = f"{q.max.value:g} (seq {q.max.seq}, {escape(q.max.ts)})" if q.max else "-"
        out.append(f"<tr><td>{escape(q.quantity)} ({q.test})</td><td>{lo}</td><td>{hi}</td>"
                   f"<td>{_duration(q.time_in_warning_s)}</td><td>{_duration(q.time_beyond_s)}</td></tr>")
    out.append("</table>")
    k = c.completeness
    out.append(f"<p>Mean kinetic temperature <b>{_f(c.mkt_c, ' °C', 5)}</b> (USP &lt;1079.2&gt;, ΔH = 83.144 kJ/mol) · "
               f"readings expected {k.expected:,} (seq {k.first_registered_seq} to {k.last_seq}), carried "
               f"{k.carried:,}, missing {k.missing:,} in {len(k.gaps)} gap(s), {len(k.silent)} silent period(s) "
               f"over {k.silent_limit_s:g} s, unsealed {k.unsealed:,} · {len(c.excursions)} excursion(s)</p>")
    note = escape(cert.evidence.log.checkpoint)
    out.append(f'<p class="small">Bound to log checkpoint: <code class="note">{note}</code>'
               + f'<br><span class="anchor">{escape(anchor_summary(cert))}</span>'
               + "<br>Check it offline: <code>packproof verify --certificate FILE.json --ledger-key KEY</code>"
               + (f" (the JSON: <code>{escape(link)}</code>)" if link else "") + "</p></section>")

    out.append('<section class="page"><h2>Charts</h2>')
    for chart in charts_of(c, cert.evidence.profile, readings_of(cert)):
        out.append(svg(chart))
    out.append('<p class="small">Drawn from at most 600 points per series (min and max per bucket); every claim '
               "uses every reading. Shaded: red beyond the envelope, amber the warning band and excursions.</p>"
               "</section>")

    out.append("<section><h2>Excursions</h2>")
    if c.excursions:
        out.append("<table><tr><th>test</th><th>severity</th><th>peak (limit)</th><th>from / to (seqs)</th>"
                   "<th>duration</th><th>place</th><th>custodian then</th></tr>")
        for e in c.excursions:
            who = "-"
            if e.custody:
                who = (f"owner {', '.join(e.custody.owners) or '-'}; carrier "
                       f"{', '.join(e.custody.carriers) or 'none (at a site)'}")
            place = f"{e.place.lat:.4f}, {e.place.lon:.4f}" if e.place else "-"
            out.append(f'<tr><td>{e.test}</td><td class="{e.severity}">{e.severity}</td><td>{e.peak:g} '
                       f"({escape(e.limit_crossed)})</td><td>{escape(e.start)}<br>{escape(e.end)} "
                       f"({e.start_seq}-{e.end_seq})</td><td>{_duration(e.duration_s)}</td><td>{place}</td>"
                       f"<td>{escape(who)}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>None: no reading in a warning band or beyond the envelope.</p>")
    if k.gaps or k.silent:
        out.append("<h2>Data gaps</h2><ul>")
        out += [f"<li>seqs {g.first_seq}-{g.last_seq} never received</li>" for g in k.gaps]
        out += [f"<li>silent {_duration(s.seconds)} between seq {s.after_seq} ({escape(s.start)}) and "
                f"{s.before_seq} ({escape(s.end)})</li>" for s in k.silent]
        out.append("</ul>")
    out.append("<h2>Custody</h2>")
    cu = c.custody
    if cu.events:
        out.append(f"<p>Pack {escape(cu.serial or '-')}: chain of {len(cu.events)} signed event(s) "
                   + ("intact" if cu.chain_intact else "<b>broken</b>: " + escape("; ".join(cu.problems)))
                   + "</p><table><tr><th>when</th><th>event</th><th>by</th><th>to</th><th>where</th></tr>")
        for s in cu.events:
            out.append(f"<tr><td>{escape(s.ts)}</td><td>{escape(s.kind)} ({escape(s.event_id)})</td>"
                       f"<td>{escape(s.actor)}</td><td>{escape(s.to or '')}</td><td>{escape(s.place or '')}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No custody events on record.</p>")
    out.append('<h2>Rules</h2><table><tr><th>rule</th><th>verdict</th><th>when</th></tr>')
    out += [f"<tr><td>{r.id}</td><td>{r.verdict}</td><td>{escape(r.when)}</td></tr>" for r in RULES]
    out.append("</table></section>")
    return "".join(out)


def certificate_html(cert: PackCertificate | ShipmentCertificate, link: str | None = None) -> str:
    packs = [cert] if isinstance(cert, PackCertificate) else cert.packs
    title = (f"Condition certificate {cert.subject.device_id}" if isinstance(cert, PackCertificate)
             else f"Condition certificate, shipment {cert.shipment_id}")
    head = ""
    if isinstance(cert, ShipmentCertificate):
        head = (f'<section class="page"><h1>Shipment {escape(cert.shipment_id)}</h1><div class="verdict '
                f'{VERDICT_CLASS[cert.verdict]}">{escape(cert.verdict.upper())}</div><table><tr><th>pack</th>'
                "<th>verdict</th><th>rule</th></tr>"
                + "".join(f"<tr><td>{escape(p.subject.device_id)}</td><td>{p.claims.overall.verdict}</td>"
                          f"<td>{escape(p.claims.overall.rule)}</td></tr>" for p in cert.packs)
                + "</table></section>")
    body = "".join(_pack(p, link and (link if isinstance(cert, PackCertificate) else None)) for p in packs)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body>{head}{body}</body></html>")
