"""`packproof run` when one of its services fails with an unexpected error (a bug, simulated by a
raising failpoint): a failed sealer is said at once (log and progress line) while intake goes on; a
failed ingestor stops the whole run promptly with a one-line error and exit 5, instead of the
simulator publishing into nothing until --duration ends."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from packproof.net import free_port
from tests.anchor.test_sealer_crash import seal_everything
from tests.conftest import cli

FLEET = ("--shipments", "1", "--packs", "2")


def _run(data: Path, failpoint: str, duration: str) -> tuple[float, object]:
    env = {**os.environ, "PACKPROOF_FAILPOINT": failpoint}
    started = time.monotonic()
    r = cli("run", "--data-dir", str(data), "--api-port", str(free_port()), "--duration", duration, *FLEET,
            env=env, timeout=90)
    return time.monotonic() - started, r


def test_a_sealer_that_fails_is_reported_at_once_and_readings_are_still_stored(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _, r = _run(data, "seal.bug:3", "6")
    out = r.stdout + r.stderr  # type: ignore[attr-defined]
    assert r.returncode == 0, out  # type: ignore[attr-defined]
    assert "SEALING STOPPED" in out and "failpoint seal.bug raised" in out
    with sqlite3.connect(data / "packproof.db") as db:
        stored = db.execute("SELECT count(*) FROM readings").fetchone()[0]
        sealed = db.execute("SELECT coalesce(max(last_id), 0) FROM blocks").fetchone()[0]
    assert stored > sealed  # intake went on after the sealer failed; the next start seals the rest
    seal_everything(data, tmp_path)  # a restarted sealer seals what the failed one left


def test_an_ingestor_that_fails_stops_the_run_with_a_one_line_error(tmp_path: Path) -> None:
    took, r = _run(tmp_path / "data", "ingest.bug:5", "60")
    out = r.stdout + r.stderr  # type: ignore[attr-defined]
    assert took < 40, out  # not the whole --duration
    assert "the ingestor ended unexpectedly" in out and "failpoint ingest.bug raised" in out
    assert r.returncode == 5, out  # type: ignore[attr-defined]
    assert "Traceback" not in out
