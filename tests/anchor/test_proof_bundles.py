"""`packproof verify` states only what the bundle proves, and refuses a malformed one by name.

Issue 12, items 2 and 3. Bundles come from the real write path (store, sealer, the API's
proof route; see benchmarks/bundle_corruptions.py) and are checked by the real command in
this process, as `main()` runs it for a shell.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bundle_corruptions import (
    Run,
    corruptions,
    fetch_bundle,
    fill_store,
    replaced,
    run_all,
    run_cli,
    value_paths,
)
from packproof.anchor.ledger import LedgerFile
from packproof.anchor.proof import key_record_in_force, parse_bundle, verify_bundle
from packproof.anchor.sealer import Sealer
from packproof.crypto import b64, load_or_create_ledger_key, private_key_from_seed, public_key_bytes
from packproof.errors import ConfigError
from packproof.net import free_port
from packproof.paths import DataDir
from packproof.store import Store
from tests.conftest import Service

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev-a (signed) and dev-u (unsigned) registered in block 0, seqs 0..3 of each in block 1."""
    root = tmp_path_factory.mktemp("proofs") / "data"
    fill_store(root)
    return root


@pytest.fixture(scope="module")
def signed(data: Path) -> Doc:
    return fetch_bundle(data, "dev-a:2")


@pytest.fixture(scope="module")
def unsigned(data: Path) -> Doc:
    return fetch_bundle(data, "dev-u:2")


def verify_doc(doc: Any, tmp_path: Path, *args: str) -> Run:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(doc))
    return run_cli("verify", "--bundle", str(path), *args)


def claim(r: Run) -> str:
    """The line naming the reading and the device's trust."""
    return next(line for line in r.stdout.splitlines() if line.startswith("reading "))


def edited(doc: Doc, change: Callable[[Doc], None]) -> Doc:
    copy: Doc = json.loads(json.dumps(doc))
    change(copy)
    return copy


# ---- item 2: every claim from proven bytes ------------------------------------------------


def test_honest_bundles_hold_with_the_trust_their_sealed_record_gives(signed: Doc, unsigned: Doc, data: Path,
                                                                      tmp_path: Path) -> None:
    r = verify_doc(signed, tmp_path, "--ledger-key", str(data / "ledger.pub"), "--ledger", str(data / "ledger.jsonl"))
    assert r.code == 0, r
    assert claim(r) == "reading dev-a:2 (device trust: device-signature)"
    for check in ("reading", "registry record", "device signature", "merkle path", "registry merkle path",
                  "block hash", "block signature", "registry block hash", "registry block signature",
                  "block in chain"):
        assert f"ok   {check} " in r.stdout, r.stdout
    r = verify_doc(unsigned, tmp_path)
    assert r.code == 0, r
    assert claim(r) == "reading dev-u:2 (device trust: ingestor)"
    assert "skip device signature" in r.stdout and "trust for this reading begins at the ingestor" in r.stdout


def test_no_edit_to_a_bundle_holds(signed: Doc, tmp_path: Path) -> None:
    """Fails on main: an edited `reading_id` or `device` held, printing another reading or trust."""
    held = []
    for c in corruptions(signed):
        if c.text is not None:
            (tmp_path / "b.json").write_bytes(c.text)
            r = run_cli("verify", "--bundle", str(tmp_path / "b.json"))
            if r.code == 0:
                held.append((c.where, c.how, claim(r)))
    assert held == []


def swap(section: str, source: Doc) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        doc[section] = source[section]
    return change


def test_a_proven_record_of_another_device_gives_no_trust(signed: Doc, unsigned: Doc, tmp_path: Path) -> None:
    # dev-a's signed reading under dev-u's sealed "no key" record: the signature check must not be skipped.
    r = verify_doc(edited(signed, swap("registry", unsigned)), tmp_path)
    assert r.code == 1 and "FAIL registry record" in r.stdout and "is for device dev-u" in r.stdout, r
    assert claim(r) == "reading dev-a:2 (device trust: unproven)"
    # dev-u's reading under dev-a's record.
    r = verify_doc(edited(unsigned, swap("registry", signed)), tmp_path)
    assert r.code == 1 and "is for device dev-a, the reading is from dev-u" in r.stdout, r
    # Another device's proven reading under dev-a's record: the id printed is the body's, and it fails.
    r = verify_doc(edited(signed, swap("reading", unsigned)), tmp_path)
    assert r.code == 1 and claim(r) == "reading dev-u:2 (device trust: unproven)", r


def test_a_record_not_in_the_ledger_proves_nothing(signed: Doc, tmp_path: Path) -> None:
    """A `null` device key written into the bundle: not the sealed leaf, so no skip of the signature."""
    record = json.loads(signed["registry"]["leaf"])
    forged = json.dumps({**record, "public_key": None}, separators=(",", ":"), sort_keys=True)

    def change(doc: Doc) -> None:
        doc["registry"]["leaf"] = forged

    r = verify_doc(edited(signed, change), tmp_path)
    assert r.code == 1 and "FAIL registry merkle path" in r.stdout, r
    assert claim(r) == "reading dev-a:2 (device trust: unproven)"


async def _rotate_from(root: Path, seq: int) -> None:
    """A key rotation recorded after the readings it claims (`--from-seq` below the stored ones), sealed."""
    dirs = DataDir(root)
    store = await dirs.open_writer()
    try:
        await store.rotate_key("dev-a", public_key_bytes(private_key_from_seed(b"dev-a next")), seq)
        sealer = Sealer(store, LedgerFile(dirs.ledger), load_or_create_ledger_key(dirs.ledger_key))
        await sealer.recover()
        await sealer.seal_once()
    finally:
        await store.close()


def test_a_record_sealed_after_the_reading_does_not_vouch_for_it(tmp_path: Path) -> None:
    root = tmp_path / "data"
    fill_store(root)
    asyncio.run(_rotate_from(root, 1))
    before = fetch_bundle(root, "dev-a:0")  # still under the registration record
    r = verify_doc(before, tmp_path)
    assert r.code == 0 and json.loads(before["registry"]["leaf"])["record"] == "device-registered", r
    after = fetch_bundle(root, "dev-a:2")  # the registry now gives seq 2 a key recorded after it was stored
    assert json.loads(after["registry"]["leaf"])["record"] == "device-key-rotated"
    r = verify_doc(after, tmp_path)
    assert r.code == 1 and "was sealed at or after the reading" in r.stdout, r


@pytest.fixture
def api_over(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "data"
    fill_store(root)
    port = free_port()
    api = Service("api", "--data-dir", str(root), "--port", str(port), log=tmp_path / "api.log")
    try:
        api.wait_port(port)
        yield root, f"http://127.0.0.1:{port}"
    finally:
        api.stop()


def test_verify_against_the_api_checks_the_body_is_the_reading_asked_for(api_over: tuple[Path, str]) -> None:
    """Fails on main: with the `seq` column of a stored row changed, `verify ID --api` said "proof holds"."""
    root, url = api_over
    r = run_cli("verify", "dev-a:3", "--api", url, "--ledger-key", str(root / "ledger.pub"))
    assert r.code == 0 and claim(r) == "reading dev-a:3 (device trust: device-signature)", r
    assert "ok   block in chain" in r.stdout
    r = run_cli("verify", "dev-a:03", "--api", url)  # the id as a person may type it is the same reading
    assert r.code == 0 and claim(r) == "reading dev-a:3 (device trust: device-signature)", r
    with sqlite3.connect(root / "packproof.db") as db:
        db.execute("UPDATE readings SET seq=99 WHERE device_id='dev-a' AND seq=2")
    r = run_cli("verify", "dev-a:99", "--api", url)
    assert r.code == 1 and "FAIL reading id" in r.stdout and "not dev-a:99 which was asked for" in r.stdout, r
    assert claim(r) == "reading dev-a:2 (device trust: unproven)"


# ---- item 3: malformed input is exit 2 naming the field, never a traceback ----------------


def test_every_corruption_is_refused_by_its_own_exit_code(signed: Doc, tmp_path: Path) -> None:
    """Fails on main: 25 corruptions ended in a traceback (exit 1, "does not hold")."""
    outcomes = run_all(signed, tmp_path)
    assert [(o.corruption.where, o.corruption.how, o.code, o.message) for o in outcomes if o.code not in (1, 2)] == []
    assert len(outcomes) > 300
    unnamed = [(o.corruption.where, o.corruption.how, o.message) for o in outcomes
               if o.code == 2 and o.corruption.where != "(document)" and f"field {o.corruption.where}" not in o.message]
    assert unnamed == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_any_value_anywhere_is_a_verdict_or_bad_input(signed: Doc, data: st.DataObject) -> None:
    """Any JSON value (NaN, huge numbers, any text included) put at any path of a real bundle:
    parsing and verifying end in a verdict or in ConfigError (exit 2), never another exception."""
    paths = [p for p, _ in value_paths(signed) if p]
    path = data.draw(st.sampled_from(paths))
    doc = replaced(signed, path, data.draw(JSON))
    try:
        bundle = parse_bundle(json.dumps(doc).encode("utf-8", "surrogatepass"))
    except ConfigError:
        return
    verdict = verify_bundle(bundle)
    assert verdict.holds is False or json.dumps(doc) == json.dumps(signed)


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        *parents, last = path.split(".")
        for p in parents:
            doc = doc[p]
        doc[last] = value
    return change


def _drop(path: str) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        *parents, last = path.split(".")
        for p in parents:
            doc = doc[p]
        del doc[last]
    return change


SHORT_KEY = b64(bytes(31))


@pytest.mark.parametrize(("change", "field"), [
    (_set("reading.ledger_public_key", SHORT_KEY), "reading.ledger_public_key: Value error, must be base64 of 32"),
    (_set("registry.ledger_public_key", SHORT_KEY), "registry.ledger_public_key"),
    (_set("reading.block", {}), "reading.block.header: Field required"),
    (_drop("registry.block.header"), "registry.block.header: Field required"),
    (_set("reading.block.header.leaf_count", float("nan")), "header.leaf_count: Input should be a valid integer"),
    (_set("reading.block.header.height", "1"), "reading.block.header.height: Input should be a valid integer"),
    (_set("reading.leaf_index", True), "reading.leaf_index: Input should be a valid integer"),
    (_set("registry.audit_path", ["ab" * 31]), "registry.audit_path[0]: Value error, must be 64 lowercase hex"),
    (_set("format", "packproof-proof/1"), "fetch it again from the API"),
])
def test_malformed_fields_are_named(signed: Doc, tmp_path: Path, change: Callable[[Doc], None], field: str) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps(edited(signed, change)))
    r = run_cli("verify", "--bundle", str(path))
    assert r.code == 2 and field in r.message, r


def test_files_that_are_not_bundles_are_bad_input(tmp_path: Path) -> None:
    r = run_cli("verify", "--bundle", str(tmp_path))
    assert r.code == 2 and "cannot read bundle" in r.message and "Is a directory" in r.message, r
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    r = run_cli("verify", "--bundle", str(tmp_path / "deep.json"))
    assert r.code == 2 and "nested too deeply" in r.message, r
    r = run_cli("verify", "--bundle", str(tmp_path / "deep.json"), "--ledger-key", str(tmp_path))
    assert r.code == 2 and "cannot read the public key file" in r.message, r


class _NotAnApi(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"<html>proxy error</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def test_an_api_answering_non_json_is_unreachable_not_invalid() -> None:
    """Fails on main: the JSON decode error escaped as a traceback, exit 1."""
    server = HTTPServer(("127.0.0.1", 0), _NotAnApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        r = run_cli("verify", "dev-a:1", "--api", f"http://127.0.0.1:{server.server_port}")
        assert r.code == 3 and "not JSON" in r.message, r
    finally:
        server.shutdown()
        server.server_close()


def test_an_unexpected_error_is_one_line_and_its_own_exit_code(signed: Doc, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr("packproof.anchor.proof.verify_bundle", bug)
    r = verify_doc(signed, tmp_path)
    assert r.code == 5 and r.message.startswith("internal error: RuntimeError: a bug over two lines"), r


async def test_the_api_finds_the_record_in_force_on_both_engines(store_url: str) -> None:
    """The registry records of one device, by a LIKE over canonical text, then parsed exactly."""
    keys = [public_key_bytes(private_key_from_seed(bytes([i]))) for i in range(4)]
    store = await Store.open(store_url)
    try:
        await store.register({"SHP-A": "un38.3-cell"}, [("dev_a", "SHP-A", keys[0]), ("devXa", "SHP-A", keys[1]),
                                                        ("DEV_A", "SHP-A", keys[2]), ("dev_a2", "SHP-A", None)])
        await store.rotate_key("dev_a", keys[3], 5)
        records = [r.body for r in await store.registry_records("dev_a")]
        for seq, kind, key in ((0, "device-registered", keys[0]), (4, "device-registered", keys[0]),
                               (5, "device-key-rotated", keys[3]), (9, "device-key-rotated", keys[3])):
            chosen = key_record_in_force(records, "dev_a", seq)
            assert chosen is not None
            record = json.loads(records[chosen])
            assert (record["record"], record["device_id"], record["public_key"]) == (kind, "dev_a", b64(key))
        assert key_record_in_force([r.body for r in await store.registry_records("ghost")], "ghost", 0) is None
    finally:
        await store.close()
