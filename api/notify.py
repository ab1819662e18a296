"""Custody notifications: one MQTT message per accepted custody event, so a party's systems follow without polling.

Topic `packproof/v1/{shipment_id}/custody` (an event that names no shipment: `packproof/v1/-/custody`),
QoS 1, retained: a subscriber that connects later gets the latest event at once, then each
new one. The payload is `{"event_id", "hash", "event": {...the signed event...}}`: the event is
self-authenticating (its party's signature), so a subscriber need not trust the broker.

A notification is a convenience, never part of the record: the event is accepted (and answered
201) when its transaction commits, whether or not a broker is reachable. paho runs its own
network thread and reconnects by itself; `publish` only queues, so a broker that is down costs
the request nothing, and what could not be sent is counted (`dropped`), not retried.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

NO_SHIPMENT = "-"  # the topic level of an event that names no shipment (a pack registered before it ships)


def custody_topic(shipment_id: str | None) -> str:
    """`packproof/v1/{shipment}/custody`: beside the devices' topics of the same shipment (docs/design.md)."""
    return f"packproof/v1/{shipment_id or NO_SHIPMENT}/custody"


def notifier_client_id() -> str:
    """A client id of this process alone: MQTT 3.1.1 §3.1.4 has the broker disconnect an existing
    session when another connects with the same id, so two API processes with one fixed id would
    knock each other off in turn. The pid names the process in the broker's log; the random part
    keeps ids apart across hosts and pid reuse. 23 bytes at most, the length §3.1.3.1 obliges
    every broker to accept."""
    return f"pp-api-{os.getpid() % 100000}-{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """Where to publish: the broker and the service login the ACL lets publish custody topics."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    client_id: str = field(default_factory=lambda: notifier_client_id())


class CustodyNotifier:
    """A paho client started once per API process; `notify` never blocks on the network."""

    def __init__(self, target: MqttTarget) -> None:
        self.target = target
        self.sent = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=target.client_id,
                                  protocol=mqtt.MQTTv311)
        if target.username:
            self.client.username_pw_set(target.username, target.password)
        if target.tls_ca:
            self.client.tls_set(ca_certs=target.tls_ca)
        self.client.reconnect_delay_set(1, 30)

    def start(self) -> None:
        """Connect in the background: an unreachable broker is retried by paho's thread, never awaited."""
        try:
            self.client.connect_async(self.target.host, self.target.port, keepalive=30)
        except (OSError, ValueError) as exc:  # a host name that does not resolve, a bad port
            log.warning("custody notifications off: cannot reach the broker at %s:%d (%s)",
                        self.target.host, self.target.port, exc)
        self.client.loop_start()

    def notify(self, shipment_id: str | None, event_id: str, event_hash: str, event: dict[str, Any]) -> bool:
        """Queue the notification; False (and counted as dropped) when no broker connection is up."""
        payload = orjson.dumps({"event_id": event_id, "hash": event_hash, "event": event})
        with self._lock:
            info = self.client.publish(custody_topic(shipment_id), payload, qos=1, retain=True)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self.sent += 1
                return True
            self.dropped += 1
        if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
            log.warning("custody notification for %s not published (%s); %d dropped so far: the event is "
                        "accepted and sealed all the same", event_id, mqtt.error_string(info.rc), self.dropped)
        return False

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
