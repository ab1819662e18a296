"""The tamper suite: each kind of tampering, on a copy of a real run's data, is caught and named.

One `packproof run` makes the data (real broker, ingestor, sealer); each test tampers
with its own copy and runs the `packproof audit` command, as an auditor would.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from packproof.anchor.merkle import leaf_hash
from packproof.app.services import seal_until
from packproof.net import free_port
from packproof.paths import DataDir
from packproof.records import IngestBatch, Refusal
from tests.conftest import cli
from tests.storeutil import write_batch


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("audit") / "data"
    r = cli("run", "--data-dir", str(data), "--api-port", str(free_port()), "--duration", "3.5",
            "--shipments", "3", "--packs", "2", "--rate", "20", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    asyncio.run(quarantine_two_payloads(data))
    return data


async def quarantine_two_payloads(data: Path) -> None:
    """Refused payloads, written by the ingestor's write path and sealed by the sealer: evidence to tamper with."""
    store = await DataDir(data).open_writer()
    b = IngestBatch()
    topic = "packproof/v1/SHP-001-0001/SHP-001-0001-P01/telemetry"
    b.quarantine += [Refusal(1.7e9, topic, b"{not json", "malformed_json", "not JSON", "SHP-001-0001-P01",
                             "SHP-001-0001"),
                     Refusal(1.7e9 + 1, topic, b'{"v":1}', "invalid_reading", "fields missing", "SHP-001-0001-P01",
                             "SHP-001-0001")]
    await write_batch(store, b)
    await store.close()
    await seal(data)


async def seal(data: Path) -> None:
    """What `packproof seal` does before it stops: seal everything stored, once."""
    stop = asyncio.Event()
    stop.set()
    await seal_until(DataDir(data), stop, 0.1)


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


def ledger_lines(data: Path) -> list[str]:
    return (data / "ledger.jsonl").read_text().splitlines(keepends=True)


def write_lines(data: Path, lines: list[str]) -> None:
    (data / "ledger.jsonl").write_text("".join(lines))


def a_reading(data: Path) -> tuple[int, str, int, bytes]:
    """A signed reading from the middle of the store, the same one every run."""
    with sqlite3.connect(data / "packproof.db") as db:
        rows = db.execute("SELECT id, device_id, seq, body FROM readings ORDER BY id").fetchall()
    return random.Random(7).choice([r for r in rows[1:-1] if b'"sig"' in r[3]])


def test_untouched_data_passes(data: Path) -> None:
    r = cli("audit", "--data-dir", str(data))
    assert r.returncode == 0 and "audit passed" in r.stdout, r.stdout + r.stderr
    assert len(ledger_lines(data)) >= 3  # enough blocks for the chain cases below


def change_one_byte(data: Path) -> str:
    rid, device, seq, body = a_reading(data)
    forged = body.replace(b'"v":1', b'"v":2')
    with sqlite3.connect(data / "packproof.db") as db:
        db.execute("UPDATE readings SET body=? WHERE id=?", (forged, rid))
    return rf"reading {device}:{seq}: stored bytes hash to"


def change_bytes_and_leaf(data: Path) -> str:
    rid, _, _, body = a_reading(data)
    forged = body.replace(b'"v":1', b'"v":2')
    with sqlite3.connect(data / "packproof.db") as db:
        db.execute("UPDATE readings SET body=?, leaf_hash=? WHERE id=?", (forged, leaf_hash(forged), rid))
        (height,) = db.execute("SELECT height FROM blocks WHERE ? BETWEEN first_id AND last_id", (rid,)).fetchone()
    return rf"block {height}: readings now hash to root"


def drop_a_reading(data: Path) -> str:
    rid, _, _, _ = a_reading(data)
    with sqlite3.connect(data / "packproof.db") as db:
        db.execute("DELETE FROM readings WHERE id=?", (rid,))
        (height,) = db.execute("SELECT height FROM blocks WHERE ? BETWEEN first_id AND last_id", (rid,)).fetchone()
    return rf"block {height}: covers \d+ readings .* missing ids \[{rid}\]"


def delete_a_ledger_line(data: Path) -> str:
    lines = ledger_lines(data)
    del lines[1]
    write_lines(data, lines)
    return r"block at position 1 has height 2"


def reorder_ledger_lines(data: Path) -> str:
    lines = ledger_lines(data)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(data, lines)
    return r"block at position 1 has height 2"


def edit_a_ledger_line(data: Path) -> str:
    lines = ledger_lines(data)
    block = json.loads(lines[1])
    block["header"]["leaf_count"] += 1
    lines[1] = json.dumps(block) + "\n"
    write_lines(data, lines)
    return r"block 1: header hashes to [0-9a-f]{64}, but the block says"


def change_a_block_signature(data: Path) -> str:
    lines = ledger_lines(data)
    block = json.loads(lines[2])
    block["signature"] = "A" * 86 + "=="
    lines[2] = json.dumps(block) + "\n"
    write_lines(data, lines)
    return r"block 2: signature does not verify"


def set_column(column: str, value: str | int) -> Callable[[Path], str]:
    """Change one column of a sealed reading's row: its body (and so its leaf and root) still says otherwise."""
    def tamper(data: Path) -> str:
        rid, device, seq, _ = a_reading(data)
        with sqlite3.connect(data / "packproof.db") as db:
            db.execute(f"UPDATE readings SET {column}=? WHERE id=?", (value, rid))
        shown_device = value if column == "device_id" else device
        shown_seq = value if column == "seq" else seq
        return rf"reading {shown_device}:{shown_seq}: {column} column {re.escape(repr(value))} but the sealed body says"
    tamper.__name__ = f"change_the_{column}_column"
    return tamper


def swap_a_device_key_in_the_registry(data: Path) -> str:
    _, device, _, _ = a_reading(data)
    with sqlite3.connect(data / "packproof.db") as db:
        db.execute("UPDATE devices SET public_key=? WHERE device_id=?", (bytes(range(32)), device))
        db.execute("UPDATE device_keys SET public_key=? WHERE device_id=?", (bytes(range(32)), device))
    return rf"device {device}: the registry table holds keys \[from seq 0: 0001020304050607\.\.\], its sealed records"


def empty_the_quarantine(data: Path) -> str:
    with sqlite3.connect(data / "packproof.db") as db:
        db.execute("DELETE FROM quarantine")
    return r"quarantine row \d+ is gone \(deleted\): its sealed record says malformed_json from SHP-001-0001-P01"


def edit_a_quarantine_reason(data: Path) -> str:
    with sqlite3.connect(data / "packproof.db") as db:
        db.execute("UPDATE quarantine SET reason_code='duplicate' WHERE reason_code='invalid_reading'")
    return r"quarantine row \d+ was edited: reason_code is 'duplicate', the record says 'invalid_reading'"


def edit_a_quarantined_payload(data: Path) -> str:
    with sqlite3.connect(data / "packproof.db") as db:
        db.execute("UPDATE quarantine SET payload=? WHERE reason_code='malformed_json'", (b"{}",))
    return r"quarantine row \d+ was edited: payload_sha256 is '44136fa3.*payload_size is 2, the record says 9"


def drop_the_unsigned_signature(data: Path) -> str:
    """A signed reading rewritten as if its device did not sign, its leaf updated: only the signature check sees it."""
    rid, device, seq, body = a_reading(data)
    doc = json.loads(body)
    del doc["sig"]
    forged = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    with sqlite3.connect(data / "packproof.db") as db:
        db.execute("UPDATE readings SET body=?, leaf_hash=? WHERE id=?", (forged, leaf_hash(forged), rid))
    return rf"reading {device}:{seq}: reading carries no signature but its device signs"


TAMPERING: dict[str, Callable[[Path], str]] = {f.__name__: f for f in (
    change_one_byte, change_bytes_and_leaf, drop_a_reading, delete_a_ledger_line, reorder_ledger_lines,
    edit_a_ledger_line, change_a_block_signature, set_column("seq", 100000), set_column("device_id", "SHP-X-P01"),
    set_column("shipment_id", "SHP-OTHER"), set_column("ts", "2020-01-01T00:00:00.000Z"),
    swap_a_device_key_in_the_registry, empty_the_quarantine, edit_a_quarantine_reason, edit_a_quarantined_payload,
    drop_the_unsigned_signature)}


@pytest.mark.parametrize("name", list(TAMPERING))
def test_audit_catches_and_names_each_tampering(data: Path, name: str) -> None:
    expected = TAMPERING[name](data)
    r = cli("audit", "--data-dir", str(data))
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(expected, r.stdout), r.stdout


def test_signatures_flag_names_a_reading_rewritten_with_its_leaf(data: Path) -> None:
    rid, device, seq, body = a_reading(data)
    forged = body.replace(b'"v":1', b'"v":1 ')  # same value, different bytes
    with sqlite3.connect(data / "packproof.db") as db:
        db.execute("UPDATE readings SET body=?, leaf_hash=? WHERE id=?", (forged, leaf_hash(forged), rid))
    r = cli("audit", "--data-dir", str(data), "--signatures")
    assert r.returncode == 1 and f"reading {device}:{seq}" in r.stdout, r.stdout


def test_a_checkpoint_catches_a_ledger_rewritten_with_the_operators_own_key(data: Path, tmp_path: Path) -> None:
    cp = tmp_path / "checkpoint.json"
    r = cli("ledger", "export", "--data-dir", str(data), "--out", str(cp))
    assert r.returncode == 0, r.stdout + r.stderr
    assert cli("ledger", "verify", "--data-dir", str(data), "--checkpoint", str(cp)).returncode == 0

    # The operator rewrites history with the ledger key it holds: every block re-hashed,
    # re-linked and re-signed, so the chain alone still verifies.
    from packproof.anchor.ledger import GENESIS_PREV, LedgerFile, make_block
    from packproof.crypto import load_or_create_ledger_key

    key = load_or_create_ledger_key(data / "ledger.key")
    old = list(LedgerFile(data / "ledger.jsonl").read())
    prev, lines = GENESIS_PREV, []
    for b in old:
        h = b.header
        root = bytes(32) if b.height == 0 else bytes.fromhex(h["merkle_root"])
        nb = make_block(height=b.height, prev_hash=prev, merkle_root=root, leaf_count=h["leaf_count"],
                        sealed_at=h["sealed_at"], key=key)
        lines.append(nb.to_line())
        prev = nb.hash
    (data / "ledger.jsonl").write_bytes(b"".join(lines))
    assert cli("ledger", "verify", "--data-dir", str(data)).returncode == 0  # the chain alone cannot tell
    r = cli("ledger", "verify", "--data-dir", str(data), "--checkpoint", str(cp))
    assert r.returncode == 1 and f"block {len(old) - 1} is now" in r.stderr and "rewritten" in r.stderr, r.stderr
    assert cli("audit", "--data-dir", str(data)).returncode == 1  # and the store no longer matches block 0

    doc = json.loads(cp.read_text())
    doc["height"] = 0
    cp.write_text(json.dumps(doc))
    r = cli("ledger", "verify", "--data-dir", str(data), "--checkpoint", str(cp))
    assert r.returncode == 1 and "checkpoint's own signature does not verify" in r.stderr


def test_a_row_inserted_while_packproof_is_stopped_is_quarantined_not_sealed(data: Path) -> None:
    """Anyone who can write the database can insert a row; the next seal must not vouch for it."""
    with sqlite3.connect(data / "packproof.db") as db:
        device, body = next((d, b) for d, b in db.execute("SELECT device_id, body FROM readings ORDER BY id DESC")
                            if not d.startswith("~") and b'"sig"' not in b)  # an unsigned tracker: no key to forge
        doc = {**json.loads(body), "seq": 90000, "temperature_c": 95}
        forged = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        (next_id,) = db.execute("SELECT max(id) + 1 FROM readings").fetchone()
        db.execute("INSERT INTO readings(id, device_id, seq, shipment_id, ts, received_at, body, leaf_hash) "
                   "VALUES (?,?,?,?,?,?,?,?)", (next_id, device, 90000, doc["shipment_id"], doc["ts"], 0.0, forged,
                                                leaf_hash(forged)))
    asyncio.run(seal(data))
    with sqlite3.connect(data / "packproof.db") as db:
        assert db.execute("SELECT count(*) FROM readings WHERE device_id=? AND seq=90000", (device,)).fetchone() == (0,)
        assert db.execute("SELECT max(last_id) FROM blocks").fetchone()[0] >= next_id  # the refusal's record is sealed
        reason, payload = db.execute("SELECT reason, payload FROM quarantine WHERE reason_code='not_from_intake'"
                                     ).fetchone()
    assert payload == forged and "carries no intake MAC" in reason
    r = cli("audit", "--data-dir", str(data))
    assert r.returncode == 0, r.stdout + r.stderr  # nothing false is sealed; the refusal is on record
    with sqlite3.connect(data / "packproof.db") as db:
        db.execute("DELETE FROM quarantine WHERE reason_code='not_from_intake'")
    r = cli("audit", "--data-dir", str(data))
    assert r.returncode == 1 and "not_from_intake from " + device in r.stdout, r.stdout


def test_audit_checks_signatures_by_default_and_says_when_told_not_to(data: Path) -> None:
    r = cli("audit", "--data-dir", str(data))
    assert "device signatures checked" in r.stdout and "every device signature holds" in r.stdout, r.stdout
    r = cli("audit", "--data-dir", str(data), "--no-signatures")
    assert r.returncode == 0 and "device signatures NOT checked" in r.stdout, r.stdout


@pytest.mark.parametrize("column", ["device_id", "seq", "shipment_id", "ts"])
def test_columns_are_checked_without_signatures_too(data: Path, column: str) -> None:
    expected = TAMPERING[f"change_the_{column}_column"](data)
    r = cli("audit", "--data-dir", str(data), "--no-signatures")
    assert r.returncode == 1 and re.search(expected, r.stdout), r.stdout
