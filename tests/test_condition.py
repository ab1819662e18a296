"""The loss report: `packproof condition` and the API show a gap as missing seqs, not as silence."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from packproof.paths import DataDir
from packproof.simulators.fleet import build_fleet, shipments_of
from tests.conftest import Db, Pipeline, cli, get_json, publish_all, wait_for


def test_a_gap_is_reported_until_it_is_filled(tmp_path: Path, pipeline_services: Pipeline) -> None:
    data, port = pipeline_services.data, pipeline_services.mqtt
    fleet = build_fleet(shipments=1, packs=1, scenario="nominal-road", seed=11)
    d = fleet[0]

    async def register() -> None:
        store = await DataDir(pipeline_services.data, store_url=pipeline_services.store).open_writer()
        await store.register(shipments_of(fleet), [(d.device_id, d.shipment_id, d.public_key)])
        await store.close()

    asyncio.run(register())
    readings = [(d.topic, d.reading(time.time())) for _ in range(8)]
    publish_all(port, [readings[s] for s in (0, 1, 2, 5, 7)])  # 3, 4 and 6 lost on the way

    def stats() -> tuple[int, int] | None:
        return Db(pipeline_services.store).execute("SELECT reading_count, sealed_count FROM device_stats").fetchone()

    wait_for(lambda: stats() == (5, 5), 20, "five readings stored and sealed")
    r = cli("condition", d.shipment_id, "--data-dir", str(data), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    pack = json.loads(r.stdout)["packs"][0]
    assert (pack["status"], pack["readings"], pack["acked_seq"], pack["missing"], pack["gaps"], pack["unsealed"]) == (
        "incomplete", 5, 2, 3, [[3, 4], [6, 6]], 0)  # never "ok" (nor "warning"): a gap may hide worse
    table = cli("condition", d.shipment_id, "--data-dir", str(data))
    assert "): incomplete, " in table.stdout and "3 missing" in table.stdout, table.stdout
    assert "3 (3-4, 6)" in table.stdout, table.stdout

    api = pipeline_services.start_api(tmp_path)
    assert get_json(f"{api}/shipments/{d.shipment_id}/condition")["packs"][0]["gaps"] == [[3, 4], [6, 6]]

    publish_all(port, [readings[s] for s in (3, 4, 6)])  # the device resends what is missing
    wait_for(lambda: stats() == (8, 8), 20, "the gap filled and sealed")
    c = json.loads(cli("condition", d.shipment_id, "--data-dir", str(data), "--json").stdout)
    pack, whole = c["packs"][0], "warning" if c["excursions"] else "ok"  # only its warning bands count now
    assert (pack["status"], pack["acked_seq"], pack["missing"], pack["gaps"]) == (whole, 7, 0, [])


def test_a_status_is_the_worst_that_applies_and_ok_means_whole_and_within_the_envelope() -> None:
    from packproof.api.condition import worst

    assert worst([]) == "ok"
    assert worst(["warning", "incomplete"]) == "incomplete"  # what is missing may be worse than a warning
    assert worst(["incomplete", "violated"]) == "violated"
    assert worst(["violated", "disputed", "warning"]) == "disputed"  # the violation may be the forged version's


def test_an_unknown_shipment_is_bad_input(tmp_path: Path, pipeline_services: Pipeline) -> None:
    r = cli("condition", "SHP-NOPE", "--data-dir", str(pipeline_services.data))
    assert r.returncode == 2 and "shipment 'SHP-NOPE' is not in" in r.stderr


def test_a_pack_without_readings_is_no_data_and_the_table_fits_80_columns(tmp_path: Path) -> None:
    """A shipment whose packs never sent a reading reported `ok`; at 80 columns the table cut every
    id to `SHP-001…`."""
    data = str(tmp_path / "d")
    for device in ("SHP-001-0002-P01", "SHP-001-0002-P02"):
        r = cli("devices", "register", device, "--shipment", "SHP-001-0002", "--unsigned", "--data-dir", data)
        assert r.returncode == 0, r.stdout + r.stderr
    c = json.loads(cli("condition", "SHP-001-0002", "--data-dir", data, "--json").stdout)
    assert c["status"] == "no-data" and {p["status"] for p in c["packs"]} == {"no-data"}
    r = cli("condition", "SHP-001-0002", "--data-dir", data, env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("SHP-001-0002-P0")]
    assert len(rows) == 2 and all(len(line) <= 80 for line in rows), r.stdout
    assert all(line.split()[1] == "no-data" and line.rstrip().endswith("never, stale") for line in rows), r.stdout


def test_no_data_ranks_between_warning_and_incomplete() -> None:
    from packproof.api.condition import worst

    assert worst([], default="no-data") == "no-data"  # a shipment with no pack at all
    assert worst(["ok", "no-data"]) == "no-data" and worst(["warning", "no-data"]) == "no-data"
    assert worst(["no-data", "incomplete"]) == "incomplete"
