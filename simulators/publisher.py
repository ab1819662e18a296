"""Publish a fleet's readings over MQTT at a set rate (QoS 1), one connection per device.

Each device has its own MQTT client, as a real tracker would, with a retained
`online` status and `offline` as its Last Will. Publishing is paced by a clock (not by
sleeping a fixed time per message), so the rate holds however long publishing takes.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from packproof.errors import BrokerError
from simulators.fleet import SimDevice


@dataclass(slots=True)
class PublishStats:
    sent: int = 0
    acked: int = 0
    started: float = 0.0

    @property
    def rate(self) -> float:
        elapsed = max(time.monotonic() - self.started, 1.0)  # no wild figure from the first burst
        return self.sent / elapsed


class FleetPublisher:
    def __init__(self, fleet: list[SimDevice], *, host: str = "127.0.0.1", port: int = 1883,
                 rate: float = 1.0, qos: int = 1, credentials: dict[str, str] | None = None,
                 tls_ca: str | None = None) -> None:
        """`credentials`: device id -> MQTT password; each device logs in as its own id."""
        if rate <= 0:
            raise ValueError(f"rate must be > 0 readings/s per device, got {rate}")
        self.fleet, self.host, self.port, self.rate, self.qos = fleet, host, port, rate, qos
        self.stats = PublishStats()
        self._pending: collections.deque[mqtt.MQTTMessageInfo] = collections.deque()
        self._clients: list[mqtt.Client] = []
        self._credentials = credentials or {}
        self._tls_ca = tls_ca
        self._refused: list[str] = []

    def _count_acked(self) -> None:
        """Acknowledged = telemetry publishes the broker has PUBACKed (QoS 1), oldest first."""
        pending = self._pending
        while pending and pending[0].is_published():
            pending.popleft()
            self.stats.acked += 1

    def connect(self, timeout: float = 10.0) -> None:
        pending = []
        for d in self.fleet:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{d.device_id}",
                            protocol=mqtt.MQTTv311)
            if d.device_id in self._credentials:
                c.username_pw_set(d.device_id, self._credentials[d.device_id])
            if self._tls_ca:
                c.tls_set(ca_certs=self._tls_ca)
            c.will_set(d.status_topic, b"offline", qos=1, retain=True)
            connected = threading.Event()

            def on_connect(cl: mqtt.Client, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object,
                           d: SimDevice = d, ev: threading.Event = connected) -> None:
                if rc.is_failure:
                    self._refused.append(f"{d.device_id}: {rc}")
                else:
                    cl.publish(d.status_topic, b"online", qos=0, retain=True)
                ev.set()

            c.on_connect = on_connect
            try:
                c.connect(self.host, self.port, keepalive=30)
            except OSError as exc:
                self.close()
                raise BrokerError(f"simulator cannot reach the MQTT broker at {self.host}:{self.port}: {exc}") from exc
            c.loop_start()
            self._clients.append(c)
            pending.append(connected)
        deadline = time.monotonic() + timeout
        for ev in pending:
            if not ev.wait(max(0.0, deadline - time.monotonic())):
                self.close()
                raise BrokerError(f"no CONNACK from the MQTT broker at {self.host}:{self.port} in {timeout}s")
        if self._refused:
            self.close()
            raise BrokerError(f"the MQTT broker refused {len(self._refused)} device(s), e.g. {self._refused[0]}; "
                              "give their passwords with --credentials (see `packproof simulate --help`)")

    def run(self, *, stop: threading.Event, duration: float | None = None,
            count: int | None = None, on_tick: Callable[[PublishStats], None] | None = None) -> PublishStats:
        """Publish a reading per device every 1/rate s until stop, duration or count per device."""
        self.stats.started = t0 = time.monotonic()
        period = 1.0 / self.rate
        k = 0
        last_tick = 0.0
        while not stop.is_set():
            if count is not None and k >= count:
                break
            due = t0 + k * period
            now = time.monotonic()
            if duration is not None and due - t0 >= duration:
                break
            if due > now:
                stop.wait(due - now)
                continue
            wall = time.time()
            for d, c in zip(self.fleet, self._clients, strict=True):
                self._pending.append(c.publish(d.topic, d.reading(wall), qos=self.qos))
            self.stats.sent += len(self.fleet)
            self._count_acked()
            k += 1
            if on_tick is not None and now - last_tick >= 0.25:
                last_tick = now
                on_tick(self.stats)
        if on_tick is not None:
            on_tick(self.stats)
        return self.stats

    def wait_acked(self, timeout: float = 10.0) -> bool:
        """Wait until the broker has acknowledged everything sent (QoS 1)."""
        deadline = time.monotonic() + timeout
        self._count_acked()
        while self.qos and self.stats.acked < self.stats.sent and time.monotonic() < deadline:
            time.sleep(0.02)
            self._count_acked()
        return self.qos == 0 or self.stats.acked >= self.stats.sent

    def close(self) -> None:
        for d, c in zip(self.fleet, self._clients, strict=False):
            c.publish(d.status_topic, b"offline", qos=0, retain=True)
            c.disconnect()
            c.loop_stop()
        self._clients.clear()
