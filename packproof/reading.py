"""The reading contract (docs/design.md, "A reading") and its MQTT topics.

Validation happens when the value is built: strict types, bounds a real sensor can
produce, unknown fields rejected. Ids are restricted to a plain character set so that
their JSON form never needs escaping, which keeps canonical encoding (RFC 8785) exact
and fast in `packproof.canonical`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from packproof.errors import InvalidReading

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# RFC 3339 in UTC with a Z suffix and optional fraction: the device clock as sent.
TS_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"
SIG_PATTERN = r"^[A-Za-z0-9+/]{86}==$"  # base64 of a 64-byte Ed25519 signature

Ident = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Timestamp = Annotated[str, StringConstraints(pattern=TS_PATTERN)]
Signature = Annotated[str, StringConstraints(pattern=SIG_PATTERN)]

MAX_SEQ = 2**53 - 1  # the JSON-safe integer range (RFC 8785 / I-JSON)
G_N = 9.80665  # standard gravity, m/s^2: every "g" in packproof is g_n
# The UN 38.3 profile a shipment registered without one is judged by (edge/thresholds.py defines it).
DEFAULT_PROFILE = "un38.3-cell"

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Vibration(BaseModel):
    """Peak acceleration over the window and its dominant frequency."""

    model_config = _STRICT
    peak_g: float = Field(ge=0, le=1000)
    freq_hz: float = Field(ge=0, le=10000)


class Shock(BaseModel):
    """The largest pulse in the window (0/0 when none)."""

    model_config = _STRICT
    peak_g: float = Field(ge=0, le=10000)
    duration_ms: float = Field(ge=0, le=10000)


class Location(BaseModel):
    model_config = _STRICT
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Reading(BaseModel):
    """One signed sensor reading, exactly the JSON body of a telemetry message."""

    model_config = _STRICT
    v: Literal[1]
    device_id: Ident
    shipment_id: Ident
    seq: int = Field(ge=0, le=MAX_SEQ)
    ts: Timestamp
    temperature_c: float = Field(ge=-100, le=200)
    vibration: Vibration
    shock: Shock
    pressure_kpa: float = Field(ge=0, le=500)
    location: Location | None = None
    sig: Signature | None = None

    @field_validator("ts")
    @classmethod
    def _real_instant(cls, ts: str) -> str:
        epoch_seconds(ts)  # the pattern admits 2026-02-30; the calendar does not
        return ts

    @property
    def reading_id(self) -> str:
        return f"{self.device_id}:{self.seq}"

    @property
    def epoch(self) -> float:
        return epoch_seconds(self.ts)


def epoch_seconds(ts: str) -> float:
    """Seconds since the epoch of an RFC 3339 UTC timestamp; ValueError names a bad one."""
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError as exc:
        raise ValueError(f"{ts!r} is not a real instant: {exc}") from None


TOPIC_PREFIX = "packproof/v1"
TELEMETRY_FILTER = f"{TOPIC_PREFIX}/+/+/telemetry"


def share_group_problem(group: str) -> str | None:
    """Why `group` cannot name an MQTT shared subscription (`$share/<group>/...`), or None."""
    if not group or any(c in group for c in "/+#"):
        return f"share group {group!r} must be a non-empty name without '/', '+' or '#'"
    return None
_ID_RE = re.compile(ID_PATTERN)


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """`packproof/v1/{shipment_id}/{device_id}/{kind}` as a value."""

    shipment_id: str
    device_id: str
    kind: str = "telemetry"

    def __str__(self) -> str:
        return f"{TOPIC_PREFIX}/{self.shipment_id}/{self.device_id}/{self.kind}"

    @classmethod
    def parse(cls, topic: str) -> DeviceTopic:
        """Parse and check a topic; valid ones are cached (one entry per device and kind)."""
        cached = _TOPICS.get(topic)
        if cached is not None:
            return cached
        parsed = cls._parse(topic)
        if len(_TOPICS) >= 100_000:  # bounded: made-up topics must not grow memory
            _TOPICS.clear()
        _TOPICS[topic] = parsed
        return parsed

    @classmethod
    def _parse(cls, topic: str) -> DeviceTopic:
        parts = topic.split("/")
        if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_PREFIX:
            raise InvalidReading(
                "bad_topic",
                f"topic {topic!r} is not of the form {TOPIC_PREFIX}/<shipment_id>/<device_id>/<kind>",
            )
        _, _, shipment_id, device_id, kind = parts
        for name, value in (("shipment_id", shipment_id), ("device_id", device_id)):
            if not _ID_RE.match(value):
                raise InvalidReading("bad_topic", f"topic {topic!r}: {name} {value!r} is not a valid id")
        return cls(shipment_id, device_id, kind)


_TOPICS: dict[str, DeviceTopic] = {}


def parse_reading_id(reading_id: str) -> tuple[str, int]:
    """Split `{device_id}:{seq}`; raises ValueError with a message a person can act on."""
    device_id, sep, seq = reading_id.rpartition(":")
    if not sep or not _ID_RE.match(device_id) or not seq.isascii() or not seq.isdigit():
        raise ValueError(f"reading id {reading_id!r} is not of the form <device_id>:<seq>")
    if len(seq) > 16 or int(seq) > MAX_SEQ:
        raise ValueError(f"reading id {reading_id!r}: seq is above the largest a reading can have ({MAX_SEQ})")
    return device_id, int(seq)
