"""A pack's condition series for the dashboard's charts (issue 18): kept per device, read on by
seq, downsampled with LTTB (packproof/lttb.py) and drawn against the UN 38.3 bands of the
shipment's profile (edge/thresholds.py, UN Manual of Tests and Criteria §38.3.4).

A pack with 100,000 readings is 100,000 JSON bodies to decode; doing that per chart refresh
would make every live update cost the whole history. `SeriesCache` keeps each device's decoded
columns and reads on from the last seq it holds (`Store.device_series`, by the readings'
(device_id, seq) index); a reading that arrives late, below that seq (a tracker's buffer
flushed after an outage), shows as a count that no longer matches the device's maintained
`reading_count`, and the device's columns are read again. Decoding and LTTB run in a worker
thread, never on the event loop. The cache is bounded: at most 64 devices and 2,000,000
readings held (about 160 MB), the least recently used device out first.
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import orjson

from packproof.edge.thresholds import BUILTIN_PROFILES, Profile, t3_limit_g, t4_peak_limit_g
from packproof.lttb import lttb
from packproof.reading import epoch_seconds
from packproof.records import SeriesRow
from packproof.store import Store

Quantity = Literal["temperature_c", "vibration.peak_g", "shock.peak_g", "pressure_kpa"]
QUANTITIES: tuple[Quantity, ...] = ("temperature_c", "vibration.peak_g", "shock.peak_g", "pressure_kpa")
UNITS = {"temperature_c": "°C", "vibration.peak_g": "g", "shock.peak_g": "g", "pressure_kpa": "kPa"}
PAGE = 20_000  # rows read per query while reading a device on


@dataclass(slots=True)
class DeviceColumns:
    """One device's readings as columns, in seq order."""

    seq: array[int] = field(default_factory=lambda: array("q"))
    t: array[float] = field(default_factory=lambda: array("d"))
    temperature_c: array[float] = field(default_factory=lambda: array("d"))
    vibration_g: array[float] = field(default_factory=lambda: array("d"))
    vibration_hz: array[float] = field(default_factory=lambda: array("d"))
    shock_g: array[float] = field(default_factory=lambda: array("d"))
    shock_ms: array[float] = field(default_factory=lambda: array("d"))
    pressure_kpa: array[float] = field(default_factory=lambda: array("d"))
    lat: array[float] = field(default_factory=lambda: array("d"))  # NaN: the reading carried no location
    lon: array[float] = field(default_factory=lambda: array("d"))

    @property
    def last_seq(self) -> int:
        return self.seq[-1] if self.seq else -1

    def extend(self, rows: list[SeriesRow]) -> None:
        """Decode and append rows (seq order, above `last_seq`)."""
        for row in rows:
            r = orjson.loads(row.body)
            self.seq.append(row.seq)
            self.t.append(epoch_seconds(r["ts"]))
            self.temperature_c.append(r["temperature_c"])
            self.vibration_g.append(r["vibration"]["peak_g"])
            self.vibration_hz.append(r["vibration"]["freq_hz"])
            self.shock_g.append(r["shock"]["peak_g"])
            self.shock_ms.append(r["shock"]["duration_ms"])
            self.pressure_kpa.append(r["pressure_kpa"])
            where = r.get("location")
            self.lat.append(where["lat"] if where else math.nan)
            self.lon.append(where["lon"] if where else math.nan)

    def values(self, quantity: Quantity) -> array[float]:
        return {"temperature_c": self.temperature_c, "vibration.peak_g": self.vibration_g,
                "shock.peak_g": self.shock_g, "pressure_kpa": self.pressure_kpa}[quantity]


@dataclass(frozen=True, slots=True)
class Band:
    """A limit line: `side` says where a value is beyond it."""

    label: str
    value: float
    severity: Literal["violation", "warning"]
    side: Literal["above", "below"]


@dataclass(frozen=True, slots=True)
class Series:
    """What a chart draws: the picked points (seq, time, value), the bands and, for vibration, the
    T.3 limit at each point's frequency (it depends on the frequency)."""

    quantity: Quantity
    unit: str
    total: int  # readings in the device's series
    seq: list[int]
    t: list[float]
    y: list[float]
    limit: list[float] | None
    bands: list[Band]


@dataclass(frozen=True, slots=True)
class Track:
    """The route: located readings, thinned evenly to at most the points asked for (the ends kept)."""

    total: int
    seq: list[int]
    t: list[float]
    lat: list[float]
    lon: list[float]


def bands(profile: Profile, quantity: Quantity) -> list[Band]:
    """The profile's limits for one quantity; T.3's limit varies with frequency (`Series.limit`),
    so vibration has only its warning fraction's lowest line here."""
    e = profile.edition
    if quantity == "temperature_c":
        return [Band(f"T.2 upper {profile.t2_max_c:g} °C ({e})", profile.t2_max_c, "violation", "above"),
                Band(f"warning {profile.warn_temp_high_c:g} °C", profile.warn_temp_high_c, "warning", "above"),
                Band(f"warning {profile.warn_temp_low_c:g} °C", profile.warn_temp_low_c, "warning", "below"),
                Band(f"T.2 lower {profile.t2_min_c:g} °C ({e})", profile.t2_min_c, "violation", "below")]
    if quantity == "pressure_kpa":
        return [Band(f"warning {profile.warn_pressure_kpa:g} kPa", profile.warn_pressure_kpa, "warning", "below"),
                Band(f"T.1 {profile.t1_min_kpa:g} kPa ({e})", profile.t1_min_kpa, "violation", "below")]
    if quantity == "shock.peak_g":
        peak = t4_peak_limit_g(profile)
        return [Band(f"T.4 {peak:.4g} g for {profile.t4_duration_ms:g} ms ({e})", peak, "violation", "above"),
                Band(f"handling {profile.warn_shock_g:g} g", profile.warn_shock_g, "warning", "above")]
    return []


def downsample(cols: DeviceColumns, quantity: Quantity, points: int, profile: Profile) -> Series:
    """Pure given the columns: LTTB over (time, value); vibration's T.3 limit at each picked point."""
    ys = cols.values(quantity)
    picked = lttb(cols.t, ys, points)
    limit = ([t3_limit_g(profile, cols.vibration_hz[i]) for i in picked] if quantity == "vibration.peak_g"
             else None)
    return Series(quantity, UNITS[quantity], len(cols.seq), [cols.seq[i] for i in picked], [cols.t[i] for i in picked],
                  [ys[i] for i in picked], limit, bands(profile, quantity))


def track(cols: DeviceColumns, points: int) -> Track:
    located = [i for i in range(len(cols.seq)) if not math.isnan(cols.lat[i])]
    if len(located) > points >= 2:
        step = (len(located) - 1) / (points - 1)
        located = [located[round(k * step)] for k in range(points)]
    return Track(len(cols.seq), [cols.seq[i] for i in located], [cols.t[i] for i in located],
                 [cols.lat[i] for i in located], [cols.lon[i] for i in located])


def profile_of(name: str) -> Profile:
    """The shipment's profile by name; a name this API does not know is judged by the default
    (the ingestor refuses to register one, docs/design.md)."""
    return BUILTIN_PROFILES.get(name) or BUILTIN_PROFILES["un38.3-cell"]


class SeriesCache:
    """Decoded columns per device, read on by seq, at most `max_devices` kept (least recently used out)."""

    def __init__(self, max_devices: int = 64, max_readings: int = 2_000_000, max_answers: int = 512) -> None:
        # 2,000,000 readings held is about 160 MB of columns (ten 8-byte values a reading)
        self.max_devices, self.max_readings, self.max_answers = max_devices, max_readings, max_answers
        self._cols: OrderedDict[str, DeviceColumns] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        # answers by (device, quantity, points, profile, readings held): a pack that no longer grows
        # (delivered, or viewed by many) is downsampled once
        self._answers: OrderedDict[tuple[str, str, int, str, int], Series | Track] = OrderedDict()

    async def series(self, device_id: str, cols: DeviceColumns, quantity: Quantity, points: int,
                     profile: Profile) -> Series:
        """`downsample`, in a worker thread, remembered while the device's columns stay the same."""
        found = await self._remembered((device_id, quantity, points, profile.name, len(cols.seq)),
                                       lambda: downsample(cols, quantity, points, profile))
        assert isinstance(found, Series)
        return found

    async def track(self, device_id: str, cols: DeviceColumns, points: int) -> Track:
        """`track`, in a worker thread, remembered as `series` is."""
        found = await self._remembered((device_id, "location", points, "", len(cols.seq)), lambda: track(cols, points))
        assert isinstance(found, Track)
        return found

    async def _remembered(self, key: tuple[str, str, int, str, int],
                          compute: Callable[[], Series | Track]) -> Series | Track:
        found = self._answers.get(key)
        if found is None:
            found = await asyncio.to_thread(compute)
            self._answers[key] = found
            while len(self._answers) > self.max_answers:
                self._answers.popitem(last=False)
        self._answers.move_to_end(key)
        return found

    async def columns(self, store: Store, device_id: str, stored: int) -> DeviceColumns:
        """The device's columns, up to date with the store; `stored` is its maintained reading count."""
        lock = self._locks.setdefault(device_id, asyncio.Lock())
        async with lock:
            cols = self._cols.get(device_id)
            if cols is None:
                cols = DeviceColumns()
            while True:
                rows = await store.device_series(device_id, cols.last_seq, PAGE)
                if rows:
                    await asyncio.to_thread(cols.extend, rows)
                if len(rows) < PAGE:
                    break
            if len(cols.seq) < stored:  # a late reading below the last seq: read the device again
                cols = DeviceColumns()
                while rows := await store.device_series(device_id, cols.last_seq, PAGE):
                    await asyncio.to_thread(cols.extend, rows)
            self._cols[device_id] = cols
            self._cols.move_to_end(device_id)
            held = sum(len(c.seq) for c in self._cols.values())
            while len(self._cols) > 1 and (len(self._cols) > self.max_devices or held > self.max_readings):
                gone, dropped = self._cols.popitem(last=False)  # the least recently used, never this one
                held -= len(dropped.seq)
                self._locks.pop(gone, None)
            return cols
