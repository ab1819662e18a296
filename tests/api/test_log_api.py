"""The log over HTTP and on the command line: `packproof api` serves /checkpoint, /log/consistency
and /tile/... byte for byte as the static directory; `tlog-scales` (PyPI) reads the log through the
API; `packproof ledger checkpoint|consistency` and `packproof verify --checkpoint` on real files."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest
from tlog_scales.backend import HttpBackend
from tlog_scales.reader import TilesReader

from packproof.anchor.ledger import LedgerFile
from packproof.anchor.note import parse_note
from packproof.anchor.sealer import Sealer
from packproof.anchor.tlog import sign_log_checkpoint
from packproof.anchor.tlog_checkpoint import parse_checkpoint
from packproof.canonical import canonical_bytes
from packproof.crypto import load_or_create_ledger_key
from packproof.net import free_port
from packproof.paths import DataDir
from packproof.reading import Reading
from packproof.records import DeviceBatchStats, IngestBatch, ReadingRow
from packproof.rfc6962 import leaf_hash
from tests.conftest import Service, cli
from tests.storeutil import write_batch


def _body(seq: int) -> bytes:
    """An unsigned tracker's reading as the ingestor stores it (canonical JSON)."""
    return canonical_bytes(Reading.model_validate({
        "v": 1, "device_id": "d", "shipment_id": "S", "seq": seq, "ts": "2026-01-02T03:04:05Z",
        "temperature_c": 21.5, "vibration": {"peak_g": 0.3, "freq_hz": 20.0},
        "shock": {"peak_g": 0.0, "duration_ms": 0.0}, "pressure_kpa": 101.0}))


def _seal(data: Path, start: int, n: int) -> None:
    """Store `n` readings of an unsigned tracker and seal them in blocks of 100, as the sealer does."""
    async def go() -> None:
        dirs = DataDir(data)
        store = await dirs.open_writer()
        try:
            if start == 0:
                await store.register({"S": "un38.3-cell"}, [("d", "S", None)])
            b = IngestBatch()
            for i in range(start, start + n):
                body = _body(i)
                b.readings.append(ReadingRow("d", i, "S", "2026-11-22T08:00:00Z", 0.0, body, leaf_hash(body)))
            b.stats.append(DeviceBatchStats("d", "S", n, start, start + n - 1, "t0", "t1", 0.0, start + n - 1, 0,
                                            "[]"))
            await write_batch(store, b)
            sealer = Sealer(store, LedgerFile(dirs.ledger), load_or_create_ledger_key(dirs.ledger_key),
                            max_leaves=100, key_path=dirs.ledger_key, tiles_dir=dirs.tiles)
            await sealer.recover()
            while await sealer.seal_once():
                pass
        finally:
            await store.close()

    asyncio.run(go())


@pytest.fixture
def api(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "data"
    _seal(data, 0, 700)
    port = free_port()
    service = Service("api", "--data-dir", str(data), "--port", str(port), log=tmp_path / "api.log")
    try:
        service.wait_port(port)
        yield data, f"http://127.0.0.1:{port}"
    finally:
        service.stop()


def test_the_api_serves_the_static_log(api: tuple[Path, str]) -> None:
    data, url = api
    r = httpx.get(f"{url}/checkpoint")
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == (data / "tiles" / "checkpoint").read_text()
    size = parse_checkpoint(parse_note(r.content).text).size
    assert size == 701  # 700 readings and the registration record
    files = [f for f in (data / "tiles").rglob("*") if f.is_file() and f.name != "checkpoint"]
    assert len(files) >= 6
    for f in files:
        rel = f.relative_to(data / "tiles").as_posix()
        got = httpx.get(f"{url}/{rel}")
        assert got.status_code == 200 and got.content == f.read_bytes(), rel
    # tlog-scales reads the log through the API as it would any tlog-tiles log
    reader = TilesReader(HttpBackend(url))
    cp = reader.get_checkpoint()
    assert reader.calculate_root_hash() == cp.root_hash
    proof = httpx.get(f"{url}/log/consistency", params={"from": 100, "to": size}).json()
    assert proof["from"] == 100 and proof["to"] == size
    assert [base64.b64decode(h) for h in proof["proof"]] == reader.get_consistency_proof(100, size).node_hashes
    assert httpx.get(f"{url}/log/consistency", params={"from": 0, "to": size}).json()["proof"] == []


@pytest.mark.parametrize(("path", "status"), [
    ("/log/consistency?from=5&to=4", 422), ("/log/consistency?from=1&to=702", 422),
    ("/log/consistency?from=-1&to=4", 422), ("/log/consistency?from=x&to=4", 422), ("/log/consistency", 422),
    ("/tile/0/003", 404),  # tile 2 is partial at 701 (width 189): no full tile 3 and no full tile 2
    ("/tile/0/002", 404), ("/tile/0/002.p/190", 404), ("/tile/0/0002", 404), ("/tile/9/000", 404),
    ("/tile/entries/005", 404), ("/tile/0/x000/001", 404),
])
def test_bad_requests_are_refused_never_500(api: tuple[Path, str], path: str, status: int) -> None:
    r = httpx.get(api[1] + path)
    assert r.status_code == status, r.text


def test_older_partial_widths_are_served_as_prefixes(api: tuple[Path, str]) -> None:
    _, url = api
    full = httpx.get(f"{url}/tile/0/002.p/189")
    older = httpx.get(f"{url}/tile/0/002.p/5")
    assert full.status_code == older.status_code == 200 and older.content == full.content[:5 * 32]


def test_checkpoint_and_consistency_commands(api: tuple[Path, str], tmp_path: Path) -> None:
    data, url = api
    r = cli("ledger", "checkpoint", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    (tmp_path / "old.txt").write_text(r.stdout)
    _seal(data, 700, 250)
    new = cli("ledger", "checkpoint", "--data-dir", str(data)).stdout
    (tmp_path / "new.txt").write_text(new)
    r = cli("ledger", "consistency", str(tmp_path / "old.txt"), str(tmp_path / "new.txt"), "--api", url,
            "--data-dir", str(data))
    assert r.returncode == 0 and "consistent" in r.stdout and "size 701" in r.stdout, r.stdout + r.stderr
    # the same with the log's verifier key
    vkey = cli("ledger", "checkpoint", "--vkey", "--data-dir", str(data)).stdout.strip()
    r = cli("ledger", "consistency", str(tmp_path / "old.txt"), str(tmp_path / "new.txt"), "--api", url,
            "--log-key", vkey)
    assert r.returncode == 0, r.stdout + r.stderr
    # a rollback: given in the wrong order
    r = cli("ledger", "consistency", str(tmp_path / "new.txt"), str(tmp_path / "old.txt"), "--api", url,
            "--data-dir", str(data))
    assert r.returncode == 1 and "rollback" in r.stderr and "size 951" in r.stderr and "size 701" in r.stderr, r.stderr
    # a split view: the operator's key signs another root at the same size
    key = load_or_create_ledger_key(DataDir(data).ledger_key)
    origin = parse_checkpoint(parse_note(new.encode()).text).origin
    forged = sign_log_checkpoint(origin, 951, bytes(32), key)
    (tmp_path / "forged.txt").write_text(forged.note)
    r = cli("ledger", "consistency", str(tmp_path / "new.txt"), str(tmp_path / "forged.txt"), "--data-dir", str(data))
    assert r.returncode == 1 and "fork" in r.stderr, r.stderr
    # a rewritten log: another root at a larger size is not an extension
    forged = sign_log_checkpoint(origin, 960, bytes(32), key)
    (tmp_path / "forged.txt").write_text(forged.note)
    r = cli("ledger", "consistency", str(tmp_path / "old.txt"), str(tmp_path / "forged.txt"), "--api", url,
            "--data-dir", str(data))
    assert r.returncode in (1, 2) and "960" in r.stderr, r.stderr  # the API refuses a size beyond its log: 2
    # a checkpoint no log key signed
    (tmp_path / "junk.txt").write_text(new.replace("\u2014 ", "\u2014 x"))
    r = cli("ledger", "consistency", str(tmp_path / "old.txt"), str(tmp_path / "junk.txt"), "--data-dir", str(data))
    assert r.returncode == 1 and "junk.txt" in r.stderr, r.stderr
    # verify: the bundle's checkpoint is a prefix of the later one the user trusts
    r = cli("verify", "d:3", "--api", url, "--ledger-key", str(data / "ledger.pub"), "--checkpoint",
            str(tmp_path / "new.txt"))
    assert r.returncode == 0 and "ok   log consistency" in r.stdout and "ok   log inclusion" in r.stdout, r.stdout
    (tmp_path / "forged.txt").write_text(sign_log_checkpoint(origin, 951, bytes(32), key).note)
    r = cli("verify", "d:3", "--api", url, "--checkpoint", str(tmp_path / "forged.txt"))
    assert r.returncode == 1 and "FAIL log consistency" in r.stdout, r.stdout
