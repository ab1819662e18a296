"""`packproof run`: the one command a new user types. Real process, real ports, real signals."""

from __future__ import annotations

import re
import signal
import socket
from pathlib import Path

from packproof.net import free_port
from tests.conftest import BrokerThread, Service, cli


def done_counts(output: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if line.startswith("done:"))
    return {k: int(v.replace(",", "")) for k, v in re.findall(r"(\w+) ([\d,]+)", line)}


def test_run_for_a_duration_stores_and_seals_everything(tmp_path: Path) -> None:
    r = cli("run", "--data-dir", str(tmp_path / "d"), "--api-port", str(free_port()), "--duration", "4",
            "--shipments", "5", "--packs", "2", "--rate", "5", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"verify a reading:  \S*packproof\S* verify SHP-001-0001-P01:0 --api http://127.0.0.1:", r.stdout)
    counts = done_counts(r.stdout)
    assert counts["measured"] == counts["accepted"] == counts["sealed"] > 0
    assert counts["quarantined"] == 0 and counts["buffered"] == 0 and counts["acked"] == counts["measured"]
    # What was sealed, by kind: a block of registry records alone read "sealed 0 in 1 blocks". Records: the
    # fleet's 10 registrations, the 8 simulated custody parties and the custody events they signed.
    records = 10 + 8 + counts["custody_events"]
    assert counts["custody_events"] > 0 and counts["custody_refused"] == 0
    assert counts["registry_records"] == records
    assert re.search(rf"sealed [\d,]+ readings and {records} registry records in \d+ blocks?\b", r.stdout), r.stdout


def test_ctrl_c_stops_cleanly_with_nothing_lost(tmp_path: Path) -> None:
    svc = Service("run", "--data-dir", str(tmp_path / "d"), "--api-port", str(free_port()), "--shipments", "3",
                  "--packs", "2", "--rate", "10", log=tmp_path / "run.log")
    svc.wait_output("verify a reading:", timeout=30)
    svc.proc.send_signal(signal.SIGINT)
    assert svc.stop() == 0, svc.output()
    counts = done_counts(svc.output())
    assert counts["measured"] == counts["accepted"] == counts["sealed"] > 0 and counts["buffered"] == 0
    # A second run continues each device's seq: nothing is a duplicate, nothing is lost.
    r = cli("run", "--data-dir", str(tmp_path / "d"), "--api-port", str(free_port()), "--duration", "2",
            "--shipments", "3", "--packs", "2", "--rate", "10", timeout=90)
    again = done_counts(r.stdout)
    assert again["duplicates"] == 0 and again["measured"] == again["accepted"] == again["sealed"] > 0


def test_a_taken_port_is_named_with_its_flag(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("run", "--data-dir", str(tmp_path / "d"), "--mqtt-port", str(port), "--duration", "1")
        assert r.returncode == 2
        assert f"port {port} on 127.0.0.1 is already in use" in r.stderr and "--mqtt-port" in r.stderr
        r = cli("run", "--data-dir", str(tmp_path / "d"), "--api-port", str(port), "--duration", "1")
        assert r.returncode == 2 and "--api-port" in r.stderr
        r = cli("broker", "--port", str(port))
        assert r.returncode == 2 and "--port PORT" in r.stderr


def test_run_again_after_simulate_gave_the_devices_other_passwords(tmp_path: Path) -> None:
    """The README's quick start (`run`), then docs/operations.md's Mosquitto section's
    `simulate --password-file mqtt/mqtt.passwd` on the same data directory (new passwords in
    sim-credentials.json), then `run` again. The embedded broker's password file still held the old
    hashes under the same names: every device was refused, amqtt logged a traceback per device, and
    the process printed the error and hung."""
    data, port = tmp_path / "data", free_port()
    args = ("--data-dir", str(data), "--api-port", str(port), "--shipments", "2", "--packs", "2", "--rate", "5")
    r = cli("run", *args, "--duration", "2", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("simulate", "--data-dir", str(data), "--shipments", "2", "--packs", "2", "--credentials-only",
            "--password-file", str(tmp_path / "mqtt" / "mqtt.passwd"))
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("run", *args, "--duration", "2", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    counts = done_counts(r.stdout)
    assert counts["measured"] == counts["accepted"] == counts["sealed"] > 0


def test_a_fatal_error_after_start_ends_the_process(tmp_path: Path) -> None:
    """An error once the broker, ingestor and API run (here the registry refusing a fleet that gives a
    registered device another key) ends `run` with its message and exit code, not a hang."""
    data, port = tmp_path / "data", free_port()
    args = ("--data-dir", str(data), "--api-port", str(port), "--shipments", "2", "--packs", "1", "--rate", "5")
    r = cli("run", *args, "--duration", "1", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("run", *args, "--duration", "1", "--seed", "1", "--unsigned-shipments", "0", timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "already registered" in r.stderr and "Traceback" not in r.stdout + r.stderr
    assert "--unsigned-shipments 0" in r.stderr and "need the same --seed" in r.stderr  # what to change


def test_simulate_on_runs_data_dir_makes_the_same_fleet(tmp_path: Path, mqtt_broker: BrokerThread) -> None:
    """`run` made its last shipment unsigned and `simulate` none, so the Mosquitto section's `simulate`
    on `run`'s data directory was refused; both default to one unsigned shipment now, and say so."""
    data = tmp_path / "data"
    r = cli("run", "--data-dir", str(data), "--api-port", str(free_port()), "--shipments", "2", "--packs", "1",
            "--duration", "1", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("simulate", "--data-dir", str(data), "--mqtt-port", str(mqtt_broker.port), "--shipments", "2",
            "--packs", "1", "--count", "1", "--drain-timeout", "0", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unsigned_shipments=1 " in r.stderr  # the banner shows the value in force, not `-`
