"""`packproof run` with its data directory on a real, small file system that fills up.

A tmpfs of a few MB is mounted for the test (root only; skipped, saying why, where mount
is not allowed) and filled with a filler file while `run` works: every writer (simulator
buffer, ingestor, sealer's ledger and store) meets a real ENOSPC / SQLITE_FULL. Wanted:
no crash and no traceback, /health answers and names what is stuck, reads keep working,
the progress line says so, `--duration` is honoured, and once the filler is deleted intake
resumes by itself with every reading stored once, in seq order, nothing lost.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from packproof.net import free_port
from tests.conftest import Service, cli, fill_up, small_fs, wait_for
from tests.dbutil import query_sync

FLEET = ("--shipments", "3", "--packs", "2", "--rate", "5")


def health(api: str) -> dict:  # type: ignore[type-arg]
    r = httpx.get(f"{api}/health", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def done_counts(output: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if line.startswith("done:"))
    return {k: int(v.replace(",", "")) for k, v in re.findall(r"(\w+) ([\d,]+)", line)}


def assert_every_reading_stored_once_in_order(data: Path, total: int) -> None:
    rows = query_sync(f"sqlite:///{data / 'packproof.db'}",
                      "SELECT device_id, count(*), min(seq), max(seq) FROM readings "
                      "WHERE device_id NOT LIKE '~%' GROUP BY device_id")
    assert len(rows) == 6 and sum(r[1] for r in rows) == total, rows
    assert all(r[2] == 0 and r[3] == r[1] - 1 for r in rows), rows  # dense seqs: no gap, nothing twice


def test_a_full_disk_pauses_intake_keeps_reads_and_resumes_when_space_returns(tmp_path: Path) -> None:
    with small_fs(tmp_path / "fs") as fs:
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        svc = Service("run", "--data-dir", str(fs / "d"), "--api-port", str(port), "--duration", "30", *FLEET,
                      log=tmp_path / "run.log")
        try:
            svc.wait_output("verify a reading:", timeout=60)
            filler = fill_up(fs)
            full = wait_for(lambda: (h := health(api))["status"] == "disk full" and h, 20, "/health to say disk full")
            assert {d["component"] for d in full["disk_full"]} <= {"ingestor", "sealer", "simulator buffer"}
            assert all(d["since"].endswith("Z") and d["error"] for d in full["disk_full"])
            shipments = httpx.get(f"{api}/shipments", timeout=5)  # reads go on
            assert shipments.status_code == 200 and len(shipments.json()["shipments"]) == 3
            svc.wait_output("| DISK FULL since ", timeout=10)  # the progress line says it too
            time.sleep(2)
            before = health(api)["readings"]
            filler.unlink()
            freed = time.monotonic()
            wait_for(lambda: (h := health(api))["status"] == "ok" and h["readings"] > before, 20,
                     "intake to resume once space is back")
            print(f"intake resumed {time.monotonic() - freed:.1f} s after space returned")
            assert svc.proc.wait(60) == 0, svc.output()
        finally:
            svc.stop()
        out = svc.output()
        assert "Traceback" not in out, out
        counts = done_counts(out)
        assert counts["measured"] == counts["accepted"] == counts["acked"] == counts["sealed"] > 0, counts
        assert counts["buffered"] == 0 and counts["duplicates"] == 0, counts
        assert_every_reading_stored_once_in_order(fs / "d", counts["measured"])


def test_run_ends_on_time_on_a_full_disk_and_the_next_run_stores_what_was_kept(tmp_path: Path) -> None:
    with small_fs(tmp_path / "fs") as fs:
        data = fs / "d"
        svc = Service("run", "--data-dir", str(data), "--api-port", str(free_port()), "--duration", "10", *FLEET,
                      log=tmp_path / "run.log")
        try:
            svc.wait_output("verify a reading:", timeout=60)  # printed a moment after the fleet starts
            started = time.monotonic()
            filler = fill_up(fs)
            assert svc.proc.wait(60) == 0, svc.output()
            took = time.monotonic() - started
        finally:
            svc.stop()
        out = svc.output()
        assert "Traceback" not in out, out
        assert "stopping without waiting for acknowledgements" in out, out
        # The rest of the 10 s and the stop: no 30 s drain, no hang.
        assert took < 10 + 10, (took, out)
        first = done_counts(out)
        filler.unlink()
        r = cli("run", "--data-dir", str(data), "--api-port", str(free_port()), "--duration", "3", *FLEET,
                timeout=120)
        assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
        second = done_counts(r.stdout)
        assert second["buffered"] == 0, second
        # Everything the first run kept in its buffer is stored now, once, with what the second made
        # (readings stored while the buffer could not record their acks come again: duplicates, stored once).
        assert_every_reading_stored_once_in_order(data, first["measured"] + second["measured"])


def test_a_command_started_on_a_full_disk_says_so_in_one_line(tmp_path: Path) -> None:
    with small_fs(tmp_path / "fs", size="1m") as fs:
        fill_up(fs)
        r = cli("run", "--data-dir", str(fs / "d"), "--api-port", str(free_port()), "--duration", "2", *FLEET,
                timeout=60)
        assert r.returncode == 4, r.stdout + r.stderr
        assert "error: disk full:" in r.stderr and "Traceback" not in r.stdout + r.stderr, r.stderr
