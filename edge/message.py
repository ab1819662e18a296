"""One MQTT message as the ingestor keeps it from arrival to acknowledgement, and its refusal.

The paho thread makes a `Message` for every PUBLISH it hands over; the check stage and
settlement refer to it for what they store or quarantine, and the writer acknowledges its
`mid` once the transaction holding it has committed.
"""

from __future__ import annotations

from dataclasses import dataclass

from packproof.errors import InvalidReading
from packproof.records import IngestBatch, Refusal
from packproof.store import kept_evidence


@dataclass(slots=True)
class Message:
    """A received PUBLISH: where and what, paho's message id and QoS (for the PUBACK), when it arrived.

    Not frozen: one is made per message on paho's network thread, where every µs is the broker's too.
    """

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: float  # time.time() on arrival


def refusal(m: Message, exc: InvalidReading) -> Refusal:
    """The quarantine row for a message refused with `exc`: the device and shipment as its topic names them."""
    parts = m.topic.split("/")
    device = parts[3] if len(parts) == 5 else None
    shipment = parts[2] if len(parts) == 5 else None
    payload, reason = kept_evidence(m.payload, exc.message)
    return Refusal(m.received_at, m.topic, payload, exc.code, reason, device, shipment)


def quarantine(batch: IngestBatch, m: Message, exc: InvalidReading) -> None:
    """Quarantine `m` in `batch`, counted under quarantined:<code>."""
    batch.quarantine.append(refusal(m, exc))
    batch.count(f"quarantined:{exc.code}")
