"""Fault injection: crashes and outages while a fleet publishes, and still every reading once, sealed once.

Real processes on a free port, as an operator runs them: `packproof broker`, `packproof
ingest --no-seal`, `packproof seal` and `packproof simulate` (store-and-forward devices with
scheduled link outages). While the fleet publishes at a steady rate the test kills the
ingestor with SIGKILL several times, kills and restarts the broker (amqtt keeps no
sessions or retained messages across a restart, so in-flight QoS 1 messages and
acknowledgements are lost), and makes the sealer die between writing a block to the ledger
and recording it in the store. Then, once the simulator has drained its buffers, it checks
that for every device every seq from 0 to its last is stored exactly once and sealed in
exactly one block, nothing was quarantined, and `packproof audit` and `ledger verify` pass.

`pytest tests/test_fault_injection.py --fault-scale 5` runs longer, with more crashes.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from packproof.failpoints import EXIT_CODE
from packproof.net import free_port
from tests.conftest import Service, cli, wait_for

pytestmark = pytest.mark.e2e

SHIPMENTS, PACKS, RATE = 2, 3, 8.0  # 6 devices, 48 readings/s


def store_counts(data: Path) -> tuple[int, int]:
    with sqlite3.connect(data / "packproof.db", timeout=10) as db:
        row = db.execute("SELECT coalesce(sum(reading_count), 0), coalesce(sum(sealed_count), 0) "
                         "FROM device_stats").fetchone()
    return int(row[0]), int(row[1])


class Cluster:
    """The four services, each restartable; every incarnation logs to its own file."""

    def __init__(self, tmp: Path, data: Path, port: int) -> None:
        self.tmp, self.data, self.port = tmp, data, port
        self.runs: dict[str, int] = {}
        self.services: dict[str, Service] = {}

    def _log(self, name: str) -> Path:
        if name in self.services:
            self.services[name].stop()  # the previous incarnation (dead or killed): close its log
        self.runs[name] = self.runs.get(name, 0) + 1
        return self.tmp / f"{name}-{self.runs[name]}.log"

    def start_broker(self) -> None:
        s = self.services["broker"] = Service("broker", "--port", str(self.port), log=self._log("broker"))
        s.wait_port(self.port)

    def start_ingest(self) -> None:
        s = self.services["ingest"] = Service("ingest", "--no-seal", "--data-dir", str(self.data), "--mqtt-port",
                                              str(self.port), log=self._log("ingest"))
        s.wait_output("ingesting from", 30)

    def start_seal(self, failpoint: str | None = None) -> None:
        s = self.services["seal"] = Service("seal", "--data-dir", str(self.data), "--seal-interval", "0.3",
                                            log=self._log("seal"),
                                            env={"PACKPROOF_FAILPOINT": failpoint} if failpoint else None)
        s.wait_output("sealing", 30)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log")))

    def stop_all(self) -> None:
        for name in ("simulate", "ingest", "seal", "broker"):
            if name in self.services:
                self.services[name].stop()


def test_every_reading_is_stored_once_and_sealed_once_through_crashes(tmp_path: Path, fault_scale: float) -> None:
    duration = 24.0 * fault_scale
    data = tmp_path / "data"
    c = Cluster(tmp_path, data, free_port())
    try:
        c.start_broker()
        c.start_ingest()
        c.start_seal(failpoint="seal.after-ledger:4")  # dies after writing its 4th block, before recording it
        sim = c.services["simulate"] = Service(
            "simulate", "--data-dir", str(data), "--mqtt-port", str(c.port), "--shipments", str(SHIPMENTS),
            "--packs", str(PACKS), "--scenario", "mixed", "--rate", f"{RATE:g}", "--seed", "5",
            "--duration", f"{duration:g}", "--outage-every", "4", "--outage-for", "2.5", "--outage-devices", "0.5",
            "--resend-after", "2", "--drain-timeout", "120", log=tmp_path / "simulate.log")
        sim.wait_output("simulating", 30)
        started = time.monotonic()
        # (seconds into the run, what happens): ingestor crashes, a broker crash, all while devices drop out.
        crashes = max(1, round(3 * fault_scale))
        plan: list[tuple[float, str]] = [(duration * (k + 0.5) / (crashes + 1), "kill ingest") for k in range(crashes)]
        plan += [(duration * (k + 1) / (crashes + 1), "kill broker") for k in range(max(1, crashes // 3))]
        for at, action in sorted(plan):
            time.sleep(max(0.0, started + at - time.monotonic()))
            if action == "kill ingest":
                c.services["ingest"].kill()
                time.sleep(0.5)
                c.start_ingest()
            else:
                c.services["broker"].kill()
                time.sleep(1.0)
                c.start_broker()
            seal = c.services["seal"]
            if seal.proc.poll() is not None:  # the failpoint fired: a new sealer repairs and goes on
                assert seal.proc.returncode == EXIT_CODE, c.logs()
                c.start_seal()
        assert sim.proc.wait(duration + 180) == 0, c.logs()
        if c.services["seal"].proc.poll() is not None:
            assert c.services["seal"].proc.returncode == EXIT_CODE, c.logs()
            c.start_seal()
        assert any("failpoint seal.after-ledger fired" in p.read_text() for p in tmp_path.glob("seal-*.log")), \
            "the sealer never died at its failpoint: the run was too short to test that window"
        wait_for(lambda: (n := store_counts(data))[0] == n[1] > 0, 60, "every stored reading sealed")
        assert "recovered 1 block(s) written to the ledger but not recorded" in c.logs()
    finally:
        c.stop_all()

    with sqlite3.connect(data / "packproof.db") as db:
        per_device = db.execute("SELECT device_id, count(*), min(seq), max(seq) FROM readings "
                                "WHERE device_id != '~registry' GROUP BY device_id ORDER BY device_id").fetchall()
        stats = db.execute("SELECT device_id, acked_seq, last_seq, missing FROM device_stats "
                           "ORDER BY device_id").fetchall()
        quarantined = db.execute("SELECT reason_code, count(*) FROM quarantine GROUP BY reason_code").fetchall()
        blocks = db.execute("SELECT height, first_id, last_id FROM blocks ORDER BY height").fetchall()
        max_id = db.execute("SELECT max(id) FROM readings").fetchone()[0]
        with sqlite3.connect(data / "sim-buffer.db") as buf:
            unsent = buf.execute("SELECT count(*) FROM buffered").fetchone()[0]
    assert len(per_device) == SHIPMENTS * PACKS
    for device_id, n, first, last in per_device:  # UNIQUE(device_id, seq) makes "at most once" structural
        assert (first, n) == (0, last + 1), f"{device_id}: {n} readings stored for seqs {first}..{last}"
        assert n >= RATE * duration * 0.8, f"{device_id}: only {n} readings in a {duration:g} s run"
    assert all(acked == last and missing == 0 for _, acked, last, missing in stats), stats
    assert quarantined == [], quarantined
    assert unsent == 0, f"{unsent} readings still in the devices' buffers"
    # Sealed exactly once: blocks cover ids 1..max as consecutive, non-overlapping ranges.
    assert [h for h, _, _ in blocks] == list(range(len(blocks)))
    assert blocks[0][1] == 1 and blocks[-1][2] == max_id
    assert all(nxt[1] == prev[2] + 1 for prev, nxt in zip(blocks, blocks[1:], strict=False))
    audit = cli("audit", "--data-dir", str(data))
    assert audit.returncode == 0 and "audit passed" in audit.stdout, audit.stdout + audit.stderr
    ledger = cli("ledger", "verify", "--data-dir", str(data))
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr


def test_packproof_run_killed_and_restarted_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """`packproof run` (everything in one process) dies with SIGKILL mid-stream, then runs again."""
    data = tmp_path / "data"
    fleet = ("--shipments", "2", "--packs", "2", "--scenario", "mixed", "--rate", "10", "--seed", "9")
    first = Service("run", "--data-dir", str(data), "--api-port", str(free_port()), *fleet,
                    log=tmp_path / "run-1.log")
    try:
        first.wait_output("sent", 60)
        wait_for(lambda: store_counts(data)[1] > 40, 30, "some readings sealed before the crash")
        time.sleep(0.7)  # mid-stream: readings in the buffer, in flight, stored but unsealed
    finally:
        first.kill()
    before = store_counts(data)
    again = cli("run", "--data-dir", str(data), "--api-port", str(free_port()), *fleet, "--duration", "4",
                timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    with sqlite3.connect(data / "packproof.db") as db:
        per_device = db.execute("SELECT device_id, count(*), min(seq), max(seq) FROM readings "
                                "WHERE device_id != '~registry' GROUP BY device_id").fetchall()
        quarantined = db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    with sqlite3.connect(data / "sim-buffer.db") as buf:
        assert buf.execute("SELECT count(*) FROM buffered").fetchone()[0] == 0
    assert len(per_device) == 4 and quarantined == 0
    for device_id, n, first_seq, last in per_device:
        assert (first_seq, n) == (0, last + 1), f"{device_id}: {n} readings for seqs {first_seq}..{last}"
    stored, sealed = store_counts(data)
    assert stored == sealed > before[0]
    audit = cli("audit", "--data-dir", str(data))
    assert audit.returncode == 0 and "audit passed" in audit.stdout, audit.stdout + audit.stderr
