"""The ingestor: MQTT in, checked readings and quarantined payloads out, in batches.

Shape of the flow (one process; paho's thread, the event loop, a decode thread):

    paho network thread --on_message--> inbox (bounded deque)
        --> decode stage (worker thread): validate, verify, thresholds; repeats within the batch
        --> write queue (2 batches) --> writer (event loop): one store transaction per batch,
            which settles the batch against the store (new or duplicate, delivery marks,
            excursions) and writes it
        --> PUBACK for every message of the batch (manual ack, QoS 1), then the device acks

A message is acknowledged to the broker only after the transaction holding it (as a
reading or as a quarantined payload) has committed, and the session is persistent, so
a crash before the commit means redelivery, never loss; redelivered duplicates are
recognised by (device_id, seq) and stored once. When the store falls behind, the
bounded inbox blocks paho's thread, which stops reading the socket: the broker and TCP
absorb the backlog instead of our memory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from packproof.crypto import DeviceVerifier, verify_many
from packproof.diskfull import DISK, Backoff, is_disk_full
from packproof.edge.decode import PLAUSIBLE, Accepted, DeviceEntry, Plausibility, bad_signature, decode
from packproof.edge.message import Message, quarantine
from packproof.edge.mqttclient import BatchingClient
from packproof.edge.session import SessionWatch
from packproof.edge.settle import Checked, DeviceAck, Settled, settle, to_look_up
from packproof.edge.thresholds import BUILTIN_PROFILES, Profile, evaluate
from packproof.errors import BrokerError, ConfigError, InvalidReading, StoreError
from packproof.health import HEARTBEAT
from packproof.reading import DEFAULT_PROFILE, TELEMETRY_FILTER, share_group_problem
from packproof.records import DeviceRecord, IngestBatch
from packproof.store import Store

log = logging.getLogger(__name__)

Chunk = tuple["Future[list[bool]] | None", list[tuple[Accepted, Message]]]
VERIFY_CHUNK = 250  # readings per hand-off to a verifier process: small enough to overlap with decoding


@dataclass(slots=True)
class Decoded:
    """A batch after the decode stage: what failed is quarantined; the rest is settled against the store.

    Signatures left to verifier processes are still `pending` when the decode stage hands the
    batch on, so the next batch decodes while they are checked; `finish` collects them.
    """

    pending: list[Chunk]  # decoded readings with their verifier's answer to come (or None: nothing to ask)
    rejected: IngestBatch  # quarantined payloads and their counters
    acks: list[tuple[int, int]]  # (mid, qos) to PUBACK once the batch commits
    readings: list[Checked] = field(default_factory=list)  # decoded, signatures verified, in arrival order
    finished: bool = False


@dataclass(slots=True)
class IngestStats:
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    batches: int = 0
    unwritten: int = 0  # messages given up at a stop while the store could not write; never acknowledged

    @property
    def processed(self) -> int:
        return self.accepted + self.duplicates + self.quarantined


MQTT_PROTOCOLS = ("3.1.1", "5")
INGESTOR_COMPONENT = "ingestor"  # as /health and the progress line name it when its disk is full
STOP_GRACE = 3.0  # s a stop keeps retrying a store that cannot write
SESSION_EXPIRY = 600  # s the broker keeps an MQTT 5 ingestor's session (and its share) while it is away
_SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason: another client connected with our client id


def subscription_filter(topic: str, share_group: str | None) -> str:
    """The filter the ingestor subscribes to: `topic`, or `$share/<group>/<topic>` in a share group.

    In an MQTT 5 shared subscription the broker hands each message to one member of the
    group, so several ingestors split the load instead of each storing everything.
    """
    if share_group is None:
        return topic
    if problem := share_group_problem(share_group):
        raise ConfigError(problem)
    return f"$share/{share_group}/{topic}"


def verifier_pool(workers: int) -> ProcessPoolExecutor | None:
    """Processes that check Ed25519 signatures in bulk; None: check them in the ingestor.

    Spawned, not forked (the ingestor has threads), and deaf to Ctrl-C, which the ingestor
    handles: a verifier killed by the terminal's SIGINT would break the batch in flight.
    """
    if workers <= 0:
        return None
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_verifier_start, initargs=(os.getpid(),))


def _verifier_start(ingestor_pid: int) -> None:
    """In a verifier process: ignore Ctrl-C, and exit when the ingestor is gone.

    An ingestor killed with SIGKILL cannot stop its verifiers, and the pool's pipes do not
    wake an idle one: without this watch each crash left its verifiers running (seen in the
    fault-injection test).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == ingestor_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="ingestor-watch", daemon=True).start()


def settled(info: mqtt.MQTTMessageInfo) -> bool:
    """Our publish reached the broker, or failed for good (not connected): nothing more will come of it.

    paho's `is_published` raises on the second case, which a broker restart makes routine.
    A lost acknowledgement costs only a resend: the duplicate is stored once and acknowledged.
    """
    return info.rc != mqtt.MQTT_ERR_SUCCESS or info.is_published()


class Ingestor:
    def __init__(
        self, store: Store, *, host: str = "127.0.0.1", port: int = 1883,
        client_id: str = "packproof-ingestor", topic: str = TELEMETRY_FILTER,
        verify_signatures: bool = True, profiles: dict[str, Profile] | None = None,
        batch_max: int = 2000, inbox_max: int = 20000, linger: float = 0.05, ack_interval: float = 1.0,
        username: str | None = None, password: str | None = None, tls_ca: str | None = None,
        share_group: str | None = None, mqtt_protocol: str = "3.1.1", session_expiry: int = SESSION_EXPIRY,
        verify_workers: int = 0, limits: Plausibility = PLAUSIBLE, stop_grace: float = STOP_GRACE,
    ) -> None:
        """`share_group`: subscribe as one member of an MQTT 5 shared subscription (several ingestors
        on one store split the telemetry). A share group, or `mqtt_protocol="5"`, speaks MQTT 5 with
        a persistent session (clean start off) that the broker keeps `session_expiry` seconds after a
        disconnect; otherwise MQTT 3.1.1 with clean session off, as the embedded broker (amqtt)
        speaks only 3.1.1. `verify_workers`: processes that check signatures (0: this process does).
        `stop_grace`: s a stop waits for a store that cannot write before leaving the rest unacknowledged."""
        if mqtt_protocol not in MQTT_PROTOCOLS:
            raise ConfigError(f"MQTT protocol {mqtt_protocol!r}: choose one of {', '.join(MQTT_PROTOCOLS)}")
        self.store = store
        self.verify_workers = verify_workers
        self._verifiers = verifier_pool(verify_workers)
        self.host, self.port = host, port
        self.topic = subscription_filter(topic, share_group)
        self.mqtt5 = share_group is not None or mqtt_protocol == "5"
        self.client_id = client_id
        self.session_expiry = session_expiry
        self.verify_signatures = verify_signatures
        self.limits = limits
        self.profiles = profiles or dict(BUILTIN_PROFILES)
        self.batch_max = batch_max
        self.inbox_max = inbox_max
        self.linger = linger
        self.stats = IngestStats()
        self.registry: dict[str, DeviceEntry] = {}
        self._registry_checked = 0.0
        self._registry_version = -1
        self._missing: dict[str, float] = {}  # unknown device id -> when we last asked the store
        self._ack_infos: collections.deque[mqtt.MQTTMessageInfo] = collections.deque()
        self._pending_acks: dict[str, DeviceAck] = {}
        self._acked_at: dict[str, float] = {}
        self.ack_interval = ack_interval
        self._inbox: collections.deque[Message] = collections.deque()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle = True
        self._closing = False
        self._write_q: asyncio.Queue[Decoded | None] = asyncio.Queue(2)
        self.stop_grace = stop_grace
        self._give_up_at: float | None = None
        self._gave_up = False
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._subscribed = threading.Event()
        self._subscribe_error: str | None = None
        self.session = SessionWatch(client_id)
        self._next_beat = 0.0  # monotonic time the status is written again even if unchanged
        self._retry_at = 0.0  # after a failed status write: not again before this (monotonic)
        # paho, with buffered reads and one write per batch of PUBACKs. MQTT 5 has no clean_session:
        # the session's persistence is clean_start and the expiry given at connect.
        if self.mqtt5:
            self.client = BatchingClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                         protocol=mqtt.MQTTv5, manual_ack=True)
        else:
            self.client = BatchingClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                         clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        if username:
            self.client.username_pw_set(username, password)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)  # verify the broker against this CA (or its own certificate)
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
        log.info("ingestor connected to %s:%d (MQTT %s), subscribing to %s", self.host, self.port,
                 "5" if self.mqtt5 else "3.1.1", self.topic)
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
        """Logged, and kept in `self.session` for /health: paho reconnects, so a session lost again and
        again (another client using our client id) would otherwise look healthy. MQTT 3.1.1 gives
        no reason for a broker closing the connection; MQTT 5 says when the session was taken over."""
        if self._closing:
            return
        taken_over = getattr(reason, "value", None) == _SESSION_TAKEN_OVER
        self.session.on_lost(str(reason), taken_over)
        if taken_over:
            log.error("another MQTT client connected with this ingestor's client id (%s) and took its session; "
                      "reconnecting. Give each ingestor its own --client-id, or they take the session from each "
                      "other", self.client_id)
        else:
            log.warning("ingestor lost its MQTT session (%s), %d times so far; reconnecting. If this repeats every "
                        "few seconds, another client is connecting with client id %r", reason,
                        self.session.losses, self.client_id)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        while len(self._inbox) >= self.inbox_max and not self._closing:
            time.sleep(0.002)  # backpressure: stop reading the socket until we catch up
        self._inbox.append(Message(msg.topic, bytes(msg.payload), msg.mid, msg.qos, time.time()))
        if self._idle and self._loop is not None:
            self._idle = False
            self._loop.call_soon_threadsafe(self._wake.set)

    # ---- lifecycle ------------------------------------------------------------------

    async def reload_registry(self) -> None:
        """The registry is all the ingestor caches: delivery state and open excursions are read per batch."""
        self.registry = {d.device_id: self._entry(d) for d in await self.store.devices()}

    def _entry(self, d: DeviceRecord) -> DeviceEntry:
        profile = self.profiles.get(d.profile)
        if profile is None:
            log.error("shipment %s names unknown profile %r; using %s", d.shipment_id, d.profile, DEFAULT_PROFILE)
            profile = self.profiles[DEFAULT_PROFILE]
        verifiers = [(start, DeviceVerifier(k) if k is not None else None) for start, k in d.keys]
        if not verifiers:
            verifiers = [(0, DeviceVerifier(d.public_key) if d.public_key is not None else None)]
        current_from, current = verifiers[-1]
        return DeviceEntry(d.shipment_id, current, profile, tuple(verifiers[:-1]), d.revoked, current_from)

    async def _refresh_registry(self) -> None:
        """Rotations and revocations made by `packproof devices` apply within a second."""
        now = time.monotonic()
        if now - self._registry_checked < 1.0:
            return
        self._registry_checked = now
        changes = await self.store.registry_changes()
        if changes != self._registry_version:
            self._registry_version = changes
            await self.reload_registry()

    async def _look_up(self, device_ids: list[str]) -> None:
        """Devices registered since we started: ask the store, each id at most once a second."""
        now = time.monotonic()
        for device_id in set(device_ids):
            if device_id in self.registry or now - self._missing.get(device_id, -2.0) < 1.0:
                continue
            d = await self.store.device(device_id)
            if d is None:
                self._missing[device_id] = now
                if len(self._missing) > 10000:  # a flood of made-up ids must not grow memory
                    self._missing.clear()
                continue
            self._missing.pop(device_id, None)
            self.registry[device_id] = self._entry(d)

    async def connect(self, timeout: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        await self._start_verifiers()
        self.client.reconnect_delay_set(1, 5)
        try:
            # In a thread: a TLS handshake needs the broker, which may share this event loop.
            if self.mqtt5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.session_expiry
                # clean_start False on every connect (paho repeats it on reconnect): what the broker
                # queued while we were away is delivered, never discarded.
                await asyncio.to_thread(self.client.connect, self.host, self.port, 30,
                                        clean_start=False, properties=props)
            else:
                await asyncio.to_thread(self.client.connect, self.host, self.port, 30)
        except OSError as exc:
            raise BrokerError(f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}") from exc
        self.client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, timeout):
            raise BrokerError(f"no CONNACK from the MQTT broker at {self.host}:{self.port} in {timeout}s")
        if self._connect_error:
            hint = " (the embedded broker speaks MQTT 3.1.1 only: a share group needs an MQTT 5 broker such as " \
                   "Mosquitto)" if self.mqtt5 and "protocol" in self._connect_error.lower() else ""
            raise BrokerError(f"the MQTT broker refused the ingestor: {self._connect_error}{hint}")
        if not await asyncio.to_thread(self._subscribed.wait, timeout):
            raise BrokerError(f"no SUBACK from the MQTT broker at {self.host}:{self.port} in {timeout}s")
        if self._subscribe_error:
            raise BrokerError(self._subscribe_error)

    async def run(self, stop: asyncio.Event) -> None:
        """Process messages until `stop`; then drain the inbox, write, ack and disconnect.

        While the store cannot write (a full disk), stopping does not wait for it forever: see
        `_commit_retrying`; what was not written is not acknowledged."""
        writer = asyncio.create_task(self._writer(stop))
        try:
            while True:
                if self._gave_up:
                    self.stats.unwritten += len(self._inbox)
                    self._inbox.clear()
                    break
                if not self._inbox:
                    if stop.is_set():
                        break
                    self._idle = True
                    self._wake.clear()
                    if not self._inbox:
                        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                        await asyncio.wait(waiters, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
                        for w in waiters:
                            w.cancel()
                    if self._pending_acks and self._write_q.empty():
                        self._send_acks()  # acks held back by the once-a-second limit
                    await self.publish_status()
                    continue
                if len(self._inbox) < self.batch_max and not stop.is_set():
                    # Linger briefly so a batch amortises its transaction and fsync over many
                    # readings: measured 4.6 readings per batch without it at 3,000/s. 50 ms
                    # rather than 20 took the ingestor from 245 to 219 µs a reading at 2,000/s
                    # on amqtt (batches of ~100 instead of ~50), for 35 ms more publish-to-sealed.
                    await asyncio.sleep(self.linger)
                n = min(len(self._inbox), self.batch_max)
                msgs = [self._inbox.popleft() for _ in range(n)]
                self.stats.received += n
                while True:
                    try:  # the registry comes from the store, which may be away for a while
                        await self._refresh_registry()
                        decoded = await self._process(msgs)
                        break
                    except StoreError as exc:
                        log.error("%s; retrying in 1 s", exc)
                        await asyncio.sleep(1.0)
                await self._write_q.put(decoded)
                await self.publish_status()  # the heartbeat, also when never idle
        finally:
            await self._write_q.put(None)
            await writer
            self._send_acks(everything=True)
            self._closing = True
            # Let the last acknowledgements reach the broker before leaving.
            deadline = time.monotonic() + 2.0
            while self._ack_infos and time.monotonic() < deadline:
                if settled(self._ack_infos[0]):
                    self._ack_infos.popleft()
                else:
                    await asyncio.sleep(0.01)
            self.client.disconnect()
            self.client.loop_stop()
            self.session.on_stopped()
            await self.publish_status()
            if self._verifiers is not None:
                self._verifiers.shutdown()
            st = self.stats
            log.info("ingestor stopped: %d received, %d stored, %d duplicates, %d quarantined, in %d batches",
                     st.received, st.accepted, st.duplicates, st.quarantined, st.batches)
            if st.unwritten:
                log.warning("%d message(s) could not be stored before stopping (the store cannot write) and were "
                            "not acknowledged: the broker's session and the devices' buffers still hold them",
                            st.unwritten)

    async def publish_status(self) -> None:
        """Write the session's status to the store when it changed, and every HEARTBEAT seconds anyway
        (for /health and `packproof health ingest`, in other processes: a status that stops being
        rewritten is an ingestor that died without saying so).

        A store that cannot take it now (down, disk full) gets it again at the next heartbeat, not
        on every idle pass; a full disk is already reported (packproof.diskfull), so only another
        failure gets a log line here."""
        now = time.monotonic()
        if now < self._next_beat and (not self.session.changed or now < self._retry_at):
            return
        self.session.changed = False
        self._next_beat = now + HEARTBEAT
        try:
            await self.store.set_status(f"ingestor:{self.client_id}", self.session.status())
        except StoreError as exc:
            self.session.changed = True
            self._retry_at = now + HEARTBEAT
            if not is_disk_full(exc):
                log.warning("could not record the ingestor's status (%s); will retry in %.0f s", exc, HEARTBEAT)

    async def _writer(self, stop: asyncio.Event) -> None:
        while (item := await self._write_q.get()) is not None:
            done = await self._commit_retrying(item, stop)
            if done is not None:
                self.client.ack_many(item.acks)
                self._pending_acks.update(done.acks)
                self._send_acks()
            self._write_q.task_done()
        self._write_q.task_done()

    async def _commit_retrying(self, item: Decoded, stop: asyncio.Event) -> Settled | None:
        """Commit a batch, retrying with backoff while the store fails (a full disk, a restarting
        server): the batch is kept and none of it acknowledged meanwhile, so intake pauses (paho's
        thread stops reading once the inbox is full) and resumes by itself when a write succeeds.

        None: stopping, and writes have kept failing for `stop_grace` s since `stop`. The batch is
        then given up unacknowledged: the broker's session and the devices' buffers still hold it,
        and a stop is never held hostage by a full disk.
        """
        backoff = Backoff()
        while True:
            try:
                done = await self.commit(item)
            except StoreError as exc:
                if is_disk_full(exc):
                    DISK.failed(INGESTOR_COMPONENT, exc)  # logged once, then rate-limited
                else:
                    log.error("%s; retrying", exc)
            else:
                DISK.cleared(INGESTOR_COMPONENT)
                return done
            if stop.is_set():
                if self._give_up_at is None:
                    self._give_up_at = time.monotonic() + self.stop_grace
                if time.monotonic() >= self._give_up_at:
                    self._gave_up = True
                    self.stats.unwritten += len(item.acks)
                    return None
            await asyncio.sleep(backoff.delay())

    async def commit(self, d: Decoded) -> Settled:
        """One transaction: settle a decoded batch against the store and write it; then count it."""
        await self.finish(d)
        store = self.store
        async with store.transaction("writing an ingest batch"):
            # The store, not this process's memory, knows each device's delivery state and open
            # excursions, so several ingestors can share one stream: read them in the transaction.
            devices = sorted({c.accepted.reading.device_id for c in d.readings})
            states = await store.delivery_states(devices)
            maybe = to_look_up(d.readings, states)
            stored = await store.existing(maybe) if maybe else {}
            done = settle(d.readings, d.rejected, states, stored, await store.open_excursions(devices),
                          await store.next_excursion_id(), self.limits)
            await store.write_rows(done.batch)
        st = self.stats
        st.accepted += done.accepted
        st.duplicates += done.duplicates
        st.quarantined += len(d.rejected.quarantine) + done.conflicts + done.implausible
        st.batches += 1
        return done

    def _send_acks(self, everything: bool = False) -> None:
        """End-to-end acknowledgement: everything up to `acked_seq` is durably stored.

        Retained on the device's ack topic, at most once a second per device: every message
        costs the broker as much as a reading, and a device only needs the latest mark. The
        payload (`packproof.watermark.Delivery`) also lists the gaps, so a device resends exactly
        what is missing; duplicates get an ack too, or a device whose ack was lost (a broker
        restart forgets retained messages) would resend forever.
        """
        now = time.monotonic()
        for device_id in list(self._pending_acks):
            if everything or now - self._acked_at.get(device_id, 0.0) >= self.ack_interval:
                ack = self._pending_acks.pop(device_id)
                self._ack_infos.append(self.client.publish(ack.topic, ack.payload, qos=1, retain=True))
                self._acked_at[device_id] = now
        while self._ack_infos and settled(self._ack_infos[0]):
            self._ack_infos.popleft()

    # ---- the decode stage -----------------------------------------------------------

    async def _process(self, msgs: list[Message]) -> Decoded:
        """Decode, verify and check thresholds: the CPU-heavy stage, outside any transaction.

        Decoding runs in a worker thread, not on the event loop: the writer's transaction is
        some ten awaits on the database, and each of them used to wait until a whole batch
        had decoded (2,000 readings, 300-600 ms), so a commit took 400-700 ms instead of 30
        (measured on PostgreSQL). In a thread the loop gets the GIL back within the switch
        interval, and whenever libsodium verifies a signature (it releases the GIL).
        """
        rejected = IngestBatch()
        pending, unknown = await asyncio.to_thread(self._decode_all, msgs, rejected)
        if unknown:
            await self._look_up([m.topic.split("/")[3] for m in unknown])
            more, _ = self._decode_all(unknown, rejected, retry=True)
            pending += more
        return Decoded(pending, rejected, [(m.mid, m.qos) for m in msgs])

    async def finish(self, d: Decoded) -> None:
        """The verifiers' answers (a bad signature is quarantined), and each reading's threshold findings."""
        if d.finished:
            return
        for future, chunk in d.pending:
            results = iter(await self._answers(future, chunk) if future is not None else ())
            for a, m in chunk:
                if a.check is not None and not next(results):
                    quarantine(d.rejected, m, bad_signature(a.reading))
                    continue
                d.readings.append(Checked(a, m, evaluate(a.entry.profile, a.reading)))
        d.pending, d.finished = [], True

    def _decode_all(self, msgs: list[Message], rejected: IngestBatch,
                    retry: bool = False) -> tuple[list[Chunk], list[Message]]:
        """Decoded chunks, and messages from devices not in the registry yet (quarantined on `retry`).

        With verifier processes, each chunk's signatures go to them as soon as it is decoded,
        while this thread decodes the next: libsodium's time leaves this process and its GIL.
        """
        unknown: list[Message] = []
        registry, verify, pool, limits = self.registry, self.verify_signatures, self._verifiers, self.limits
        pending: list[Chunk] = []
        for start in range(0, len(msgs), VERIFY_CHUNK):
            chunk: list[tuple[Accepted, Message]] = []
            for m in msgs[start:start + VERIFY_CHUNK]:
                try:
                    chunk.append((decode(m.topic, m.payload, registry, verify, m.received_at, pool is not None,
                                         limits), m))
                except InvalidReading as exc:
                    if exc.code == "unknown_device" and not retry:
                        unknown.append(m)
                    else:
                        quarantine(rejected, m, exc)
            checks = [a.check for a, _ in chunk if a.check is not None]
            pending.append((self._submit(checks) if checks else None, chunk))
        return pending, unknown

    async def _start_verifiers(self) -> None:
        """Have every verifier process running before the first reading arrives.

        The pool spawns its processes on first use, and a spawned Python takes about a second
        to start here: the readings of the first batches waited for it (publish-to-sealed p50
        1.5 s in the first second of a run at 4,000/s, 0.6 s after).
        """
        if self._verifiers is None:
            return
        try:
            started = [self._verifiers.submit(verify_many, []) for _ in range(self.verify_workers)]
            await asyncio.gather(*(asyncio.wrap_future(f) for f in started))
        except BrokenProcessPool as exc:
            raise ConfigError(f"the signature verifier processes (--verify-workers {self.verify_workers}) did not "
                              f"start: {exc}; run with --verify-workers 0 to check signatures in the ingestor") from exc

    def _submit(self, checks: list[tuple[bytes, bytes, bytes]]) -> Future[list[bool]]:
        assert self._verifiers is not None
        try:
            return self._verifiers.submit(verify_many, checks)
        except BrokenProcessPool:  # a verifier died since the last batch: check these here
            self._restart_verifiers()
            done: Future[list[bool]] = Future()
            done.set_result(verify_many(checks))
            return done

    async def _answers(self, future: Future[list[bool]], chunk: list[tuple[Accepted, Message]]) -> list[bool]:
        """The verifier's answers; if it died with the chunk, this process checks the chunk itself."""
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            self._restart_verifiers()
            return await asyncio.to_thread(verify_many, [a.check for a, _ in chunk if a.check is not None])

    def _restart_verifiers(self) -> None:
        """A new pool, unless another chunk of the same batch already made one."""
        assert self._verifiers is not None
        try:
            self._verifiers.submit(int).result()
            return  # this pool works
        except BrokenProcessPool:
            pass
        log.error("a signature verifier process died; checking its readings here and starting another")
        self._verifiers.shutdown(wait=False)
        self._verifiers = verifier_pool(self.verify_workers)
