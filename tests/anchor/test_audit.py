"""The tamper suite: each kind of tampering, on a copy of a real run's data, is caught and named.

One `packproof run` makes the data (real broker, ingestor, sealer); each test tampers
with its own copy and runs the `packproof audit` command, as an auditor would.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from anchor.merkle import leaf_hash
from packproof.net import free_port
from tests.conftest import cli


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("audit") / "data"
    r = cli("run", "--data-dir", str(data), "--api-port", str(free_port()), "--duration", "3.5",
            "--shipments", "3", "--packs", "2", "--rate", "20", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    return data


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


TAMPERING: dict[str, Callable[[Path], str]] = {f.__name__: f for f in (
    change_one_byte, change_bytes_and_leaf, drop_a_reading, delete_a_ledger_line, reorder_ledger_lines,
    edit_a_ledger_line, change_a_block_signature)}


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
    from anchor.ledger import GENESIS_PREV, LedgerFile, make_block
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
