"""Soak: the ingestor's memory over a long run at a steady rate (issue target: no growth after warm-up).

Real processes on a free port: `packproof broker`, `packproof ingest` (with its sealer) and
`packproof simulate` publishing a signed fleet at a fixed rate. Every `--every` seconds it
samples the ingestor's RSS and what has been stored and sealed, prints a line, and at the
end compares the memory after warm-up with the memory at the end.

    python benchmarks/soak.py [--duration 600] [--rate 1000] [--devices 50]
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packproof.net import free_port, port_in_use  # noqa: E402


def start(*args: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "packproof", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop(p: subprocess.Popen[bytes], timeout: float = 60) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()


def counts(db: Path) -> tuple[int, int]:
    try:
        with sqlite3.connect(db, timeout=5) as c:
            row = c.execute("SELECT coalesce(sum(reading_count), 0), coalesce(sum(sealed_count), 0) "
                            "FROM device_stats").fetchone()
            return int(row[0]), int(row[1])
    except sqlite3.Error:
        return 0, 0


def wait_for(what: str, predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: {what} did not happen in {timeout:g} s")
        time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of steady load")
    ap.add_argument("--rate", type=float, default=1000.0, help="readings/s for the whole fleet")
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline sample")
    a = ap.parse_args()
    packs = 10
    shipments = max(1, a.devices // packs)
    per_device = a.rate / (shipments * packs)
    print(f"packproof soak: {a.duration:g} s at {shipments * packs * per_device:,.0f} readings/s from "
          f"{shipments * packs} devices, sampling every {a.every:g} s, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="packproof-soak-") as tmp:
        work = Path(tmp)
        data = work / "data"
        port = free_port()
        broker = start("broker", "--port", str(port), log=work / "broker.log")
        procs = [broker]
        try:
            wait_for("the broker listening", lambda: port_in_use("127.0.0.1", port))
            ingest = start("ingest", "--data-dir", str(data), "--mqtt-port", str(port), log=work / "ingest.log")
            procs.append(ingest)
            wait_for("the ingestor starting", lambda: "ingesting from" in (work / "ingest.log").read_text())
            sim = start("simulate", "--data-dir", str(data), "--mqtt-port", str(port), "--shipments", str(shipments),
                        "--packs", str(packs), "--scenario", "nominal-road", "--rate", f"{per_device:g}",
                        "--duration", f"{a.duration:g}", log=work / "simulate.log")
            procs.append(sim)
            ps = psutil.Process(ingest.pid)
            t0 = time.monotonic()
            samples: list[tuple[float, float]] = []
            print(f"{'t (s)':>7} {'ingestor RSS (MiB)':>19} {'stored':>10} {'sealed':>10} {'readings/s':>11}")
            last = (0.0, 0)
            while sim.poll() is None:
                time.sleep(a.every - (time.monotonic() - t0) % a.every)
                t = time.monotonic() - t0
                rss = ps.memory_info().rss / 2**20
                stored, sealed = counts(data / "packproof.db")
                rate = (stored - last[1]) / max(t - last[0], 1e-9)
                last = (t, stored)
                samples.append((t, rss))
                print(f"{t:7.0f} {rss:19.1f} {stored:10,} {sealed:10,} {rate:11,.0f}", flush=True)
            if sim.returncode:
                print((work / "simulate.log").read_text()[-2000:])
                raise SystemExit(f"soak: the simulator failed with exit code {sim.returncode}")
            base = [r for t, r in samples if t >= a.warmup]
            if len(base) >= 2:
                growth = base[-1] - base[0]
                print(f"ingestor RSS after warm-up ({a.warmup:g} s): {base[0]:.1f} MiB; "
                      f"at the end: {base[-1]:.1f} MiB; growth {growth:+.1f} MiB "
                      f"({growth / base[0]:+.1%}); peak {max(base):.1f} MiB")
        finally:
            for p in reversed(procs):
                stop(p)


if __name__ == "__main__":
    main()
