"""A certificate as PDF, drawn in pure Python with fpdf2: no browser, no external renderer.

The same content as the HTML page (`html.py`) and the same charts (`charts.py`, drawn here with
fpdf2's lines, rectangles and circles): page 1 the verdict and summary, then the charts, the
excursion table, the custody timeline, the rules and the QR code of the verification material.
Text is set in DejaVu Sans when the system has it (°, Δ, §); otherwise in the PDF core Helvetica,
with the few characters Latin-1 lacks spelled out.
"""

from __future__ import annotations

import io
from pathlib import Path

import segno
from fpdf import FPDF, FontFace

from packproof.api.certificate.charts import Chart, charts_of, ticks
from packproof.api.certificate.claims import RULES
from packproof.api.certificate.document import PackCertificate, ShipmentCertificate, anchor_summary, readings_of
from packproof.api.certificate.html import _duration, verification_text

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
VERDICT_RGB = {"fit": (30, 107, 44), "inspect before use": (138, 90, 0), "do not install": (160, 36, 22)}
_LATIN1 = {"Δ": "Delta ", "≤": "<=", "≥": ">=", "·": "-", "…": "..."}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


class _Doc(FPDF):
    def __init__(self) -> None:
        super().__init__(format="A4")
        self.set_auto_page_break(True, 14)
        self.set_margins(14, 14, 14)
        self.unicode = False
        for d in FONT_DIRS:
            if (d / "DejaVuSans.ttf").is_file() and (d / "DejaVuSans-Bold.ttf").is_file():
                self.add_font("DejaVu", "", str(d / "DejaVuSans.ttf"))
                self.add_font("DejaVu", "B", str(d / "DejaVuSans-Bold.ttf"))
                self.unicode = True
                break
        self.family = "DejaVu" if self.unicode else "Helvetica"

    def t(self, text: str) -> str:
        if self.unicode:
            return text
        for a, b in _LATIN1.items():
            text = text.replace(a, b)
        return text.encode("latin-1", "replace").decode("latin-1")

    def font(self, size: float, bold: bool = False) -> None:
        self.set_font(self.family, "B" if bold else "", size)

    def para(self, text: str, size: float = 9.5, bold: bool = False, h: float = 4.6) -> None:
        self.font(size, bold)
        self.multi_cell(0, h, self.t(text), align="L", new_x="LMARGIN", new_y="NEXT")

    def heading(self, text: str) -> None:
        self.ln(2)
        self.para(text, 12.5, True, 6)
        self.set_draw_color(180, 180, 180)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(1.5)

    def rows(self, header: list[str], rows: list[list[str]], widths: list[float]) -> None:
        self.font(8)
        with self.table(col_widths=widths, text_align="LEFT", line_height=4.2, padding=0.8,
                        headings_style=FontFace(emphasis="BOLD", fill_color=(243, 243, 243))) as table:
            r = table.row()
            for h in header:
                r.cell(self.t(h))
            for row in rows:
                r = table.row()
                for cell in row:
                    r.cell(self.t(cell))
        self.ln(1)


def _chart(pdf: _Doc, chart: Chart, x: float, y: float, w: float, h: float) -> None:
    (x0, x1), (y0, y1) = chart.x_range, chart.y_range
    left, top, pw, ph = x + 14, y + 7, w - 16, h - 15

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0 or 1) * pw

    def py(v: float) -> float:
        return top + (1 - (min(max(v, y0), y1) - y0) / (y1 - y0 or 1)) * ph

    pdf.font(9, True)
    pdf.text(x, y + 4, pdf.t(chart.title))
    legend = " - ".join([b.label for b in chart.bands] + [ln.label for ln in chart.lines if ln.label]
                        + [n for n in chart.notes if n])
    pdf.font(6)
    pdf.text(x + w - pdf.get_string_width(pdf.t(legend)) - 1, y + 4, pdf.t(legend))
    with pdf.local_context(fill_opacity=0.15):
        for b in chart.bands:
            t, bt = py(max(b.y0, b.y1)), py(min(b.y0, b.y1))
            if bt - t > 0.05:
                pdf.set_fill_color(*_rgb(b.colour))
                pdf.rect(left, t, pw, bt - t, style="F")
    with pdf.local_context(fill_opacity=0.35):
        for s in chart.spans:
            pdf.set_fill_color(*_rgb(s.colour))
            pdf.rect(px(s.x0), top, max(px(s.x1) - px(s.x0), 0.5), ph, style="F")
    pdf.set_draw_color(225, 225, 225)
    pdf.set_line_width(0.1)
    pdf.font(6)
    for v in ticks(y0, y1):
        pdf.line(left, py(v), left + pw, py(v))
        label = f"{v:g}"
        pdf.text(left - pdf.get_string_width(label) - 1, py(v) + 1, label)
    scale = 3600 if chart.time_axis else 1
    for v in ticks(x0 / scale, x1 / scale):
        label = f"{v:g}"
        pdf.text(px(v * scale) - pdf.get_string_width(label) / 2, top + ph + 3.5, label)
    pdf.text(left + pw / 2 - pdf.get_string_width(pdf.t(chart.x_label)) / 2, top + ph + 7, pdf.t(chart.x_label))
    pdf.text(x, top - 1.5, pdf.t(chart.y_label))
    pdf.set_draw_color(150, 150, 150)
    pdf.rect(left, top, pw, ph)
    for line in chart.lines:
        pdf.set_draw_color(*_rgb(line.colour))
        pdf.set_line_width(0.25 * line.width)
        if line.dashed:
            pdf.set_dash_pattern(dash=1.2, gap=0.8)
        pdf.polyline([(px(a), py(b)) for a, b in line.points])
        pdf.set_dash_pattern()
    for d in chart.dots:
        pdf.set_fill_color(*_rgb(d.colour))
        pdf.circle(px(d.x), py(d.y), 0.35, style="F")
    pdf.set_line_width(0.2)


def _qr_png(text: str) -> io.BytesIO:
    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="png", scale=4, border=2)
    buf.seek(0)
    return buf


def _pack(pdf: _Doc, cert: PackCertificate, link: str | None) -> None:
    c = cert.claims
    pdf.add_page()
    pdf.image(_qr_png(verification_text(cert, link)), x=pdf.w - pdf.r_margin - 30, y=pdf.t_margin, w=30)
    pdf.set_right_margin(pdf.r_margin + 33)
    pdf.para(f"Condition certificate · pack {cert.subject.device_id}", 16, True, 8)
    pdf.para(f"Serial {cert.subject.serial or '(no pack registration)'} · shipment {cert.subject.shipment_id} · "
             f"issued {cert.issued_at}")
    pdf.para(f"Profile {c.profile} (UN Manual of Tests and Criteria §38.3, {c.edition}) · readings "
             f"{c.period_start or '-'} to {c.period_end or '-'}")
    pdf.set_right_margin(14)
    pdf.ln(2)
    pdf.set_text_color(*VERDICT_RGB[c.overall.verdict])
    pdf.para(f"VERDICT: {c.overall.verdict.upper()}", 20, True, 10)
    pdf.set_text_color(0, 0, 0)
    pdf.para(f"Rule {c.overall.rule}: {c.overall.rule_text}. Rules that hold: {', '.join(c.overall.reasons)}.")
    pdf.ln(1)
    pdf.rows(["test", "verdict", "violations", "warnings", "rule"],
             [[f"{t.test} {t.name}", t.verdict, str(t.violations), str(t.warnings), t.rule] for t in c.tests],
             [40, 18, 18, 18, 88])
    if c.un38_3:
        u = c.un38_3
        pdf.para(f"UN 38.3 test summary {u.report_id}, {u.lab}, {u.date}, {u.manual_revision}: "
                 f"{', '.join(f'{k} {v}' for k, v in u.results.items())} (model {u.model}, {u.chemistry}, "
                 f"{u.mass_kg:g} kg; registered in {u.registration_event})")
    else:
        pdf.para("No UN 38.3 test summary on record (no pack registration names this tracker).", bold=True)
    pdf.ln(1)
    pdf.rows(["quantity", "min (at)", "max (at)", "in warning band", "beyond envelope"],
             [[f"{q.quantity} ({q.test})",
               f"{q.min.value:g} (seq {q.min.seq}, {q.min.ts})" if q.min else "-",
               f"{q.max.value:g} (seq {q.max.seq}, {q.max.ts})" if q.max else "-",
               _duration(q.time_in_warning_s), _duration(q.time_beyond_s)] for q in c.quantities],
             [32, 48, 48, 27, 27])
    k = c.completeness
    mkt = f"{c.mkt_c:.5g} °C" if c.mkt_c is not None else "-"
    pdf.para(f"Mean kinetic temperature {mkt} (USP <1079.2>, ΔH = 83.144 kJ/mol) · readings expected "
             f"{k.expected:,} (seq {k.first_registered_seq} to {k.last_seq}), carried {k.carried:,}, missing "
             f"{k.missing:,} in {len(k.gaps)} gap(s), {len(k.silent)} silent period(s) over {k.silent_limit_s:g} s, "
             f"unsealed {k.unsealed:,} · {len(c.excursions)} excursion(s)")
    pdf.ln(1)
    pdf.para("Bound to log checkpoint:\n" + cert.evidence.log.checkpoint.strip(), 7, h=3.4)
    pdf.para(anchor_summary(cert), 7, h=3.4)
    pdf.para("Check it offline: packproof verify --certificate FILE.json --ledger-key KEY"
             + (f" (the JSON: {link})" if link else ""), 8)

    pdf.add_page()
    pdf.para("Charts", 12.5, True, 6)
    y = pdf.get_y()
    for chart in charts_of(c, cert.evidence.profile, readings_of(cert)):
        _chart(pdf, chart, pdf.l_margin, y, pdf.w - 28, 62)
        y += 64
    pdf.set_y(y)
    pdf.para("Drawn from at most 600 points per series (min and max per bucket); every claim uses every reading.",
             7)

    pdf.add_page()
    pdf.heading("Excursions")
    if c.excursions:
        rows = []
        for e in c.excursions:
            who = "-"
            if e.custody:
                who = (f"owner {', '.join(e.custody.owners) or '-'}; carrier "
                       f"{', '.join(e.custody.carriers) or 'none (at a site)'}")
            rows.append([e.test, e.severity, f"{e.peak:g} ({e.limit_crossed})", f"{e.start} to {e.end} "
                         f"(seq {e.start_seq}-{e.end_seq})", _duration(e.duration_s),
                         f"{e.place.lat:.4f}, {e.place.lon:.4f}" if e.place else "-", who])
        pdf.rows(["test", "severity", "peak (limit)", "when", "duration", "place", "custodian then"], rows,
                 [10, 16, 44, 40, 16, 22, 34])
    else:
        pdf.para("None: no reading in a warning band or beyond the envelope.")
    if k.gaps or k.silent:
        pdf.heading("Data gaps")
        for g in k.gaps:
            pdf.para(f"seqs {g.first_seq}-{g.last_seq} never received")
        for s in k.silent:
            pdf.para(f"silent {_duration(s.seconds)} between seq {s.after_seq} ({s.start}) and "
                     f"{s.before_seq} ({s.end})")
    pdf.heading("Custody")
    cu = c.custody
    if cu.events:
        pdf.para(f"Pack {cu.serial}: chain of {len(cu.events)} signed event(s) "
                 + ("intact" if cu.chain_intact else "BROKEN: " + "; ".join(cu.problems)))
        pdf.rows(["when", "event", "by", "to", "where"],
                 [[s.ts, f"{s.kind} ({s.event_id})", s.actor, s.to or "", s.place or ""] for s in cu.events],
                 [40, 56, 26, 26, 34])
    else:
        pdf.para("No custody events on record.")
    pdf.heading("Rules")
    pdf.rows(["rule", "verdict", "when"], [[r.id, r.verdict, r.when] for r in RULES], [32, 30, 120])


def certificate_pdf(cert: PackCertificate | ShipmentCertificate, link: str | None = None) -> bytes:
    pdf = _Doc()
    pdf.set_title(f"Condition certificate {cert.subject.device_id}" if isinstance(cert, PackCertificate)
                  else f"Condition certificate, shipment {cert.shipment_id}")
    pdf.set_creator("packproof")
    if isinstance(cert, ShipmentCertificate):
        pdf.add_page()
        pdf.para(f"Shipment {cert.shipment_id}", 16, True, 8)
        pdf.set_text_color(*VERDICT_RGB[cert.verdict])
        pdf.para(f"VERDICT: {cert.verdict.upper()}", 20, True, 10)
        pdf.set_text_color(0, 0, 0)
        pdf.rows(["pack", "verdict", "rule"], [[p.subject.device_id, p.claims.overall.verdict, p.claims.overall.rule]
                                              for p in cert.packs], [60, 50, 72])
        for p in cert.packs:
            _pack(pdf, p, None)
    else:
        _pack(pdf, cert, link)
    return bytes(pdf.output())
