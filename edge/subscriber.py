"""The ingestor's MQTT side: one persistent session, an inbox with backpressure, and the acknowledgements.

paho runs its own network thread. Each PUBLISH it receives goes into a bounded inbox; when
the inbox is full, paho's thread waits, stops reading the socket, and the broker and TCP
hold the backlog instead of our memory. Nothing is acknowledged on arrival (manual ack,
QoS 1): the ingestor acknowledges a batch's messages (`ack_many`) and publishes the devices'
delivery marks (`queue_acks`, `send_acks`) only after the transaction holding them commits,
so a crash before the commit means redelivery, never loss.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from packproof.edge.message import Message
from packproof.edge.mqttclient import BatchingClient
from packproof.edge.options import MqttOptions
from packproof.edge.session import SessionWatch
from packproof.edge.settle import DeviceAck
from packproof.errors import BrokerError

log = logging.getLogger(__name__)

_SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason: another client connected with our client id
CLOSE_WAIT = 2.0  # s a stop waits for the last acknowledgements to reach the broker


def settled(info: mqtt.MQTTMessageInfo) -> bool:
    """Our publish reached the broker, or failed for good (not connected): nothing more will come of it.

    paho's `is_published` raises on the second case, which a broker restart makes routine.
    A lost acknowledgement costs only a resend: the duplicate is stored once and acknowledged.
    """
    return info.rc != mqtt.MQTT_ERR_SUCCESS or info.is_published()


class Subscriber:
    """The ingestor's MQTT session: subscribe, receive into `inbox`, acknowledge after commit.

    `session` records connects and losses for /health (edge/session.py): paho reconnects by
    itself, so a session lost again and again would otherwise look healthy.
    """

    def __init__(self, opts: MqttOptions, inbox_max: int, ack_interval: float) -> None:
        self.opts = opts
        self.topic = opts.subscription
        self.inbox: collections.deque[Message] = collections.deque()
        self.inbox_max = inbox_max
        self.ack_interval = ack_interval
        self.session = SessionWatch(opts.client_id)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = True
        self._closing = False
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._subscribed = threading.Event()
        self._subscribe_error: str | None = None
        self._ack_infos: collections.deque[mqtt.MQTTMessageInfo] = collections.deque()
        self._pending_acks: dict[str, DeviceAck] = {}
        self._acked_at: dict[str, float] = {}
        # paho, with buffered reads and one write per batch of PUBACKs. MQTT 5 has no clean_session:
        # the session's persistence is clean_start and the expiry given at connect.
        if opts.mqtt5:
            self.client = BatchingClient(mqtt.CallbackAPIVersion.VERSION2, client_id=opts.client_id,
                                         protocol=mqtt.MQTTv5, manual_ack=True)
        else:
            self.client = BatchingClient(mqtt.CallbackAPIVersion.VERSION2, client_id=opts.client_id,
                                         clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        if opts.username:
            self.client.username_pw_set(opts.username, opts.password)
        if opts.tls_ca:
            self.client.tls_set(ca_certs=opts.tls_ca)  # verify the broker against this CA (or its own certificate)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    # ---- paho thread ----------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._connect_error = str(reason)
            self._connected.set()
            return
        client.subscribe(self.topic, qos=1)
        self.session.on_connected()
        log.info("ingestor connected to %s:%d (MQTT %s), subscribing to %s", self.opts.host, self.opts.port,
                 "5" if self.opts.mqtt5 else "3.1.1", self.topic)
        self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        """A refused subscription (an ACL without the filter, a broker without shared subscriptions)
        would leave the ingestor connected and idle forever: say so, and fail `connect`."""
        failed = [r for r in reasons if r.is_failure]
        if failed:
            self._subscribe_error = f"the MQTT broker refused the subscription to {self.topic}: {failed[0]}"
            log.error("%s; check the broker's ACL for this login", self._subscribe_error)
        self._subscribed.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        """Logged, and kept in `self.session` for /health. MQTT 3.1.1 gives no reason for a broker
        closing the connection; MQTT 5 says when the session was taken over."""
        if self._closing:
            return
        taken_over = getattr(reason, "value", None) == _SESSION_TAKEN_OVER
        self.session.on_lost(str(reason), taken_over)
        if taken_over:
            log.error("another MQTT client connected with this ingestor's client id (%s) and took its session; "
                      "reconnecting. Give each ingestor its own --client-id, or they take the session from each "
                      "other", self.opts.client_id)
        else:
            log.warning("ingestor lost its MQTT session (%s), %d times so far; reconnecting. If this repeats every "
                        "few seconds, another client is connecting with client id %r", reason,
                        self.session.losses, self.opts.client_id)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        while len(self.inbox) >= self.inbox_max and not self._closing:
            time.sleep(0.002)  # backpressure: stop reading the socket until we catch up
        self.inbox.append(Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, time.time()))
        if self._idle and self._loop is not None:
            self._idle = False
            self._loop.call_soon_threadsafe(self._wake.set)

    # ---- event loop -----------------------------------------------------------------

    async def connect(self, timeout: float = 10.0) -> None:
        o = self.opts
        self._loop = asyncio.get_running_loop()
        self.client.reconnect_delay_set(1, 5)
        try:
            # In a thread: a TLS handshake needs the broker, which may share this event loop.
            if o.mqtt5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = o.session_expiry
                # clean_start False on every connect (paho repeats it on reconnect): what the broker
                # queued while we were away is delivered, never discarded.
                await asyncio.to_thread(self.client.connect, o.host, o.port, 30, clean_start=False, properties=props)
            else:
                await asyncio.to_thread(self.client.connect, o.host, o.port, 30)
        except OSError as exc:
            raise BrokerError(f"cannot reach the MQTT broker at {o.host}:{o.port}: {exc}") from exc
        self.client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, timeout):
            raise BrokerError(f"no CONNACK from the MQTT broker at {o.host}:{o.port} in {timeout}s")
        if self._connect_error:
            hint = " (the embedded broker speaks MQTT 3.1.1 only: a share group needs an MQTT 5 broker such as " \
                   "Mosquitto)" if o.mqtt5 and "protocol" in self._connect_error.lower() else ""
            raise BrokerError(f"the MQTT broker refused the ingestor: {self._connect_error}{hint}")
        if not await asyncio.to_thread(self._subscribed.wait, timeout):
            raise BrokerError(f"no SUBACK from the MQTT broker at {o.host}:{o.port} in {timeout}s")
        if self._subscribe_error:
            raise BrokerError(self._subscribe_error)

    async def wait(self, stop: asyncio.Event, timeout: float) -> None:
        """Until a message arrives, `stop` is set, or `timeout` s pass."""
        self._idle = True
        self._wake.clear()
        if self.inbox:
            return
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()

    def take(self, n: int) -> list[Message]:
        """The next `n` messages of the inbox (at most what it holds)."""
        inbox = self.inbox
        return [inbox.popleft() for _ in range(min(n, len(inbox)))]

    def ack_many(self, acks: Sequence[tuple[int, int]]) -> None:
        """PUBACK these (mid, qos): their batch is committed."""
        self.client.ack_many(acks)

    @property
    def acks_waiting(self) -> bool:
        return bool(self._pending_acks)

    def queue_acks(self, acks: Mapping[str, DeviceAck]) -> None:
        """Devices' delivery marks of a committed batch, to publish (`send_acks`); a newer one replaces an older."""
        self._pending_acks.update(acks)

    def send_acks(self, everything: bool = False) -> None:
        """End-to-end acknowledgement: everything up to `acked_seq` is durably stored.

        Retained on the device's ack topic, at most once every `ack_interval` s per device
        (unless `everything`): every message costs the broker as much as a reading, and a device
        only needs the latest mark. The payload (`packproof.watermark.Delivery`) also lists the
        gaps, so a device resends exactly what is missing; duplicates get an ack too, or a device
        whose ack was lost (a broker restart forgets retained messages) would resend forever.
        """
        now = time.monotonic()
        for device_id in list(self._pending_acks):
            if everything or now - self._acked_at.get(device_id, 0.0) >= self.ack_interval:
                ack = self._pending_acks.pop(device_id)
                self._ack_infos.append(self.client.publish(ack.topic, ack.payload, qos=1, retain=True))
                self._acked_at[device_id] = now
        while self._ack_infos and settled(self._ack_infos[0]):
            self._ack_infos.popleft()

    async def close(self) -> None:
        """Publish what acknowledgements wait, let them reach the broker (up to CLOSE_WAIT s), disconnect."""
        self.send_acks(everything=True)
        self._closing = True
        deadline = time.monotonic() + CLOSE_WAIT
        while self._ack_infos and time.monotonic() < deadline:
            if settled(self._ack_infos[0]):
                self._ack_infos.popleft()
            else:
                await asyncio.sleep(0.01)
        self.client.disconnect()
        self.client.loop_stop()
        self.session.on_stopped()
