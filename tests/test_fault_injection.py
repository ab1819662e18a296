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
from collections.abc import Callable
from pathlib import Path

import pytest

from packproof.failpoints import EXIT_CODE
from packproof.net import free_port
from tests.conftest import MosquittoBroker, Service, cli, device_logins, wait_for
from tests.dbutil import query_sync as query
from tests.ports import restartable_port

pytestmark = pytest.mark.e2e

SHIPMENTS, PACKS, RATE = 2, 3, 8.0  # 6 devices, 48 readings/s


def store_counts(url: str) -> tuple[int, int]:
    (row,) = query(url, "SELECT coalesce(sum(reading_count), 0), coalesce(sum(sealed_count), 0) FROM device_stats")
    return int(row[0]), int(row[1])


class Cluster:
    """The services, each restartable by name; every incarnation logs to its own file.

    The broker is the embedded one (`packproof broker`) or, given `mosquitto`, a real
    Mosquitto with logins; `ingestors` > 1 share the stream through a share group.
    """

    def __init__(self, tmp: Path, store: str, mosquitto: MosquittoBroker | None = None) -> None:
        self.tmp, self.data, self.store, self.mosquitto = tmp, tmp / "data", store, mosquitto
        self.port = mosquitto.port if mosquitto else restartable_port()  # the broker is killed and restarted
        self.runs: dict[str, int] = {}
        self.services: dict[str, Service] = {}

    def _log(self, name: str) -> Path:
        if name in self.services:
            self.services[name].stop()  # the previous incarnation (dead or killed): close its log
        self.runs[name] = self.runs.get(name, 0) + 1
        return self.tmp / f"{name}-{self.runs[name]}.log"

    def start_broker(self) -> None:
        if self.mosquitto:
            self.mosquitto.process.start()
            return
        s = self.services["broker"] = Service("broker", "--port", str(self.port), log=self._log("broker"))
        s.wait_port(self.port)

    def kill_broker(self) -> None:
        if self.mosquitto:
            self.mosquitto.process.kill()
        else:
            self.services["broker"].kill()

    def start_ingest(self, name: str = "ingest", share_group: str | None = None, verify_workers: int = 0) -> None:
        extra: tuple[str, ...] = ("--client-id", name, "--share-group", share_group) if share_group else ()
        extra += ("--verify-workers", str(verify_workers))
        env = None
        if self.mosquitto:
            extra += ("--mqtt-username", "packproof-ingestor")
            env = self.mosquitto.ingestor_env()
        s = self.services[name] = Service("ingest", "--no-seal", "--data-dir", str(self.data), "--store", self.store,
                                          "--mqtt-port", str(self.port), *extra, log=self._log(name), env=env)
        s.wait_output("ingesting from", 30)

    def start_seal(self, name: str = "seal", failpoint: str | None = None, wait: bool = True) -> None:
        s = self.services[name] = Service("seal", "--data-dir", str(self.data), "--store", self.store,
                                          "--seal-interval", "0.3", log=self._log(name),
                                          env={"PACKPROOF_FAILPOINT": failpoint} if failpoint else None)
        s.wait_output("sealing" if wait else "packproof seal", 30)

    def simulate(self, duration: float) -> Service:
        creds: tuple[str, ...] = ()
        if self.mosquitto:
            device_logins(self.mosquitto, self.data, SHIPMENTS, PACKS, seed=5)
            creds = ("--password-file", str(self.mosquitto.password_file))
        sim = self.services["simulate"] = Service(
            "simulate", "--data-dir", str(self.data), "--store", self.store, "--mqtt-port", str(self.port),
            "--shipments", str(SHIPMENTS), "--packs", str(PACKS), "--scenario", "mixed", "--rate", f"{RATE:g}",
            "--seed", "5", "--duration", f"{duration:g}", "--outage-every", "4", "--outage-for", "2.5",
            "--outage-devices", "0.5", "--resend-after", "2", "--drain-timeout", "120", *creds,
            log=self.tmp / "simulate.log")
        sim.wait_output("simulating", 30)
        return sim

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.tmp.glob("*.log")))

    def stop_all(self) -> None:
        for name in ("simulate", *sorted(n for n in self.services if n.startswith("ingest")), "seal", "seal-b",
                     "broker"):
            if name in self.services:
                self.services[name].stop()


def orphaned_verifiers() -> list[int]:
    """Signature verifiers (spawned by `ingest --verify-workers`) whose ingestor is gone."""
    import psutil
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if "spawn_main" in " ".join(p.info["cmdline"] or []):
                parent = p.parent()
                if parent is None or "packproof" not in " ".join(parent.cmdline()):
                    out.append(p.pid)
        except psutil.Error:
            continue
    return out


def run_plan(c: Cluster, duration: float, plan: list[tuple[float, Callable[[], None]]],
             after_each: Callable[[], None]) -> None:
    """Do each action at its second into the run, then `after_each` (restart what a failpoint killed)."""
    started = time.monotonic()
    for at, action in sorted(plan, key=lambda p: p[0]):
        time.sleep(max(0.0, started + at - time.monotonic()))
        action()
        after_each()


def check_every_reading_once_sealed_once(c: Cluster, duration: float) -> None:
    """For every device: seqs 0..last stored once, acknowledged end to end, sealed in exactly one block."""
    url = c.store
    per_device = query(url, "SELECT device_id, count(*), min(seq), max(seq) FROM readings "
                            "WHERE device_id NOT LIKE '~%' GROUP BY device_id ORDER BY device_id")
    stats = query(url, "SELECT device_id, acked_seq, last_seq, missing FROM device_stats ORDER BY device_id")
    quarantined = query(url, "SELECT reason_code, count(*) FROM quarantine GROUP BY reason_code")
    blocks = query(url, "SELECT height, first_id, last_id FROM blocks ORDER BY height")
    ((max_id,),) = query(url, "SELECT max(id) FROM readings")
    with sqlite3.connect(c.data / "sim-buffer.db") as buf:
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
    audit = cli("audit", "--data-dir", str(c.data), "--store", url)
    assert audit.returncode == 0 and "audit passed" in audit.stdout, audit.stdout + audit.stderr
    ledger = cli("ledger", "verify", "--data-dir", str(c.data))
    assert ledger.returncode == 0, ledger.stdout + ledger.stderr


def test_every_reading_is_stored_once_and_sealed_once_through_crashes(
        tmp_path: Path, store_url: str, fault_scale: float) -> None:
    duration = 24.0 * fault_scale
    c = Cluster(tmp_path, store_url)

    def restart_failed_sealer() -> None:
        seal = c.services["seal"]
        if seal.proc.poll() is not None:  # the failpoint fired: a new sealer repairs and goes on
            assert seal.proc.returncode == EXIT_CODE, c.logs()
            c.start_seal()

    def kill_ingest() -> None:
        c.services["ingest"].kill()
        time.sleep(0.5)
        c.start_ingest()

    def kill_broker() -> None:
        c.kill_broker()
        time.sleep(1.0)
        c.start_broker()

    try:
        c.start_broker()
        c.start_ingest()
        c.start_seal(failpoint="seal.after-ledger:4")  # dies after writing its 4th block, before recording it
        sim = c.simulate(duration)
        # Ingestor crashes and a broker crash, all while devices drop out.
        crashes = max(1, round(3 * fault_scale))
        plan = [(duration * (k + 0.5) / (crashes + 1), kill_ingest) for k in range(crashes)]
        plan += [(duration * (k + 1) / (crashes + 1), kill_broker) for k in range(max(1, crashes // 3))]
        run_plan(c, duration, plan, restart_failed_sealer)
        assert sim.proc.wait(duration + 180) == 0, c.logs()
        restart_failed_sealer()
        assert any("failpoint seal.after-ledger fired" in p.read_text() for p in tmp_path.glob("seal-*.log")), \
            "the sealer never died at its failpoint: the run was too short to test that window"
        wait_for(lambda: (n := store_counts(store_url))[0] == n[1] > 0, 60, "every stored reading sealed")
        assert "recovered 1 block(s) written to the ledger but not recorded" in c.logs()
    finally:
        c.stop_all()
    check_every_reading_once_sealed_once(c, duration)


def test_scale_out_two_ingestors_and_two_sealers_lose_and_double_nothing_through_crashes(
        tmp_path: Path, store_url: str, mosquitto: MosquittoBroker, fault_scale: float) -> None:
    """Mosquitto, two ingestors in a share group, an active sealer and a standby, then crashes of each.

    Each ingestor settles its batches against the store, so the acknowledgements the devices
    get cover what either stored; the standby sealer takes over the ledger when the active
    one dies (at a failpoint between ledger and store, then by SIGKILL), without a fork.
    """
    duration = 24.0 * fault_scale
    c = Cluster(tmp_path, store_url, mosquitto)
    group = "ingest"

    def kill(name: str, restart: Callable[[], None]) -> Callable[[], None]:
        def act() -> None:
            c.services[name].kill()
            time.sleep(0.5)
            restart()
        return act

    def kill_active_sealer() -> None:
        active = next(n for n in ("seal", "seal-b") if c.services[n].proc.poll() is None
                      and "sealing" in c.services[n].output() and "waiting to take over" not in
                      c.services[n].output().split("sealing")[-1])
        c.services[active].kill()
        c.start_seal(active, wait=False)  # back as the standby

    def restart_dead_sealers() -> None:
        for name in ("seal", "seal-b"):
            s = c.services[name]
            if s.proc.poll() is not None and s.proc.returncode == EXIT_CODE:
                c.start_seal(name, wait=False)

    try:
        c.start_ingest("ingest-a", group, verify_workers=1)  # as compose runs them
        c.start_ingest("ingest-b", group, verify_workers=1)
        c.start_seal("seal", failpoint="seal.after-ledger:4")
        c.start_seal("seal-b", wait=False)  # waits for the lock
        sim = c.simulate(duration)
        plan = [(duration * 0.2, kill("ingest-a", lambda: c.start_ingest("ingest-a", group, verify_workers=1))),
                (duration * 0.45, kill_active_sealer),
                (duration * 0.6, kill("ingest-b", lambda: c.start_ingest("ingest-b", group, verify_workers=1))),
                (duration * 0.75, lambda: (c.kill_broker(), time.sleep(1.0), c.start_broker()))]
        run_plan(c, duration, plan, restart_dead_sealers)
        assert sim.proc.wait(duration + 180) == 0, c.logs()
        restart_dead_sealers()
        wait_for(lambda: (n := store_counts(store_url))[0] == n[1] > 0, 60, "every stored reading sealed")
        logs = c.logs()
        assert "failpoint seal.after-ledger fired" in logs and "took over sealing" in logs, logs
        assert "recovered 1 block(s) written to the ledger but not recorded" in logs, logs
    finally:
        c.stop_all()
    wait_for(lambda: not orphaned_verifiers(), 10, "the verifiers of killed ingestors gone")
    check_every_reading_once_sealed_once(c, duration)


def test_packproof_run_killed_and_restarted_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """`packproof run` (everything in one process) dies with SIGKILL mid-stream, then runs again."""
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'packproof.db'}"
    fleet = ("--shipments", "2", "--packs", "2", "--scenario", "mixed", "--rate", "10", "--seed", "9")
    first = Service("run", "--data-dir", str(data), "--api-port", str(free_port()), *fleet,
                    log=tmp_path / "run-1.log")
    try:
        first.wait_output("sent", 60)
        wait_for(lambda: store_counts(url)[1] > 40, 30, "some readings sealed before the crash")
        time.sleep(0.7)  # mid-stream: readings in the buffer, in flight, stored but unsealed
    finally:
        first.kill()
    before = store_counts(url)
    again = cli("run", "--data-dir", str(data), "--api-port", str(free_port()), *fleet, "--duration", "4",
                timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    with sqlite3.connect(data / "packproof.db") as db:
        per_device = db.execute("SELECT device_id, count(*), min(seq), max(seq) FROM readings "
                                "WHERE device_id NOT LIKE '~%' GROUP BY device_id").fetchall()
        quarantined = db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    with sqlite3.connect(data / "sim-buffer.db") as buf:
        assert buf.execute("SELECT count(*) FROM buffered").fetchone()[0] == 0
    assert len(per_device) == 4 and quarantined == 0
    for device_id, n, first_seq, last in per_device:
        assert (first_seq, n) == (0, last + 1), f"{device_id}: {n} readings for seqs {first_seq}..{last}"
    stored, sealed = store_counts(url)
    assert stored == sealed > before[0]
    audit = cli("audit", "--data-dir", str(data))
    assert audit.returncode == 0 and "audit passed" in audit.stdout, audit.stdout + audit.stderr
