"""`/health` for orchestrators and `/metrics` in Prometheus text format."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from anchor.ledger import LedgerFile
from anchor.sealer import ledger_break
from api.deps import SettingsDep, StoreDep
from api.schemas import Health

router = APIRouter(tags=["operations"])
metrics_router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, response_model_exclude_none=True)
async def health(store: StoreDep, settings: SettingsDep) -> Health:
    """"ok" only while the ledger file continues the chain the store records: a deleted or replaced
    ledger stops sealing, and an orchestrator watching this must see it (read from the file's tail)."""
    counters = await store.counters()
    head = await store.head_block()
    ledger = LedgerFile(settings.data_dir.ledger)
    problem = await asyncio.to_thread(ledger_break, ledger, head, in_flight_ok=True)
    if problem:  # or blocks were sealed between the two reads: ask once more
        head = await store.head_block()
        problem = await asyncio.to_thread(ledger_break, ledger, head, in_flight_ok=True)
    return Health(status="ledger-broken" if problem else "ok", readings=counters.get("readings_accepted", 0),
                  blocks=head.height + 1 if head else 0, problem=problem)


class _Snapshot(Collector):
    """Exposes one read of the store's counters; the ingestor maintains them transactionally."""

    def __init__(self, counters: dict[str, int], height: int) -> None:
        self.counters, self.height = counters, height

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
        yield GaugeMetricFamily("packproof_ledger_height", "Height of the newest sealed block (-1: none)",
                                value=self.height)


@metrics_router.get("/metrics", response_class=Response)
async def metrics(store: StoreDep) -> Response:
    head = await store.head_block()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await store.counters(), head.height if head else -1))
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")
