"""The dashboard's live feed (issue 18): new readings, excursions and blocks as server-sent events
(WHATWG HTML Living Standard, "Server-sent events").

The API reads a store other processes write, so it learns of new rows by looking: one poller per
API process reads what is new since its watermarks (the last reading id, the last excursion id,
the head block's height: each by a primary key, `Store.readings_after`, `excursions_after`,
`head_block`) every `interval` seconds, and only while someone listens. It hands each event to
every subscriber's bounded queue; a subscriber too slow to keep up is dropped (its queue is full)
rather than holding memory, and its browser reconnects. At most `max_clients` subscribers at a
time; more are refused (HTTP 503) so a crowd of tabs cannot exhaust the API.

A poll's new readings go out as one `readings` event per shipment (the quantities the charts
draw, not the signed bodies), so a busy fleet costs a listener one event per shipment a poll;
a poll that finds more than `batch` new rows sends a `lag` event saying how far the feed
skipped, and the page reloads its series from the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from packproof.reading import epoch_seconds
from packproof.records import Excursion, StoredRow
from packproof.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its `event` name, and the JSON of `data`."""

    name: str
    data: dict[str, Any]
    shipment_id: str | None = None  # None: for every subscriber (blocks)

    def encode(self) -> bytes:
        return b"event: " + self.name.encode() + b"\ndata: " + orjson.dumps(self.data) + b"\n\n"


def reading_data(row: StoredRow) -> dict[str, Any]:
    """What a chart needs of one stored reading (not its signed body)."""
    r = orjson.loads(row.body)
    where = r.get("location")
    return {"reading_id": f"{row.device_id}:{row.seq}", "device_id": row.device_id, "seq": row.seq, "ts": r["ts"],
            "t": epoch_seconds(r["ts"]), "temperature_c": r["temperature_c"],
            "vibration.peak_g": r["vibration"]["peak_g"], "shock.peak_g": r["shock"]["peak_g"],
            "pressure_kpa": r["pressure_kpa"], "lat": where["lat"] if where else None,
            "lon": where["lon"] if where else None}


def readings_events(rows: list[StoredRow]) -> list[Event]:
    """One `readings` event per shipment with new readings in a poll (its readings in store order), so a
    busy fleet costs each listener an event per shipment a poll, not one per reading; record leaves
    (device ids starting with "~") are left out."""
    by_shipment: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if not row.device_id.startswith("~"):
            by_shipment.setdefault(row.shipment_id, []).append(reading_data(row))
    return [Event("readings", {"shipment_id": sid, "readings": found}, sid) for sid, found in by_shipment.items()]


def excursion_event(e: Excursion) -> Event:
    return Event("excursion", {"id": e.id, "device_id": e.device_id, "shipment_id": e.shipment_id, "test": e.test,
                               "quantity": e.quantity, "severity": e.severity, "start": e.start,
                               "start_seq": e.start_seq, "peak": e.peak, "limit": e.limit,
                               "limit_crossed": e.limit_crossed}, e.shipment_id)


class Subscriber:
    def __init__(self, shipment_id: str | None, depth: int) -> None:
        self.shipment_id = shipment_id
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(depth)  # None: you were dropped

    def offer(self, event: Event) -> bool:
        """Queue the event if it concerns this subscriber; False when the queue is full (too slow)."""
        if event.shipment_id is not None and self.shipment_id not in (None, event.shipment_id):
            return True
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True


class TooManyListeners(Exception):
    """Every subscriber slot is taken (HTTP 503)."""


class LiveFeed:
    """One poller for every subscriber of this API process."""

    def __init__(self, store: Store, *, interval: float = 0.5, max_clients: int = 32, batch: int = 2000,
                 depth: int = 256) -> None:
        self.store, self.interval, self.max_clients, self.batch, self.depth = store, interval, max_clients, batch, depth
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._marks: tuple[int, int, int] | None = None  # reading id, excursion id, head height
        self.polls = 0
        self.closed = False  # the API is stopping: no new listener

    @property
    def listeners(self) -> int:
        return len(self._subscribers)

    def subscribe(self, shipment_id: str | None) -> Subscriber:
        if self.closed:
            raise TooManyListeners("the API is stopping; the page reconnects to the next one")
        if len(self._subscribers) >= self.max_clients:
            raise TooManyListeners(f"the live feed has its {self.max_clients} listeners already; try again later")
        sub = Subscriber(shipment_id, self.depth)
        self._subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="packproof-live-feed")
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    async def close(self) -> None:
        """End every subscriber's stream (each gets None) and the poller."""
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in list(self._subscribers):
            while True:  # make room: the end matters more than what the page has not read yet
                try:
                    sub.queue.put_nowait(None)
                    break
                except asyncio.QueueFull:
                    sub.queue.get_nowait()

    async def _watermarks(self) -> tuple[int, int, int]:
        head = await self.store.head_block()
        return await self.store.max_id(), await self.store.next_excursion_id() - 1, head.height if head else -1

    async def _run(self) -> None:
        """Poll while anyone listens; stop (and forget the watermarks) when the last one leaves."""
        try:
            self._marks = await self._watermarks()
            while self._subscribers:
                await asyncio.sleep(self.interval)
                try:
                    events = await self.poll()
                except Exception as exc:  # a store hiccup must not end the feed; /health reports the store
                    log.warning("live feed: %s", exc)
                    continue
                for event in events:
                    for sub in list(self._subscribers):
                        if not sub.offer(event):
                            self._subscribers.discard(sub)
                            with contextlib.suppress(asyncio.QueueEmpty):
                                sub.queue.get_nowait()
                            sub.queue.put_nowait(None)
        finally:
            self._marks = None
            if self._subscribers and not self.closed:  # one joined while this poller was ending
                self._task = asyncio.create_task(self._run(), name="packproof-live-feed")

    async def poll(self) -> list[Event]:
        """What is new since the watermarks, in order: readings, excursions, then blocks."""
        assert self._marks is not None
        reading_mark, excursion_mark, height = self._marks
        events: list[Event] = []
        rows = await self.store.readings_after(reading_mark, self.batch + 1)
        if len(rows) > self.batch:
            newest = await self.store.max_id()
            events.append(Event("lag", {"skipped": newest - reading_mark}))
            reading_mark = newest
        else:
            events += readings_events(rows)
            reading_mark = rows[-1].id if rows else reading_mark
        excursions = await self.store.excursions_after(excursion_mark, self.batch)
        events += [excursion_event(e) for e in excursions]
        excursion_mark = excursions[-1].id if excursions else excursion_mark
        head = await self.store.head_block()
        if head is not None and head.height > height:
            events.append(Event("block", {"height": head.height, "hash": head.hash.hex(),
                                          "leaves": head.last_id - head.first_id + 1, "blocks": head.height - height}))
            height = head.height
        self._marks = (reading_mark, excursion_mark, height)
        self.polls += 1
        return events
