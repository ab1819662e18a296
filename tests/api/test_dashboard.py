"""The dashboard's endpoints (issue 18): pages, the charts' series and tracks, the live feed.

On both store engines: a pack's series is downsampled with LTTB to the points asked for, keeps
its extremes and ends, carries the profile's UN 38.3 bands, reads on as readings arrive (a late
one below the last seq included); the live feed hands out new readings (not record leaves),
excursions and blocks, and refuses listeners beyond its bound. Over a real `packproof api`:
the event stream as a browser reads it.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from packproof.anchor.ledger import LedgerFile
from packproof.anchor.sealer import Sealer
from packproof.api.deps import ApiSettings
from packproof.api.live import LiveFeed, TooManyListeners
from packproof.api.main import create_app
from packproof.canonical import canonical_bytes
from packproof.crypto import load_or_create_ledger_key
from packproof.edge.thresholds import BUILTIN_PROFILES, t3_limit_g
from packproof.net import free_port
from packproof.paths import DataDir
from packproof.reading import Reading
from packproof.records import DeviceBatchStats, Excursion, IngestBatch, ReadingRow
from packproof.rfc6962 import leaf_hash
from packproof.store import Store
from tests.conftest import Service
from tests.storeutil import write_batch

SPIKE = 1234  # the one hot reading


def body(device: str, seq: int) -> bytes:
    return canonical_bytes(Reading.model_validate({
        "v": 1, "device_id": device, "shipment_id": "S", "seq": seq,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_790_000_000 + seq)),
        "temperature_c": 80.5 if seq == SPIKE else 20.0 + (seq % 50) / 10,
        "vibration": {"peak_g": 0.3, "freq_hz": 20.0 + seq % 100},
        "shock": {"peak_g": 0.0, "duration_ms": 0.0}, "pressure_kpa": 101.0,
        "location": {"lat": 50.0 + seq / 10_000, "lon": 8.0 + seq / 20_000}}))


async def write(store: Store, device: str, seqs: list[int], excursions: list[Excursion] = ()) -> None:  # type: ignore[assignment]
    b = IngestBatch(excursions=list(excursions))
    for seq in seqs:
        data = body(device, seq)
        b.readings.append(ReadingRow(device, seq, "S", "2026-11-22T08:00:00Z", 0.0, data, leaf_hash(data)))
    b.stats.append(DeviceBatchStats(device, "S", len(seqs), min(seqs), max(seqs), "t0", "t1", 0.0, max(seqs), 0, "[]"))
    await write_batch(store, b)


async def seal(store: Store, dirs: DataDir) -> None:
    sealer = Sealer(store, LedgerFile(dirs.ledger), load_or_create_ledger_key(dirs.ledger_key), max_leaves=5000)
    await sealer.recover()
    while await sealer.seal_once():
        pass


@asynccontextmanager
async def served(tmp_path: Path, store_url: str,
                 n: int = 3000) -> AsyncIterator[tuple[httpx.AsyncClient, Store, DataDir]]:
    dirs = DataDir(tmp_path / "data", store_url=store_url)
    dirs.root.mkdir()
    store = await dirs.open_writer()
    await store.register({"S": "un38.3-cell"}, [("d", "S", None), ("e", "S", None)])
    await write(store, "d", [s for s in range(n) if s != 50])  # seq 50 arrives late
    await seal(store, dirs)
    app = create_app(ApiSettings(dirs, live_clients=2))
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client, store, dirs
    finally:
        await store.close()


async def test_a_series_is_downsampled_with_its_extremes_ends_and_bands(store_url: str, tmp_path: Path) -> None:
    async with served(tmp_path, store_url) as (client, _, _):
        r = await client.get("/shipments/S/packs/d/series", params={"quantity": "temperature_c", "points": 200})
        assert r.status_code == 200, r.text
        s = r.json()
        assert (s["total"], s["points"], len(s["seq"]), len(s["t"]), len(s["y"])) == (2999, 200, 200, 200, 200)
        assert s["seq"][0] == 0 and s["seq"][-1] == 2999 and SPIKE in s["seq"]
        assert s["y"][s["seq"].index(SPIKE)] == 80.5 and s["limit"] is None
        assert s["t"] == sorted(s["t"]) and s["t"][0] == 1_790_000_000
        assert {(b["value"], b["severity"], b["side"]) for b in s["bands"]} == {
            (72.0, "violation", "above"), (60.0, "warning", "above"), (-20.0, "warning", "below"),
            (-40.0, "violation", "below")}
        vib = (await client.get("/shipments/S/packs/d/series", params={"quantity": "vibration.peak_g",
                                                                         "points": 50})).json()
        assert len(vib["limit"]) == 50 and vib["bands"] == []  # T.3's limit is per point: it follows the frequency
        cell = BUILTIN_PROFILES["un38.3-cell"]
        assert vib["limit"] == [t3_limit_g(cell, 20.0 + seq % 100) for seq in vib["seq"]] and vib["limit"][-1] == 8.0
        every = (await client.get("/shipments/S/packs/d/series", params={"points": 5000})).json()
        assert every["points"] == 2999 and every["seq"] == [s for s in range(3000) if s != 50]


async def test_bad_requests_are_named(store_url: str, tmp_path: Path) -> None:
    async with served(tmp_path, store_url, n=10) as (client, _, _):
        r = await client.get("/shipments/S/packs/d/series", params={"quantity": "humidity"})
        assert r.status_code == 422 and "quantity must be one of temperature_c" in r.json()["detail"]
        r = await client.get("/shipments/S/packs/nope/series")
        assert r.status_code == 404 and r.json()["detail"] == "device 'nope' is not a pack of shipment 'S'"
        r = await client.get("/shipments/X/packs/d/track")
        assert r.status_code == 404 and r.json()["detail"] == "shipment 'X' is not known"
        assert (await client.get("/shipments/S/packs/d/series", params={"points": 1})).status_code == 422
        assert (await client.get("/shipments/S/packs/d/series", params={"points": 10_001})).status_code == 422


async def test_the_series_reads_on_and_takes_a_late_reading(store_url: str, tmp_path: Path) -> None:
    async with served(tmp_path, store_url, n=100) as (client, store, _):
        first = (await client.get("/shipments/S/packs/d/series", params={"points": 1000})).json()
        assert first["total"] == 99 and 50 not in first["seq"]
        await write(store, "d", [100, 101])  # read on from the last seq
        assert (await client.get("/shipments/S/packs/d/series", params={"points": 1000})).json()["total"] == 101
        await write(store, "d", [50])  # below the last seq: the count gives it away, the device is read again
        again = (await client.get("/shipments/S/packs/d/series", params={"points": 1000})).json()
        assert again["total"] == 102 and again["seq"] == list(range(102))


async def test_the_track_is_thinned_with_its_ends(store_url: str, tmp_path: Path) -> None:
    async with served(tmp_path, store_url) as (client, _, _):
        t = (await client.get("/shipments/S/packs/d/track", params={"points": 100})).json()
        assert t["points"] == 100 and t["seq"][0] == 0 and t["seq"][-1] == 2999 and t["total"] == 2999
        assert t["lat"][0] == 50.0 and t["lon"][-1] == pytest.approx(8.0 + 2999 / 20_000)


async def test_pages_are_one_document_with_a_relative_base(store_url: str, tmp_path: Path) -> None:
    async with served(tmp_path, store_url, n=5) as (client, _, _):
        for path, base in [("/", "./"), ("/ui/ledger", "../"), ("/ui/shipments/S", "../../"),
                           ("/ui/a/b/c", "../../../")]:
            r = await client.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            assert f'<base href="{base}">' in r.text and 'src="ui/assets/app.js"' in r.text
        js = await client.get("/ui/assets/verify.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        for bad in ("/ui/assets/nope.js", "/ui/assets/index.html", "/ui/assets/.hidden.js"):
            assert (await client.get(bad)).status_code == 404, bad
        escape = await client.get("/ui/assets/..%2f..%2fmain.py")  # no file outside the assets: the page instead
        assert escape.headers["content-type"].startswith("text/html") and "create_app" not in escape.text


def test_nothing_is_fetched_from_elsewhere() -> None:
    """Every asset is the package's own: no absolute URL a page loads (the tile URL is the user's)."""
    static = Path(__file__).resolve().parents[2] / "api" / "static"
    for f in static.iterdir():
        text = f.read_text()
        loads = re.findall(r"""(?:src|href|import|from|url\()\s*=?\s*["'(]?\s*(https?:)?//""", text)
        assert not [x for x in loads if x], f"{f.name} loads from another origin"
        assert "fetch(\"http" not in text and "fetch(`http" not in text


async def test_the_live_feed_hands_out_what_is_new(store_url: str, tmp_path: Path) -> None:
    async with served(tmp_path, store_url, n=10) as (client, store, dirs):
        feed: LiveFeed = client.app.state.live_feed  # type: ignore[attr-defined]
        first, other = feed.subscribe("S"), feed.subscribe("T")
        with pytest.raises(TooManyListeners, match="the live feed has its 2 listeners already"):
            feed.subscribe(None)
        assert (await client.get("/events/stream", params={"shipment": "S" * 65})).status_code == 422
        r = await client.get("/events/stream")
        assert r.status_code == 503 and r.headers["retry-after"] == "10" and "2 listeners" in r.json()["detail"]
        feed._marks = await feed._watermarks()
        await store.register({"S": "un38.3-cell"}, [("f", "S", None)])  # a record leaf: no reading event
        await write(store, "d", [10, 11], [Excursion(1, "d", "S", "T.2", "temperature_c", "violation", "t", "t", 11,
                                                     11, 80.0, 72.0, "temperature_c 80 > 72 °C", 1, True)])
        await seal(store, dirs)
        events = await feed.poll()
        assert [e.name for e in events] == ["readings", "excursion", "block"]  # one readings event per shipment
        readings = events[0].data["readings"]
        assert events[0].data["shipment_id"] == "S" and [r["reading_id"] for r in readings] == ["d:10", "d:11"]
        assert readings[1]["temperature_c"] == 21.1 and readings[1]["lat"] == 50.0011
        assert events[1].data["limit_crossed"] == "temperature_c 80 > 72 °C" and events[2].data["blocks"] == 1
        assert all(first.offer(e) for e in events) and first.queue.qsize() == 3 and other.offer(events[0])
        assert other.queue.qsize() == 0  # another shipment's listener gets no reading of S
        assert await feed.poll() == []  # the watermarks moved on
        feed.unsubscribe(first)
        feed.unsubscribe(other)


def test_the_event_stream_over_http(tmp_path: Path) -> None:
    """A real `packproof api`: the stream opens with `hello`, then a reading written by another
    process's store arrives as a `reading` event."""
    import asyncio

    dirs = DataDir(tmp_path / "data")
    dirs.root.mkdir()

    async def setup() -> None:
        store = await dirs.open_writer()
        await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
        await write(store, "d", [0])
        await seal(store, dirs)
        await store.close()

    async def more() -> None:
        store = await dirs.open_writer()
        await write(store, "d", [1])
        await store.close()

    asyncio.run(setup())
    port = free_port()
    api = Service("api", "--data-dir", str(dirs.root), "--port", str(port), log=tmp_path / "api.log")
    try:
        api.wait_port(port)
        with httpx.stream("GET", f"http://127.0.0.1:{port}/events/stream", params={"shipment": "S"},
                          timeout=20) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            assert next(lines) == "retry: 3000" and next(lines) == "event: hello"
            asyncio.run(more())
            seen = []
            for line in lines:
                seen.append(line)
                if line.startswith("data: {\"shipment_id\""):
                    break
            assert "event: readings" in seen and '"reading_id":"d:1"' in seen[-1]
    finally:
        api.stop()


async def test_the_cache_holds_a_bounded_number_of_readings(store_url: str, tmp_path: Path) -> None:
    async with served(tmp_path, store_url, n=100) as (client, store, _):
        await write(store, "e", list(range(60)))
        cache = client.app.state.series_cache  # type: ignore[attr-defined]
        cache.max_readings = 120
        for device in ("d", "e"):
            assert (await client.get(f"/shipments/S/packs/{device}/series")).status_code == 200
        assert list(cache._cols) == ["e"]  # 99 + 60 > 120: d, the least recently used, went
        assert (await client.get("/shipments/S/packs/d/series")).json()["total"] == 99  # read again when asked
        assert list(cache._cols) == ["d"]
