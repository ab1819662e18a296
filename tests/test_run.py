"""`packproof run`: the one command a new user types. Real process, real ports, real signals."""

from __future__ import annotations

import re
import signal
import socket
from pathlib import Path

from packproof.net import free_port
from tests.conftest import Service, cli


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
