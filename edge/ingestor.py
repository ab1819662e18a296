"""The ingestor: MQTT in, checked readings and quarantined payloads out, in batches.

Shape of the flow (one process; paho's thread, the event loop, a decode thread):

    paho network thread --on_message--> inbox (bounded deque)          edge/subscriber.py
        --> check stage (worker thread): validate, verify, thresholds  edge/checks.py, edge/verifiers.py
        --> write queue (2 batches) --> writer (event loop): one store transaction per batch,
            which reads the batch's devices' state, settles the batch against it (new or
            duplicate, delivery marks, excursions: edge/settle.py) and writes the result
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
import logging
import time
from dataclasses import dataclass

from packproof import failpoints
from packproof.diskfull import DISK, Backoff, is_disk_full
from packproof.edge.checks import CheckStage, Decoded
from packproof.edge.options import IngestorOptions, MqttOptions
from packproof.edge.registry import RegistryCache
from packproof.edge.settle import Settled, settle, to_look_up
from packproof.edge.subscriber import Subscriber
from packproof.edge.verifiers import VerifierPool
from packproof.errors import StoreError
from packproof.health import HEARTBEAT
from packproof.store import Store

log = logging.getLogger(__name__)

INGESTOR_COMPONENT = "ingestor"  # as /health and the progress line name it when its disk is full
IDLE_POLL = 0.2  # s an idle ingestor waits for a message before it looks at its acks and status again


@dataclass(slots=True)
class IngestStats:
    """What this ingestor has done since it started, for its log line, the progress display and tests."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    batches: int = 0
    unwritten: int = 0  # messages given up at a stop while the store could not write; never acknowledged

    @property
    def processed(self) -> int:
        """Messages settled one way or another (tests wait for it)."""
        return self.accepted + self.duplicates + self.quarantined


class Ingestor:
    """The pipeline: batches from the subscriber through the check stage into store transactions.

    It owns the loop that cuts the inbox into batches, the writer that commits them (retrying
    while the store cannot write), and the order of acknowledgement; what each stage does is in
    its own module. Built from two option records (edge/options.py), passed whole.
    """

    def __init__(self, store: Store, mqtt: MqttOptions | None = None, options: IngestorOptions | None = None) -> None:
        self.store = store
        self.options = o = options or IngestorOptions()
        self.subscriber = Subscriber(mqtt or MqttOptions(), o.inbox_max, o.ack_interval)
        self.session = self.subscriber.session
        self.registry = RegistryCache(store, o.profile_table)
        self.verifiers = VerifierPool(o.verify_workers)
        self.decoder = CheckStage(self.registry, self.verifiers, o.verify_signatures, o.limits)
        self.stats = IngestStats()
        self._write_q: asyncio.Queue[Decoded | None] = asyncio.Queue(2)
        self._give_up_at: float | None = None
        self._gave_up = False
        self._next_beat = 0.0  # monotonic time the status is written again even if unchanged
        self._retry_at = 0.0  # after a failed status write: not again before this (monotonic)

    async def reload_registry(self) -> None:
        """The registry is all the ingestor caches: delivery state and open excursions are read per batch."""
        await self.registry.reload()

    async def connect(self, timeout: float = 10.0) -> None:
        await self.verifiers.start()
        await self.subscriber.connect(timeout)

    async def run(self, stop: asyncio.Event) -> None:
        """Process messages until `stop`; then drain the inbox, write, ack and disconnect.

        While the store cannot write (a full disk), stopping does not wait for it forever: see
        `_commit_retrying`; what was not written is not acknowledged."""
        sub, o = self.subscriber, self.options
        writer = asyncio.create_task(self._writer(stop))
        try:
            while True:
                if self._gave_up:
                    self.stats.unwritten += len(sub.inbox)
                    sub.inbox.clear()
                    break
                if not sub.inbox:
                    if stop.is_set():
                        break
                    await sub.wait(stop, IDLE_POLL)
                    if sub.acks_waiting and self._write_q.empty():
                        sub.send_acks()  # acks held back by the once-a-second limit
                    await self.publish_status()
                    continue
                if len(sub.inbox) < o.batch_max and not stop.is_set():
                    # Linger briefly so a batch amortises its transaction and fsync over many
                    # readings: measured 4.6 readings per batch without it at 3,000/s. 50 ms
                    # rather than 20 took the ingestor from 245 to 219 µs a reading at 2,000/s
                    # on amqtt (batches of ~100 instead of ~50), for 35 ms more publish-to-sealed.
                    await asyncio.sleep(o.linger)
                msgs = sub.take(o.batch_max)
                failpoints.bug("ingest.bug")
                self.stats.received += len(msgs)
                while True:
                    try:  # the registry comes from the store, which may be away for a while
                        await self.registry.refresh()
                        decoded = await self.decoder.process(msgs)
                        break
                    except StoreError as exc:
                        log.error("%s; retrying in 1 s", exc)
                        await asyncio.sleep(1.0)
                await self._write_q.put(decoded)
                await self.publish_status()  # the heartbeat, also when never idle
        finally:
            await self._write_q.put(None)
            await writer
            await sub.close()
            await self.publish_status()
            self.verifiers.shutdown()
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
        session = self.session
        if now < self._next_beat and (not session.changed or now < self._retry_at):
            return
        session.changed = False
        self._next_beat = now + HEARTBEAT
        try:
            await self.store.set_status(f"ingestor:{session.client_id}", session.status())
        except StoreError as exc:
            session.changed = True
            self._retry_at = now + HEARTBEAT
            if not is_disk_full(exc):
                log.warning("could not record the ingestor's status (%s); will retry in %.0f s", exc, HEARTBEAT)

    async def _writer(self, stop: asyncio.Event) -> None:
        sub = self.subscriber
        while (item := await self._write_q.get()) is not None:
            done = await self._commit_retrying(item, stop)
            if done is not None:
                sub.ack_many(item.acks)
                sub.queue_acks(done.acks)
                sub.send_acks()
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
                if self.subscriber.acks_waiting:
                    # What is stored is acknowledged now, not after the pause: the once-a-second limit
                    # is for throughput, and a device waiting out a long pause should free what it can.
                    # Left for the stop, this ack raced the disconnect on amqtt and was lost (seen in CI).
                    self.subscriber.send_acks(everything=True)
                if is_disk_full(exc):
                    DISK.failed(INGESTOR_COMPONENT, exc)  # logged once, then rate-limited
                else:
                    log.error("%s; retrying", exc)
            else:
                DISK.cleared(INGESTOR_COMPONENT)
                return done
            if stop.is_set():
                if self._give_up_at is None:
                    self._give_up_at = time.monotonic() + self.options.stop_grace
                if time.monotonic() >= self._give_up_at:
                    self._gave_up = True
                    self.stats.unwritten += len(item.acks)
                    return None
            await asyncio.sleep(backoff.delay())

    async def commit(self, d: Decoded) -> Settled:
        """One transaction: read the batch's devices' state, settle the batch against it, write; then count it.

        The store, not this process's memory, knows each device's delivery state and open
        excursions, so several ingestors can share one stream: they are read in the transaction.
        """
        await self.decoder.finish(d)
        store = self.store
        async with store.transaction("writing an ingest batch"):
            devices = sorted({c.accepted.reading.device_id for c in d.readings})
            states = await store.delivery_states(devices)
            maybe = to_look_up(d.readings, states)
            stored = await store.existing(maybe) if maybe else {}
            done = settle(d.readings, d.rejected, states, stored, await store.open_excursions(devices),
                          await store.next_excursion_id(), self.options.limits)
            await store.write_rows(done.batch)
        st = self.stats
        st.accepted += done.accepted
        st.duplicates += done.duplicates
        st.quarantined += len(d.rejected.quarantine) + done.conflicts + done.implausible
        st.batches += 1
        return done
