"""`packproof run` with the simulated parties (issue 15): a real run registers the parties, posts each
shipment's custody script through the real API as the journey passes, and every event is accepted
and sealed; the drop's shock is attributed to exactly both carriers of the handover, heat at sea to
the sea carrier alone (with the handover window run writes for its time base); a second run on the
same data directory resumes the scripts where the first stopped, with nothing refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from packproof.net import free_port
from packproof.simulators.custody_script import AIR, PLANT, ROAD, SEA, SIM_PARTIES
from tests.conftest import Db, cli


def done_counts(output: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if line.startswith("done:"))
    return {k: int(v.replace(",", "")) for k, v in re.findall(r"(\w+) ([\d,]+)", line)}


def test_run_registers_the_parties_and_every_custody_event_is_accepted_and_sealed(tmp_path: Path) -> None:
    data = tmp_path / "d"
    run = ("run", "--data-dir", str(data), "--shipments", "8", "--packs", "2", "--rate", "2")
    r = cli(*run, "--api-port", str(free_port()), "--duration", "12", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    counts = done_counts(r.stdout)
    assert counts["custody_refused"] == 0 and counts["custody_events"] > 8 * (2 * 3 + 4), r.stdout
    # Sealed beside the readings: 16 device records, 8 parties, and every custody event.
    assert counts["registry_records"] == 16 + len(SIM_PARTIES) + counts["custody_events"]
    assert f"custody events {counts['custody_events']:,}" in r.stdout

    db = Db(f"sqlite:///{data / 'packproof.db'}")
    parties = [row[0] for row in db.execute("SELECT party_id FROM parties ORDER BY party_id").fetchall()]
    assert parties == sorted(p.party_id for p in SIM_PARTIES)
    assert db.execute("SELECT count(*) FROM readings WHERE device_id='~custody'").fetchone()[0] \
        == counts["custody_events"]
    unsealed = db.execute("SELECT count(*) FROM readings WHERE id > (SELECT max(last_id) FROM blocks)").fetchone()
    assert unsealed[0] == 0
    kinds = {row[0] for row in db.execute("SELECT DISTINCT kind FROM custody_events").fetchall()}
    assert {"lot-registered", "pack-registered", "ownership-offered", "ownership-accepted", "transporter-assigned",
            "picked-up", "handed-over"} <= kinds

    r = cli("audit", "--data-dir", str(data))
    assert r.returncode == 0 and "audit passed" in r.stdout, r.stdout + r.stderr

    # Five journey minutes at 60 s a reading, 2 readings a second: 2.5 s, what `condition` here uses too.
    assert (data / "handover-window-s").read_text() == "2.5\n"

    # The drop (SHP-001-0006, reading 7) happened while the air carrier handed the pallet to the road carrier.
    r = cli("condition", "SHP-001-0006", "--data-dir", str(data), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    (drop, *_) = [e for e in json.loads(r.stdout)["excursions"] if e["test"] == "T.4"]
    assert drop["start_seq"] == 7
    # Exactly the two sides of that handover and the owner then (the window is five journey minutes: `run`
    # scales it to its simulated time, and the readings and the events share one time base).
    assert drop["custody"]["carriers"] == [AIR.party_id, ROAD.party_id], drop
    assert drop["custody"]["owners"] == [PLANT.party_id] and drop["custody"]["changes"] == [], drop

    # Heat at sea, hours from any change of hands: the sea carrier alone.
    r = cli("condition", "SHP-001-0002", "--data-dir", str(data), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    heat = [e for e in json.loads(r.stdout)["excursions"] if e["test"] == "T.2" and e["start_seq"] == 10]
    assert heat and all(e["custody"]["carriers"] == [SEA.party_id] and e["custody"]["owners"] == [PLANT.party_id]
                        for e in heat), heat

    # A second run continues each script: nothing posted twice, nothing refused.
    again = cli(*run, "--api-port", str(free_port()), "--duration", "4", timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert done_counts(again.stdout)["custody_refused"] == 0
    assert db.execute("SELECT count(*) FROM custody_refused").fetchone()[0] == 0
