"""`/health` for orchestrators and `/metrics` in Prometheus text format."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from packproof.anchor.ledger import LedgerFile
from packproof.anchor.sealer import ledger_break
from packproof.api.deps import SettingsDep, StoreDep
from packproof.api.schemas import DiskFullOut, Health
from packproof.diskfull import DISK
from packproof.health import problems

router = APIRouter(tags=["operations"])
metrics_router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, response_model_exclude_none=True)
async def health(store: StoreDep, settings: SettingsDep) -> Health:
    """200 while the API can read, whatever the writers' state: a full disk pauses intake, not reads,
    so it is reported in the body (which writer, since when) rather than as an outage. "ok" only
    while the ledger file continues the chain the store records (a deleted or replaced ledger stops
    sealing; read from the file's tail) and no component reports it cannot do its job."""
    counters = await store.counters()
    head = await store.head_block()
    ledger = LedgerFile(settings.data_dir.ledger)
    broken = await asyncio.to_thread(ledger_break, ledger, head, in_flight_ok=True)
    if broken:  # or blocks were sealed between the two reads: ask once more
        head = await store.head_block()
        broken = await asyncio.to_thread(ledger_break, ledger, head, in_flight_ok=True)
    statuses = await store.statuses()
    full = DISK.current()
    found = [f"{d.component}: disk full since {d.since_text} ({d.error}); intake is paused, reads work, and it "
             "resumes by itself when space is freed" for d in full] + problems(statuses, time.time())
    if broken:
        found.insert(0, f"ledger: {broken}")
    status = "ledger-broken" if broken else "disk full" if full else "degraded" if found else "ok"
    return Health(status=status, readings=counters.get("readings_accepted", 0),
                  blocks=head.height + 1 if head else 0, problem=broken, problems=found, components=statuses,
                  disk_full=[DiskFullOut(component=d.component, since=d.since_text, error=d.error) for d in full])


class _Snapshot(Collector):
    """Exposes one read of the store's counters; the ingestor maintains them transactionally."""

    def __init__(self, counters: dict[str, int], height: int, statuses: dict[str, dict[str, Any]]) -> None:
        self.counters, self.height, self.statuses = counters, height, statuses

    def collect(self):  # type: ignore[no-untyped-def]
        c = self.counters
        yield CounterMetricFamily("packproof_readings_accepted", "Readings stored (once each)",
                                  value=c.get("readings_accepted", 0))
        yield CounterMetricFamily("packproof_readings_duplicate", "Duplicate readings recognised and not stored again",
                                  value=c.get("readings_duplicate", 0))
        q = CounterMetricFamily("packproof_quarantined", "Payloads quarantined, by reason", labels=["reason"])
        for name, value in sorted(c.items()):
            if name.startswith("quarantined:"):
                q.add_metric([name.split(":", 1)[1]], value)
        yield q
        b = CounterMetricFamily("packproof_broker_refused", "What the embedded broker refused, by kind "
                                "(login, publish, subscribe)", labels=["kind"])
        for name, value in sorted(c.items()):
            if name.startswith("broker_refused:"):
                b.add_metric([name.split(":", 1)[1]], value)
        yield b
        losses = CounterMetricFamily("packproof_ingestor_session_losses", "MQTT sessions an ingestor lost "
                                     "(a broker restart, a cut link, a client taking its client id)",
                                     labels=["client_id"])
        for st in self.statuses.values():
            if st.get("component") == "ingestor":
                losses.add_metric([str(st.get("client_id"))], int(st.get("losses", 0)))
        yield losses
        yield GaugeMetricFamily("packproof_ledger_height", "Height of the newest sealed block (-1: none)",
                                value=self.height)
        full = GaugeMetricFamily("packproof_disk_full", "1 while this writer cannot write for lack of space",
                                 labels=["component"])
        for d in DISK.current():
            full.add_metric([d.component], 1)
        yield full


@metrics_router.get("/metrics", response_class=Response)
async def metrics(store: StoreDep) -> Response:
    head = await store.head_block()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await store.counters(), head.height if head else -1, await store.statuses()))
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")
