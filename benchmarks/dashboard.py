"""The dashboard with a pack of 100,000 readings: series latency and first render (issue 18).

A store with one shipment whose pack has N readings (a day-long trip at 1 Hz is 86,400) is
served by a real `packproof api`; then

* the series endpoint (`GET /shipments/S/packs/P/series?points=800`) is timed cold (the API
  decodes the pack's readings once) and warm (read on from the cache, LTTB only), per quantity;
* the system's Chromium (Playwright) loads the shipment page, cold and warm, and the time from
  navigation to the page's own "rendered" mark (four charts, the track and the tables drawn) is
  taken from the page's Performance clock.

    python benchmarks/dashboard.py [--readings 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from packproof.api.series import DeviceColumns, downsample, profile_of
from packproof.canonical import canonical_bytes
from packproof.crypto import load_or_create_ledger_key
from packproof.net import free_port, port_in_use
from packproof.paths import DataDir
from packproof.reading import Reading
from packproof.records import DeviceBatchStats, IngestBatch, ReadingRow, SeriesRow
from packproof.rfc6962 import leaf_hash

QUANTITIES = ("temperature_c", "vibration.peak_g", "shock.peak_g", "pressure_kpa")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]


def body(seq: int) -> bytes:
    hot = 50_000 <= seq < 50_040
    return canonical_bytes(Reading.model_validate({
        "v": 1, "device_id": "P", "shipment_id": "S", "seq": seq,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_790_000_000 + seq)),
        "temperature_c": 78.0 if hot else 20.0 + (seq % 600) / 100, "vibration": {"peak_g": 0.3, "freq_hz": 25.0},
        "shock": {"peak_g": 3.0 if seq % 9973 == 0 else 0.0, "duration_ms": 4.0 if seq % 9973 == 0 else 0.0},
        "pressure_kpa": 101.0 - (seq % 1000) / 100, "location": {"lat": 50.0 + seq / 1e5, "lon": 8.0 + seq / 2e5}}))


async def fill(dirs: DataDir, n: int) -> None:
    store = await dirs.open_writer()
    try:
        await store.register({"S": "un38.3-cell"}, [("P", "S", None)])
        for start in range(0, n, 10_000):
            b = IngestBatch()
            seqs = range(start, min(start + 10_000, n))
            for seq in seqs:
                data = body(seq)
                b.readings.append(ReadingRow("P", seq, "S", "2026-11-22T08:00:00Z", time.time(), data,
                                             leaf_hash(data)))
            b.stats.append(DeviceBatchStats("P", "S", len(seqs), seqs[0], seqs[-1], "t0", "t1", time.time(), seqs[-1],
                                            0, "[]"))
            async with store.transaction("storing the readings"):
                await store.write_rows(b)
    finally:
        await store.close()


def in_process(n: int) -> tuple[float, dict[str, float]]:
    """Decoding n readings into a device's columns, and LTTB to 800 points per quantity: what a series
    costs when the pack has grown since the last answer (no remembered answer applies)."""
    rows = [SeriesRow(seq, body(seq)) for seq in range(n)]
    cols = DeviceColumns()
    t = time.perf_counter()
    cols.extend(rows)
    decode = time.perf_counter() - t
    lttb_s = {}
    for q in QUANTITIES:
        t = time.perf_counter()
        downsample(cols, q, 800, profile_of("un38.3-cell"))  # type: ignore[arg-type]
        lttb_s[q] = time.perf_counter() - t
    return decode, lttb_s


def series_times(base: str, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        for q in QUANTITIES:
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                r = client.get("/shipments/S/packs/P/series", params={"quantity": q, "points": 800})
                r.raise_for_status()
                times.append(time.perf_counter() - t)
            out[q] = times
    return out


def render_times(base: str, runs: int) -> list[float]:
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=BROWSER_ARGS)
        for _ in range(runs):
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{base}/ui/shipments/S")
            page.wait_for_selector("body[data-rendered]", timeout=60_000)
            drawn = page.eval_on_selector_all("polyline.series", "ls => ls.map(l => +l.dataset.points)")
            assert drawn == [800] * 4, drawn
            times.append(float(page.get_attribute("body", "data-rendered") or "nan") / 1000)
            page.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = DataDir(Path(tmp) / "data")
        dirs.root.mkdir()
        t = time.perf_counter()
        asyncio.run(fill(dirs, a.readings))
        load_or_create_ledger_key(dirs.ledger_key)  # the API names the ledger key; nothing is sealed here
        print(f"store: {a.readings:,} readings of one pack written in {time.perf_counter() - t:.1f} s")
        port = free_port()
        api = subprocess.Popen([sys.executable, "-m", "packproof", "api", "--data-dir", str(dirs.root), "--port",
                                str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not port_in_use("127.0.0.1", port) and time.monotonic() < deadline:
                time.sleep(0.1)
            base = f"http://127.0.0.1:{port}"
            cold_render = render_times(base, 1)[0]  # the first page asks the API for the pack's first series
            series = series_times(base, a.runs)
            warm_render = render_times(base, a.runs)
        finally:
            api.terminate()
            api.wait()
    print(f"\nfirst render of the shipment page (navigation to charts, track and tables drawn), "
          f"{a.readings:,} readings, 4 charts of 800 points:")
    print(f"  cold API cache: {cold_render * 1000:.0f} ms")
    print(f"  warm:           median {statistics.median(warm_render) * 1000:.0f} ms, "
          f"max {max(warm_render) * 1000:.0f} ms over {len(warm_render)} loads")
    decode, lttb_s = in_process(a.readings)
    print(f"\nin process: decoding {a.readings:,} readings into columns {decode * 1000:.0f} ms; LTTB to 800 points "
          + ", ".join(f"{q} {v * 1000:.0f} ms" for q, v in lttb_s.items()))
    print("\nGET /shipments/S/packs/P/series?points=800 (warm: the answer remembered), per quantity:")
    for q, times in series.items():
        print(f"  {q:18} median {statistics.median(times) * 1000:6.1f} ms, max {max(times) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
