"""Publish a fleet's readings over MQTT (QoS 1), one connection per device, store-and-forward.

Each device has its own MQTT client, as a real tracker would, with a retained `online`
status and `offline` as its Last Will. Measuring is paced by a clock (not by sleeping a
fixed time per message), so the rate holds however long publishing takes, and it goes on
whether or not the link is up: every reading is committed to the device's durable buffer
(`simulators/buffer.py`) before it is sent, and leaves the buffer only when the ingestor
acknowledges it end to end (`simulators/ack.py`).

Per device there is one queue in seq order: what was never sent, behind it the live
readings; resends of gaps and of what the ingestor has not stored go first, as the
oldest. A device sends at most `backlog_rate` messages a second (never fewer than its
measuring rate), so a fleet coming back from an outage does not flood the broker.

Acks arrive on paho's network threads; they are queued (a deque) and applied by the
publishing loop, the only thread that touches the buffer.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from packproof.diskfull import DISK, Backoff, is_disk_full
from packproof.errors import BrokerError
from packproof.reading import TOPIC_PREFIX
from packproof.simulators.ack import Ack, parse_ack, resend_ranges
from packproof.simulators.buffer import DEFAULT_MAX_PER_DEVICE, SimBuffer
from packproof.simulators.fleet import SimDevice
from packproof.simulators.outage import OutageSchedule

log = logging.getLogger(__name__)

NO_ACK = Ack(-1, 0, -1)
BUFFER_COMPONENT = "simulator buffer"  # as /health and the progress line name it when its disk is full
MAX_RESEND_BACKOFF = 64.0  # x resend_after, while acknowledgements show no progress


@dataclass(slots=True)
class PublishStats:
    measured: int = 0  # readings made (each committed to the buffer)
    sent: int = 0  # publishes: first sends and resends
    resent: int = 0  # publishes of a reading sent before (a gap, a lost send, the last run's backlog)
    acked: int = 0  # readings the ingestor acknowledged as stored end to end (they left the buffer)
    buffered: int = 0  # readings in the buffer, not acknowledged end to end yet
    dropped: int = 0  # readings the full buffer dropped, oldest first (lost, and said so)
    outages: int = 0  # links cut by the outage schedule
    unkept: int = 0  # readings made while the buffer's disk was full and still unwritten at the end (lost, said so)
    started: float = 0.0

    @property
    def rate(self) -> float:
        elapsed = max(time.monotonic() - self.started, 1.0)  # no wild figure from the first burst
        return self.sent / elapsed

    def summary(self) -> str:
        return (f"measured {self.measured:,}, sent {self.sent:,} ({self.rate:,.0f}/s, resent {self.resent:,}), "
                f"stored end to end {self.acked:,}, buffered {self.buffered:,}, dropped by the cap {self.dropped:,}"
                + (f", outages {self.outages:,}" if self.outages else "")
                + (f", not kept (disk full) {self.unkept:,}" if self.unkept else ""))


@dataclass(frozen=True, slots=True)
class ForwardOptions:
    """Store-and-forward and simulated outages: the fleet options `simulate` and `run` share."""

    buffer_max: int = DEFAULT_MAX_PER_DEVICE  # readings per device before the oldest is dropped
    backlog_rate: float = 50.0  # messages/s per device at most, catching up
    resend_after: float = 5.0  # s without an acknowledgement before a reading is sent again
    drain_timeout: float = 30.0  # s to wait at the end for every reading to be acknowledged; 0: do not wait
    outage_every: float | None = None  # s between outages; None: no outages
    outage_for: float = 10.0
    outage_devices: float = 0.25  # fraction of the fleet
    outage_random: bool = False  # exponential gaps between outages (mean outage_every)

    def schedule(self, fleet: list[SimDevice], seed: int) -> OutageSchedule | None:
        if self.outage_every is None:
            return None
        return OutageSchedule([d.device_id for d in fleet], self.outage_every, self.outage_for,
                              self.outage_devices, seed, self.outage_random)

    def describe(self) -> str:
        if self.outage_every is None:
            return "no simulated outages"
        how = "randomly, every" if self.outage_random else "every"
        return (f"outages {how} {self.outage_every:g} s for {self.outage_for:g} s on "
                f"{self.outage_devices:.0%} of the devices")


def leftover_note(stats: PublishStats, path: object) -> str:
    """What the end of a run says about the buffer: empty, or what waits for the next start."""
    lost = (f"; {stats.unkept:,} readings made while its disk was full could not be kept" if stats.unkept else "")
    if not stats.buffered:
        return "every reading is acknowledged end to end; the buffer is empty" + lost
    return (f"{stats.buffered:,} readings not yet acknowledged end to end stay in {path}; "
            "the next start sends them first" + lost)


@dataclass(slots=True)
class _Unsaved:
    """What the buffer could not commit yet (its disk is full), kept in memory and committed
    with the next tick: new readings, acks to apply and send times. Nothing of it is sent or
    counted until it is in the buffer, so a reading is still published only once it is durable."""

    readings: list[tuple[str, int, bytes]] = field(default_factory=list)
    acked: dict[str, int] = field(default_factory=dict)
    sent: list[tuple[str, int, float]] = field(default_factory=list)
    first_seq: dict[str, int] = field(default_factory=dict)  # per device, its oldest reading held here

    def add(self, readings: list[tuple[str, int, bytes]], acked: dict[str, int],
            sent: list[tuple[str, int, float]]) -> None:
        self.readings += readings
        for device_id, seq, _ in readings:
            self.first_seq.setdefault(device_id, seq)
        for device_id, seq in acked.items():
            self.acked[device_id] = max(seq, self.acked.get(device_id, -1))
        self.sent += sent

    def next_seqs(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for device_id, seq, _ in self.readings:
            out[device_id] = max(seq + 1, out.get(device_id, 0))
        return out

    def __bool__(self) -> bool:
        return bool(self.readings or self.acked or self.sent)


@dataclass(slots=True)
class _Link:
    """One device's connection and where its queue stands; only the loop thread writes the
    fields below `connected` (paho's thread writes `connected`, a plain flag)."""

    device: SimDevice
    client: mqtt.Client
    connected: bool = False
    refused: str | None = None  # why the broker refused the last login (paho's thread), until one succeeds
    cut: bool = False  # in a simulated outage
    cursor: int = 0  # the lowest seq this process has not sent yet; below it, every buffered entry was sent
    acked: int = -1  # the highest acked_seq applied
    ack: Ack | None = None
    ack_topic: str = ""
    tokens: float = 1.0
    refilled: float = 0.0
    resend_check: float = 0.0
    backoff: float = 1.0  # x resend_after between resend rounds
    progress: tuple[int, int] = (-1, -1)  # (acked, highest) of the last ack resends were based on
    highest: int = -1  # the highest stored seq the ingestor has reported
    highest_moved: float = 0.0  # when (monotonic) it last moved, or the link first sent
    round_sent: int = 0  # resent in the round under way


class FleetPublisher:
    def __init__(self, fleet: list[SimDevice], buffer: SimBuffer, *, host: str = "127.0.0.1", port: int = 1883,
                 rate: float = 1.0, qos: int = 1, credentials: dict[str, str] | None = None,
                 tls_ca: str | None = None, backlog_rate: float = 50.0, resend_after: float = 5.0,
                 outages: OutageSchedule | None = None) -> None:
        """`credentials`: device id -> MQTT password; each device logs in as its own id."""
        if rate <= 0:
            raise ValueError(f"rate must be > 0 readings/s per device, got {rate}")
        if backlog_rate <= 0 or resend_after <= 0:
            raise ValueError(f"backlog rate and resend delay must be > 0, got {backlog_rate} and {resend_after}")
        self.fleet, self.buffer, self.host, self.port, self.rate, self.qos = fleet, buffer, host, port, rate, qos
        self.send_rate = max(backlog_rate, rate)
        if backlog_rate <= rate:
            log.warning("--backlog-rate %g is not above --rate %g: a backlog after an outage will not drain",
                        backlog_rate, rate)
        self.resend_after = resend_after
        self.outages = outages
        self.stats = PublishStats()
        self._links: list[_Link] = []
        self._by_id: dict[str, _Link] = {}
        self._inbox: collections.deque[tuple[str, bytes]] = collections.deque()
        self._sent_marks: list[tuple[str, int, float]] = []
        self._unsaved = _Unsaved()
        self._backoff, self._retry_at = Backoff(), 0.0
        self._credentials = credentials or {}
        self._tls_ca = tls_ca
        self._refused: list[str] = []
        self._closing = False
        known = buffer.next_seqs()
        for d in fleet:
            d.next_seq = max(d.next_seq, known.get(d.device_id, 0))
        self.stats.buffered = self.buffered()

    def links_down(self) -> int:
        """Devices whose link a simulated outage has cut right now."""
        return sum(link.cut for link in self._links)

    def buffered(self) -> int:
        """This fleet's readings not yet acknowledged end to end (the file may hold other devices'),
        with those a full disk keeps in memory until they can be written."""
        return sum(self.buffer.count(d.device_id) for d in self.fleet) + len(self._unsaved.readings)

    # ---- paho threads -----------------------------------------------------------------

    def _on_connect(self, cl: mqtt.Client, link: _Link, ev: threading.Event, rc: mqtt.ReasonCode) -> None:
        if rc.is_failure:
            if not ev.is_set():
                self._refused.append(f"{link.device.device_id}: {rc}")  # the first connect: `connect` says why
            elif link.refused is None:  # a reconnect refused: said once until it logs in again
                log.warning("%s: the broker refused its login on reconnecting (%s); paho keeps trying, readings "
                            "wait in the buffer; does the broker's password file still hold its login?",
                            link.device.device_id, rc)
            link.refused = str(rc)
        else:
            cl.subscribe(link.ack_topic, qos=1)  # again after every reconnect: the session is clean
            cl.publish(link.device.status_topic, b"online", qos=0, retain=True)
            link.refused = None
            link.connected = True
        ev.set()

    def _on_disconnect(self, link: _Link) -> None:
        """A link that was up and dropped; paho also calls this after a refused CONNECT, which
        `_on_connect` has reported as a refusal: the broker is there, it said no."""
        was_connected, link.connected = link.connected, False
        if was_connected and not link.cut and not self._closing:
            log.warning("%s lost the broker; paho reconnects, readings wait in the buffer", link.device.device_id)

    def _on_message(self, link: _Link, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != link.ack_topic:
            # The topic is the ack's only claim to whose it is. amqtt 0.12.1 was seen delivering another
            # device's retained ack on re-subscribing after a reconnect: acting on it would drop
            # readings this device never had stored.
            log.warning("%s: ignoring a message on %s, not its ack topic", link.device.device_id, msg.topic)
            return
        self._inbox.append((link.device.device_id, bytes(msg.payload)))

    # ---- connecting -------------------------------------------------------------------

    def connect(self, timeout: float = 10.0, refused_hint: str | None = None) -> None:
        """Connect every device and wait for its CONNACK. `refused_hint` replaces the advice given when
        the broker refuses devices: what to do differs between Mosquitto and `run`'s own broker."""
        pending = []
        for d in self.fleet:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{d.device_id}",
                            protocol=mqtt.MQTTv311)
            link = _Link(d, c, ack_topic=f"{TOPIC_PREFIX}/{d.shipment_id}/{d.device_id}/ack")
            first = self.buffer.first_seq(d.device_id)
            link.cursor = first if first is not None else d.next_seq  # last run's backlog: sent again, in order
            if d.device_id in self._credentials:
                c.username_pw_set(d.device_id, self._credentials[d.device_id])
            if self._tls_ca:
                c.tls_set(ca_certs=self._tls_ca)
            c.will_set(d.status_topic, b"offline", qos=1, retain=True)
            c.reconnect_delay_set(1, 5)  # back soon after a broker restart
            connected = threading.Event()
            c.on_connect = lambda cl, _u, _f, rc, _p, link=link, ev=connected: self._on_connect(cl, link, ev, rc)
            c.on_disconnect = lambda _c, _u, _f, _rc, _p, link=link: self._on_disconnect(link)
            c.on_message = lambda _c, _u, msg, link=link: self._on_message(link, msg)
            try:
                c.connect(self.host, self.port, keepalive=30)
            except OSError as exc:
                self.close()
                raise BrokerError(f"simulator cannot reach the MQTT broker at {self.host}:{self.port}: {exc}") from exc
            c.loop_start()
            self._links.append(link)
            self._by_id[d.device_id] = link
            pending.append(connected)
        deadline = time.monotonic() + timeout
        for ev in pending:
            if not ev.wait(max(0.0, deadline - time.monotonic())):
                self.close()
                raise BrokerError(f"no CONNACK from the MQTT broker at {self.host}:{self.port} in {timeout}s")
        if self._refused:
            self.close()
            hint = refused_hint or ("give each device a login with --password-file (the broker's password file); "
                                    "Mosquitto reads that file only when it starts or gets SIGHUP, so after new "
                                    "logins run `kill -HUP <mosquitto pid>` and start the simulator again")
            raise BrokerError(f"the MQTT broker at {self.host}:{self.port} refused {len(self._refused)} device(s), "
                              f"e.g. {self._refused[0]}: {hint}")

    def _cut(self, link: _Link) -> None:
        """An outage: the link drops, the device keeps measuring into its buffer."""
        link.cut = True
        self.stats.outages += 1
        # The Last Will the broker would publish for a dropped link, said before a clean disconnect.
        link.client.publish(link.device.status_topic, b"offline", qos=0, retain=True)
        link.client.disconnect()
        link.client.loop_stop()
        log.info("outage: %s off the air", link.device.device_id)

    def _restore(self, link: _Link) -> None:
        link.cut = False
        link.client.connect_async(self.host, self.port, keepalive=30)
        link.client.loop_start()
        log.info("outage over: %s reconnects with %d buffered", link.device.device_id,
                 self.buffer.count(link.device.device_id))

    # ---- the loop ---------------------------------------------------------------------

    def run(self, *, stop: threading.Event, duration: float | None = None,
            count: int | None = None, on_tick: Callable[[PublishStats], None] | None = None,
            epoch: float | None = None) -> PublishStats:
        """Measure a reading per device every 1/rate s until stop, duration or count per device,
        sending (and resending) from the buffers meanwhile.

        Reading k of this run is stamped with its scheduled instant, `epoch + k / rate` (`epoch`:
        the wall time of reading 0, default now), not with the moment the loop got to it: so its
        `ts` is exactly where the custody poster's clock puts the journey time it covers
        (`custody_poster.journey_clock` with the same epoch), however late a busy loop runs. A
        stamp is never ahead of the wall clock (the reading is taken once due), so the
        ingestor's clock-skew bound (`ingest.max_clock_ahead`) holds."""
        self.stats.started = t0 = time.monotonic()
        epoch = time.time() if epoch is None else epoch
        period = 1.0 / self.rate
        k = 0
        last_tick = 0.0
        while not stop.is_set():
            if count is not None and k >= count:
                break
            now = time.monotonic()
            due = t0 + k * period
            if duration is not None and due - t0 >= duration:
                break
            readings: list[tuple[str, int, bytes]] = []
            if due <= now:  # measuring goes on whether or not the link is up
                wall = min(epoch + k * period, time.time())  # the scheduled instant, never ahead of now
                readings = [(d.device_id, d.next_seq, d.reading(wall)) for d in self.fleet]  # reading() advances
                k += 1
            self._schedule_outages(now - t0)
            busy = self._step(readings)
            if on_tick is not None and now - last_tick >= 0.25:
                last_tick = now
                on_tick(self.stats)
            wait = t0 + k * period - time.monotonic()
            if wait > 0:
                stop.wait(min(wait, 1.0 / self.send_rate if busy else 0.1))
        if on_tick is not None:
            on_tick(self.stats)
        return self.stats

    def drain(self, *, timeout: float, abort: threading.Event | None = None,
              on_tick: Callable[[PublishStats], None] | None = None) -> bool:
        """Measuring has stopped: send until the ingestor has acknowledged every buffered reading
        (True), or `timeout` s pass, or `abort` is set. Outages end: the links come back to drain."""
        for link in self._links:
            if link.cut:
                self._restore(link)
        deadline = time.monotonic() + timeout
        last_tick = 0.0
        while self.buffered() and time.monotonic() < deadline and not (abort and abort.is_set()):
            busy = self._step([])
            now = time.monotonic()
            if on_tick is not None and now - last_tick >= 0.25:
                last_tick = now
                on_tick(self.stats)
            (abort or threading.Event()).wait(1.0 / self.send_rate if busy else 0.05)
        self._step([])  # the send times of the last publishes
        log.debug("drain ended: %d buffered, %.1f s left, aborted %s", self.buffered(), deadline - time.monotonic(),
                 abort is not None and abort.is_set())
        if on_tick is not None:
            on_tick(self.stats)
        return not self.buffered()

    def _schedule_outages(self, t: float) -> None:
        if self.outages is None:
            return
        for device_id in self.outages.affected:
            link = self._by_id.get(device_id)
            if link is None:
                continue
            down = self.outages.down(device_id, t)
            if down and not link.cut:
                self._cut(link)
            elif not down and link.cut:
                self._restore(link)

    def _step(self, readings: list[tuple[str, int, bytes]]) -> bool:
        """Commit (new readings, acks, send times), then send what each device may. True while
        some device has more to send right away."""
        marks, self._sent_marks = self._sent_marks, []
        self._unsaved.add(readings, self._take_acks(), marks)
        if self._unsaved and time.monotonic() >= self._retry_at:
            self._commit()
        self.stats.buffered = self.buffered()
        busy = False
        now_mono, now = time.monotonic(), time.time()
        for link in self._links:
            if link.connected and not link.cut:
                busy |= self._send(link, now_mono, now)
        return busy

    def _commit(self) -> bool:
        """Commit what waits (this tick's and whatever a full disk held back); False if the disk is still full."""
        u = self._unsaved
        try:
            result = self.buffer.commit(readings=u.readings, acked=u.acked, sent=u.sent, next_seqs=u.next_seqs())
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise
            DISK.failed(BUFFER_COMPONENT, exc)
            self._retry_at = time.monotonic() + self._backoff.delay()
            return False
        DISK.cleared(BUFFER_COMPONENT)
        self._backoff.reset()
        self._unsaved = _Unsaved()
        self.stats.measured += len(u.readings)
        self.stats.acked += sum(result.acked.values())
        if result.dropped:
            n = sum(result.dropped.values())
            if not self.stats.dropped:
                log.warning("buffer full (%d readings per device): dropping the oldest, e.g. %d of %s; "
                            "raise --buffer-max or shorten the outages", self.buffer.max_per_device, n,
                            next(iter(result.dropped)))
            self.stats.dropped += n
        return True

    def _take_acks(self) -> dict[str, int]:
        """Apply the acks paho queued; returns device -> acked seq for those that moved."""
        moved: dict[str, int] = {}
        inbox = self._inbox
        while inbox:
            device_id, payload = inbox.popleft()
            link = self._by_id[device_id]
            try:
                ack = parse_ack(payload)
            except ValueError as exc:
                log.warning("%s: ignoring a malformed ack %r: %s", device_id, payload[:120], exc)
                continue
            if ack.highest >= link.device.next_seq:
                log.warning("%s: ignoring an ack for seq %d, which it has not made yet (next %d): a retained ack "
                            "left by another store?", device_id, ack.highest, link.device.next_seq)
                continue
            if link.ack is not None and (ack.acked_seq, ack.highest) < (link.ack.acked_seq, link.ack.highest):
                continue  # older than one already applied: with several ingestors acks can arrive out of order
            link.ack = ack
            log.debug("%s: %s", device_id, ack)
            if ack.acked_seq > link.acked:
                link.acked = moved[device_id] = ack.acked_seq
        return moved

    def _send(self, link: _Link, now_mono: float, now: float) -> bool:
        """Publish what the device may now: resends first (the oldest), then what was never sent."""
        link.tokens = min(max(1.0, self.send_rate * 0.1), link.tokens + (now_mono - link.refilled) * self.send_rate)
        link.refilled = now_mono
        budget = int(link.tokens)
        if budget <= 0:
            return True
        d = link.device
        out = []
        more = False
        ack = link.ack or NO_ACK  # nothing heard yet: everything sent is unconfirmed
        if link.highest_moved == 0.0 or ack.highest != link.highest:
            link.highest, link.highest_moved = ack.highest, now_mono
        if link.cursor > 0 and now_mono >= link.resend_check:
            progress = (ack.acked_seq, ack.highest)
            if progress != link.progress:
                link.backoff, link.progress = 1.0, progress  # the ingestor moved on: it is listening
            stalled = now_mono - link.highest_moved >= self.resend_after * link.backoff
            ranges = resend_ranges(ack, link.cursor, stalled=stalled)
            out = self.buffer.due_for_resend(d.device_id, ranges=ranges, limit=budget,
                                             sent_before=now - self.resend_after * link.backoff)
            if len(out) < budget:  # nothing more due: this round is over
                link.resend_check = now_mono + min(1.0, self.resend_after / 4)
                if out or link.round_sent:
                    # Resent without the ack moving yet: the next round waits twice as long unless it
                    # moves, so a stopped ingestor is not flooded with the same readings.
                    link.backoff = min(link.backoff * 2, MAX_RESEND_BACKOFF)
                link.round_sent = 0
            else:
                link.round_sent += len(out)
                more = True
        if len(out) < budget and link.cursor < d.next_seq:
            fresh = self.buffer.entries(d.device_id, from_seq=link.cursor, limit=budget - len(out))
            if fresh:
                link.cursor = fresh[-1].seq + 1
            else:  # up to what a full disk holds back: those are sent once they are in the buffer
                link.cursor = self._unsaved.first_seq.get(d.device_id, d.next_seq)
            out += fresh
        for e in out:
            link.client.publish(d.topic, e.payload, qos=self.qos)
            self._sent_marks.append((d.device_id, e.seq, now))
            if e.last_sent_at is not None:
                self.stats.resent += 1
        self.stats.sent += len(out)
        link.tokens -= len(out)
        return more or link.cursor < d.next_seq

    def close(self) -> None:
        """Disconnect; what a full disk still holds back is committed now or counted as not kept."""
        if self._unsaved and not self._commit():
            self.stats.unkept += len(self._unsaved.readings)
            log.error("the simulator buffer's disk is still full: %d reading(s) made meanwhile are lost",
                      len(self._unsaved.readings))
            self._unsaved = _Unsaved()
        self.stats.buffered = self.buffered()
        self._closing = True
        for link in self._links:
            c = link.client
            if not link.cut:
                c.publish(link.device.status_topic, b"offline", qos=0, retain=True)
                c.disconnect()
            c.loop_stop()
        self._links.clear()
        self._by_id.clear()
