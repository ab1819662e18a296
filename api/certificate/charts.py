"""The certificate's charts as values, drawn by two renderers (inline SVG for HTML, fpdf2 for PDF). Pure.

Each chart is the same for both: the series (downsampled for drawing only, min and max of each
bucket kept so no spike is lost; the claims use every reading), the limit lines and bands of
the profile (UN 38.3 §38.3.4: T.1 pressure, T.2 temperature, T.3 vibration against its curve by
frequency, T.4 shock) and the excursions marked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from packproof.api.certificate.claims import Claims
from packproof.edge.thresholds import Profile, evaluate, t3_limit_g, t4_peak_limit_g
from packproof.reading import Reading
from packproof.timefmt import epoch_of

MAX_POINTS = 600  # drawn per series: min and max of each of 300 buckets
RED, AMBER, BLUE, GREY = "#c0392b", "#e6a23c", "#1f5fa8", "#888888"


@dataclass(frozen=True, slots=True)
class Line:
    points: tuple[tuple[float, float], ...]
    colour: str
    width: float = 1.0
    dashed: bool = False
    label: str = ""


@dataclass(frozen=True, slots=True)
class Band:
    """A horizontal band y0..y1 (the warning band, the region beyond the envelope)."""

    y0: float
    y1: float
    colour: str
    label: str


@dataclass(frozen=True, slots=True)
class Span:
    """A vertical span x0..x1 (an excursion's time)."""

    x0: float
    x1: float
    colour: str


@dataclass(frozen=True, slots=True)
class Dot:
    x: float
    y: float
    colour: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    x_label: str
    y_label: str
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    time_axis: bool  # x is epoch seconds, labelled as hours from the first reading
    lines: tuple[Line, ...] = ()
    bands: tuple[Band, ...] = ()
    spans: tuple[Span, ...] = ()
    dots: tuple[Dot, ...] = ()
    notes: tuple[str, ...] = field(default=())


def downsample(points: Sequence[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most `limit` points: each bucket's min and max in time order, so peaks survive."""
    if len(points) <= limit:
        return list(points)
    buckets = limit // 2
    size = len(points) / buckets
    out: list[tuple[float, float]] = []
    for b in range(buckets):
        chunk = points[int(b * size):int((b + 1) * size)]
        if not chunk:
            continue
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out += sorted({lo, hi})
    return out


def _range(values: Sequence[float], *extra: float) -> tuple[float, float]:
    lo, hi = min([*values, *extra]), max([*values, *extra])
    pad = (hi - lo) * 0.08 or 1.0
    return lo - pad, hi + pad


def _spans(claims: Claims, test: str, t0: float, readings: Sequence[Reading]) -> tuple[Span, ...]:
    return tuple(Span(epoch_of(e.start) - t0, max(epoch_of(e.end) - t0, epoch_of(e.start) - t0 + 1),
                      RED if e.severity == "violation" else AMBER)
                 for e in claims.excursions if e.test == test)


def charts_of(claims: Claims, profile: Profile, readings: Sequence[Reading]) -> list[Chart]:
    if not readings:
        return []
    t0 = readings[0].epoch
    xs = [r.epoch - t0 for r in readings]
    x_range = (0.0, max(xs[-1], 1.0))
    out = []

    temps = [r.temperature_c for r in readings]
    y = _range(temps, profile.warn_temp_high_c, profile.warn_temp_low_c)
    out.append(Chart(
        "Temperature (T.2)", "hours from the first reading", "°C", x_range, y, True,
        lines=(Line(tuple(downsample(list(zip(xs, temps, strict=True)))), BLUE),),
        bands=(Band(profile.t2_max_c, max(y[1], profile.t2_max_c), RED, f"beyond T.2 (> {profile.t2_max_c:g} °C)"),
               Band(profile.warn_temp_high_c, profile.t2_max_c, AMBER, f"warning (> {profile.warn_temp_high_c:g} °C)"),
               Band(profile.t2_min_c, profile.warn_temp_low_c, AMBER, f"warning (< {profile.warn_temp_low_c:g} °C)"),
               Band(min(y[0], profile.t2_min_c), profile.t2_min_c, RED, f"beyond T.2 (< {profile.t2_min_c:g} °C)")),
        spans=_spans(claims, "T.2", t0, readings),
        notes=(f"MKT {claims.mkt_c:.2f} °C" if claims.mkt_c is not None else "",)))

    freqs = [r.vibration.freq_hz for r in readings]
    peaks = [r.vibration.peak_g for r in readings]
    f_hi = max(max(freqs), profile.t3_max_hz) * 1.05
    curve = [(f, t3_limit_g(profile, f)) for f in _grid(0.0, f_hi, 240)]
    flagged = [Dot(r.vibration.freq_hz, r.vibration.peak_g, RED if c.severity == "violation" else AMBER)
               for r in readings for c in evaluate(profile, r) if c.test == "T.3"]
    plain = downsample(sorted(zip(freqs, peaks, strict=True)), MAX_POINTS)
    out.append(Chart(
        "Vibration against the T.3 sweep", "frequency (Hz)", "peak g", (0.0, f_hi),
        (0.0, max([*peaks, profile.t3_cap_g]) * 1.1), False,
        lines=(Line(tuple(curve), RED, 1.5, label="T.3 limit"),
               Line(tuple((f, g * profile.warn_vibration_fraction) for f, g in curve), AMBER, 1.0, True,
                    "warning")),
        dots=tuple(Dot(f, g, BLUE) for f, g in plain) + tuple(flagged[:MAX_POINTS])))

    shocks = [r.shock.peak_g for r in readings]
    limit = t4_peak_limit_g(profile)
    out.append(Chart(
        "Shock (T.4)", "hours from the first reading", "peak g", x_range, (0.0, max([*shocks, limit]) * 1.1), True,
        lines=(Line(tuple(downsample(list(zip(xs, shocks, strict=True)))), BLUE),
               Line(((0.0, limit), (x_range[1], limit)), RED, 1.5, label=f"T.4 {limit:.4g} g"),
               Line(((0.0, profile.warn_shock_g), (x_range[1], profile.warn_shock_g)), AMBER, 1.0, True, "warning")),
        spans=_spans(claims, "T.4", t0, readings)))

    kpa = [r.pressure_kpa for r in readings]
    y = _range(kpa, profile.t1_min_kpa, profile.warn_pressure_kpa)
    out.append(Chart(
        "Pressure (T.1)", "hours from the first reading", "kPa", x_range, (max(0.0, min(y[0], 0.0)), y[1]), True,
        lines=(Line(tuple(downsample(list(zip(xs, kpa, strict=True)))), BLUE),),
        bands=(Band(0.0, profile.t1_min_kpa, RED, f"beyond T.1 (< {profile.t1_min_kpa:g} kPa)"),
               Band(profile.t1_min_kpa, profile.warn_pressure_kpa, AMBER,
                    f"warning (< {profile.warn_pressure_kpa:g} kPa)")),
        spans=_spans(claims, "T.1", t0, readings)))
    return out


def _grid(lo: float, hi: float, n: int) -> list[float]:
    return [lo + (hi - lo) * k / (n - 1) for k in range(n)]


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values in lo..hi."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + k * step, 10) for k in range(int((hi - first) / step) + 1)]


# ---- SVG ----------------------------------------------------------------------------------------

W, H, LEFT, RIGHT, TOP, BOTTOM = 720.0, 260.0, 56.0, 12.0, 26.0, 34.0


def svg(chart: Chart) -> str:
    """The chart as one inline <svg> element (no external asset, no script)."""
    (x0, x1), (y0, y1) = chart.x_range, chart.y_range
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0 or 1) * pw

    def py(y: float) -> float:
        return TOP + (1 - (min(max(y, y0), y1) - y0) / (y1 - y0 or 1)) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:g} {H:g}" class="chart" role="img" '
             f'aria-label="{escape(chart.title)}">',
             f'<text x="{LEFT}" y="16" class="title">{escape(chart.title)}</text>']
    for b in chart.bands:
        top, bottom = py(max(b.y0, b.y1)), py(min(b.y0, b.y1))
        if bottom - top > 0.1:
            parts.append(f'<rect x="{LEFT}" y="{top:.1f}" width="{pw:.1f}" height="{bottom - top:.1f}" '
                         f'fill="{b.colour}" fill-opacity="0.15"><title>{escape(b.label)}</title></rect>')
    for s in chart.spans:
        parts.append(f'<rect x="{px(s.x0):.1f}" y="{TOP}" width="{max(px(s.x1) - px(s.x0), 1.5):.1f}" '
                     f'height="{ph:.1f}" fill="{s.colour}" fill-opacity="0.35" class="excursion"/>')
    for v in ticks(y0, y1):
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(v):.1f}" y2="{py(v):.1f}" class="grid"/>'
                     f'<text x="{LEFT - 4}" y="{py(v) + 3:.1f}" class="tick" text-anchor="end">{v:g}</text>')
    scale = 3600 if chart.time_axis else 1
    for v in ticks(x0 / scale, x1 / scale):
        parts.append(f'<text x="{px(v * scale):.1f}" y="{H - BOTTOM + 14}" class="tick" '
                     f'text-anchor="middle">{v:g}</text>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw:.1f}" height="{ph:.1f}" class="frame"/>')
    for line in chart.lines:
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line.points)
        dash = ' stroke-dasharray="5 3"' if line.dashed else ""
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{line.colour}" stroke-width="{line.width}"{dash}>'
                     f'<title>{escape(line.label)}</title></polyline>')
    for d in chart.dots:
        parts.append(f'<circle cx="{px(d.x):.1f}" cy="{py(d.y):.1f}" r="1.8" fill="{d.colour}"/>')
    parts.append(f'<text x="{LEFT + pw / 2}" y="{H - 4}" class="axis" text-anchor="middle">'
                 f'{escape(chart.x_label)}</text>')
    parts.append(f'<text x="12" y="{TOP + ph / 2}" class="axis" text-anchor="middle" '
                 f'transform="rotate(-90 12 {TOP + ph / 2})">{escape(chart.y_label)}</text>')
    legend = [b.label for b in chart.bands] + [line.label for line in chart.lines if line.label] + [
        n for n in chart.notes if n]
    if legend:
        parts.append(f'<text x="{W - RIGHT}" y="16" class="legend" text-anchor="end">'
                     f'{escape(" · ".join(legend))}</text>')
    parts.append("</svg>")
    return "".join(parts)
