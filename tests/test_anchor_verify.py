"""`packproof verify --eth-rpc --contract` against a real Hardhat node and a real API server: a real
sealed store's checkpoints anchored, the same-size and later-anchor (consistency through the API)
cases, a forged anchor, an unanchored checkpoint and a node that is down (issue 17)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from packproof.anchor import anchoring
from packproof.net import free_port
from packproof.paths import DataDir
from packproof.records import AnchorMined, AnchorSent, CheckpointRecord
from packproof.store import Store
from tests.api.test_log_api import _seal
from tests.chainutil import eth_rpc, rpc  # noqa: F401 (fixture)
from tests.conftest import Db, Pipeline, Service, cli, get_json, wait_for
from tests.test_custody import api_parties, register  # noqa: F401 (fixture)


@dataclass(frozen=True)
class Setup:
    data: Path
    api: str
    rpc: str
    w3: anchoring.Web3
    sender: str
    origin: str


def checkpoints(data: Path) -> dict[int, CheckpointRecord]:
    """Every checkpoint the store signed (one per block), by size."""
    async def go() -> dict[int, CheckpointRecord]:
        store = await DataDir(data).open_writer()
        try:
            latest = await store.latest_checkpoint()
            assert latest is not None
            found = {}
            for size in range(1, latest.size + 1):
                cp = await store.checkpoint_at(size)
                if cp is not None:
                    found[size] = cp
            return found
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def setup(eth_rpc: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("anchor-verify")
    data = tmp / "data"
    _seal(data, 0, 250)  # a registration record and 250 readings: checkpoints at 100, 200 and 251
    port = free_port()
    service = Service("api", "--data-dir", str(data), "--port", str(port), log=tmp / "api.log")
    try:
        service.wait_port(port)
        w3 = anchoring.connect(eth_rpc)
        origin = checkpoints(data)[100].note.split("\n", 1)[0]
        yield Setup(data, f"http://127.0.0.1:{port}", eth_rpc, w3, w3.eth.accounts[0], origin)
    finally:
        service.stop()


def _verify(s: Setup, contract: str, reading: str = "d:3", *extra: str) -> tuple[int, str]:
    r = cli("verify", reading, "--api", s.api, "--ledger-key", str(s.data / "ledger.pub"), "--eth-rpc", s.rpc,
            "--contract", contract, *extra)
    return r.returncode, r.stdout + r.stderr


def test_verify_finds_the_anchor_at_the_same_size_then_a_later_one(setup: Setup, tmp_path: Path) -> None:
    s = setup
    cps = checkpoints(s.data)
    assert sorted(cps) == [100, 200, 251]
    address = anchoring.deploy(s.w3, s.origin, s.sender)
    # nothing anchored yet: the proof holds, the anchor step is not a pass (exit 6)
    code, text = _verify(s, address)
    assert code == 6 and "proof holds" in text and "no anchor at or after size 100" in text, text
    sent = anchoring.send_anchor(s.w3, address, cps[100], s.sender)
    code, text = _verify(s, address)
    assert code == 0, text
    assert f"root           {cps[100].root.hex()}" in text and f"block          {sent.block_number}" in text
    assert sent.tx_hash is not None and f"tx             0x{sent.tx_hash.hex()}" in text
    assert "confirmations  1 (head block" in text and "anchored at this very size" in text, text
    assert re.search(r"block time     20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", text), text
    # two more blocks on top: three confirmations
    s.w3.provider.make_request("hardhat_mine", ["0x2"])  # type: ignore[arg-type]
    assert "confirmations  3" in _verify(s, address)[1]
    # a reading of the second block (checkpoint 200) is covered by the later anchor at 251, through
    # the consistency proof the API serves
    later = anchoring.send_anchor(s.w3, address, cps[251], s.sender)
    code, text = _verify(s, address, "d:150", "--save", str(tmp_path / "b150.json"))
    assert code == 0 and "covered by the later anchor at size 251" in text, text
    assert later.tx_hash is not None and f"0x{later.tx_hash.hex()}" in text
    # the same bundle offline: the proof from 200 to 251 is missing, said so, not a pass
    r = cli("verify", "--bundle", str(tmp_path / "b150.json"), "--eth-rpc", s.rpc, "--contract", address)
    assert r.returncode == 6, r.stdout + r.stderr
    assert "consistency proof from size 200 to 251 is missing" in r.stderr and "--api" in r.stderr, r.stderr


def test_a_forged_anchor_is_caught_naming_both_roots(setup: Setup) -> None:
    s = setup
    cps = checkpoints(s.data)
    address = anchoring.deploy(s.w3, s.origin, s.sender)
    forged_root = bytes.fromhex("ab" * 32)
    forged = CheckpointRecord(100, forged_root, cps[100].note.replace("\n\n", "\nforged\n\n"), 0.0)
    anchoring.send_anchor(s.w3, address, forged, s.sender)
    with pytest.raises(anchoring.AnchorRefused) as refused:  # the contract then refuses the true head
        anchoring.send_anchor(s.w3, address, cps[100], s.sender)
    assert refused.value.error == "RootMismatch"
    code, text = _verify(s, address)
    assert code == 1 and "proof holds" in text, text
    assert "another root for size 100" in text and forged_root.hex() in text and cps[100].root.hex() in text, text
    # a later forged anchor: a root at 251 that does not extend the true checkpoint 200
    anchoring.send_anchor(s.w3, address, CheckpointRecord(251, bytes(32), "x", 0.0), s.sender)
    code, text = _verify(s, address, "d:150")
    assert code == 1 and "does not extend this checkpoint" in text and cps[200].root.hex() in text, text
    assert bytes(32).hex() in text


def test_the_same_root_under_another_note_hash_is_a_warning_not_a_failure(setup: Setup) -> None:
    s = setup
    cp = checkpoints(s.data)[100]
    address = anchoring.deploy(s.w3, s.origin, s.sender)
    other = CheckpointRecord(100, cp.root, cp.note + "\u2014 witness.example AAAA\n", 0.0)  # e.g. a cosigned note
    anchoring.send_anchor(s.w3, address, other, s.sender)
    code, text = _verify(s, address)
    assert code == 0 and "warn note hash differs" in text, text
    assert anchoring.note_hash(other.note).hex() in text and anchoring.note_hash(cp.note).hex() in text


def test_a_node_that_is_down_or_a_wrong_contract_is_named_not_a_traceback(setup: Setup) -> None:
    s = setup
    down = f"http://127.0.0.1:{free_port()}"
    r = cli("verify", "d:3", "--api", s.api, "--eth-rpc", down, "--contract", "0x" + "11" * 20)
    assert r.returncode == 3 and f"the Ethereum node at {down} did not answer" in r.stderr, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    code, text = _verify(s, "0x" + "11" * 20)
    assert code == 2 and "no contract at" in text, text
    other = anchoring.deploy(s.w3, "another.example/log", s.sender)
    code, text = _verify(s, other)
    assert code == 2 and "anchors another log" in text, text
    r = cli("verify", "d:3", "--api", s.api, "--eth-rpc", s.rpc)
    assert r.returncode == 2 and "go together" in r.stderr, r.stderr


def test_the_anchored_event_decodes_independently(setup: Setup) -> None:
    """Cross-check web3's ABI handling: the Anchored log decoded with eth_abi and a keccak computed by
    hand (pycryptodome), and the anchor() calldata's selector."""
    from Crypto.Hash import keccak
    from eth_abi import decode

    s = setup
    cp = checkpoints(s.data)[100]
    address = anchoring.deploy(s.w3, s.origin, s.sender)
    sent = anchoring.send_anchor(s.w3, address, cp, s.sender)
    assert sent.tx_hash is not None
    receipt = s.w3.eth.get_transaction_receipt(sent.tx_hash)
    (log,) = receipt["logs"]

    def k(text: str) -> bytes:
        return keccak.new(digest_bits=256, data=text.encode()).digest()

    assert bytes(log["topics"][0]) == k("Anchored(uint64,bytes32,bytes32)")
    assert int.from_bytes(bytes(log["topics"][1]), "big") == 100
    root, nhash = decode(["bytes32", "bytes32"], bytes(log["data"]))
    assert root == cp.root and nhash == anchoring.note_hash(cp.note)
    tx = s.w3.eth.get_transaction(sent.tx_hash)
    data = bytes(tx["input"])
    assert data[:4] == k("anchor(uint64,bytes32,bytes32)")[:4]
    assert decode(["uint64", "bytes32", "bytes32"], data[4:]) == (100, cp.root, nhash)
    assert decode(["uint64"], bytes(log["topics"][1])) == (100,)


# ---- `packproof ledger anchors`: the store's anchors against the chain, on both engines ----------


def test_an_eth_rpc_that_is_not_an_http_url_is_bad_input(tmp_path: Path) -> None:
    """Refused by name before anything is fetched (exit 2), not reported as a node that did not answer."""
    contract = "0x" + "11" * 20
    for args in (("verify", "d:3", "--api", "http://127.0.0.1:9"), ("ledger", "anchors", "--data-dir", str(tmp_path))):
        r = cli(*args, "--eth-rpc", "127.0.0.1:8545", "--contract", contract)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "--eth-rpc '127.0.0.1:8545': expected an http(s):// JSON-RPC URL" in r.stderr, r.stderr


def _record(url: str, s: Setup, address: str, sent: anchoring.Anchor) -> None:
    """Record an anchor the way the anchoring loop does: sent, mined (from the receipt), confirmed."""
    assert sent.tx_hash is not None and sent.block_number is not None and sent.gas_used is not None
    tx = s.w3.eth.get_transaction(sent.tx_hash)
    block = s.w3.eth.get_block(sent.block_number)

    async def go() -> None:
        store = await Store.open(url)
        try:
            row = await store.record_anchor_sent(AnchorSent(
                31337, address, sent.size, sent.root, sent.note_hash, sent.tx_hash, int(tx["nonce"]),
                int(tx["maxFeePerGas"]), int(tx["maxPriorityFeePerGas"]), 0.0))
            await store.record_anchor_mined(row.id, AnchorMined(sent.block_number, bytes(block["hash"]),
                                                                sent.block_time, sent.gas_used))
            await store.record_anchor_confirmed(row.id)
        finally:
            await store.close()

    asyncio.run(go())


def test_ledger_anchors_checks_every_recorded_anchor(setup: Setup, store_url: str) -> None:
    s = setup
    cps = checkpoints(s.data)
    address = anchoring.deploy(s.w3, s.origin, s.sender)

    def check() -> tuple[int, str]:
        # a span of 2 blocks per eth_getLogs: the events are gathered over several queries
        r = cli("ledger", "anchors", "--store", store_url, "--eth-rpc", s.rpc, "--contract", address, "--log-span", "2")
        assert "Traceback" not in r.stdout + r.stderr
        return r.returncode, r.stdout + r.stderr

    for size in (100, 200):
        _record(store_url, s, address, anchoring.send_anchor(s.w3, address, cps[size], s.sender))
    code, text = check()
    assert code == 0 and "2 anchor(s) recorded" in text and "anchors hold" in text, text
    assert text.count("ok   ") == 2
    # a row edited in the store: another root for size 100
    db = Db(store_url)
    (row_id, tx_hash), = db.execute("SELECT id, tx_hash FROM anchors WHERE size=100").fetchall()
    db.execute("UPDATE anchors SET root=? WHERE id=?", (b"\xee" * 32, row_id))
    code, text = check()
    assert code == 1 and "FAIL        100" in text and f"store {'ee' * 32}" in text, text
    assert f"root: chain {cps[100].root.hex()}" in text and "first at size 100" in text
    # put back, then another transaction hash recorded
    db.execute("UPDATE anchors SET root=?, tx_hash=? WHERE id=?", (cps[100].root, b"\x01" * 32, row_id))
    code, text = check()
    assert code == 1 and "no receipt" in text and "01" * 32 in text and "on chain but not in the store" in text, text
    db.execute("UPDATE anchors SET tx_hash=? WHERE id=?", (bytes(tx_hash), row_id))
    assert check()[0] == 0
    # the operator's key anchors a head the store never recorded
    anchoring.send_anchor(s.w3, address, CheckpointRecord(251, b"\x0f" * 32, "forged", 0.0), s.sender)
    code, text = check()
    assert code == 1 and "on chain but not in the store: size 251 root " + "0f" * 32 in text, text
    # the node is down
    down = f"http://127.0.0.1:{free_port()}"
    r = cli("ledger", "anchors", "--store", store_url, "--eth-rpc", down, "--contract", address)
    assert r.returncode == 3 and "did not answer" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_ledger_anchors_refuses_an_address_that_is_not_this_logs_contract(setup: Setup) -> None:
    """No code at the address is bad input (exit 2), not a node that did not answer; a contract deployed
    for another log's origin is named, not passed as "anchors hold" because it holds none of ours."""
    s = setup

    def check(address: str) -> tuple[int, str]:
        r = cli("ledger", "anchors", "--data-dir", str(s.data), "--eth-rpc", s.rpc, "--contract", address)
        assert "Traceback" not in r.stdout + r.stderr
        return r.returncode, r.stdout + r.stderr

    code, text = check("0x" + "22" * 20)
    assert code == 2 and "--contract: no contract at 0x2222" in text, text
    code, text = check(anchoring.deploy(s.w3, "another.example/log", s.sender))
    assert code == 2 and "anchors another log" in text and repr(s.origin) in text, text
    code, text = check(anchoring.deploy(s.w3, s.origin, s.sender))
    assert code == 0 and "anchors hold" in text, text


def test_ledger_anchors_catches_a_forged_first_anchor(setup: Setup, store_url: str) -> None:
    """The operator anchors another root for size 100 first; the loop's true anchor is then refused
    (RootMismatch), and the store's record of the true head does not match the chain."""
    s = setup
    cps = checkpoints(s.data)
    address = anchoring.deploy(s.w3, s.origin, s.sender)
    forged = anchoring.send_anchor(s.w3, address, CheckpointRecord(100, b"\xab" * 32, "forged", 0.0), s.sender)
    true = anchoring.Anchor(100, cps[100].root, anchoring.note_hash(cps[100].note), forged.tx_hash,
                            forged.block_number, forged.block_time, forged.gas_used)
    _record(store_url, s, address, true)  # as if the store recorded the true head under that transaction
    r = cli("ledger", "anchors", "--store", store_url, "--eth-rpc", s.rpc, "--contract", address)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"root: chain {'ab' * 32}, store {cps[100].root.hex()}" in r.stdout, r.stdout
    assert "Anchored event differs" in r.stdout


def test_the_anchoring_loops_records_hold_and_cover_every_reading(setup: Setup, tmp_path: Path) -> None:
    """`packproof anchor key/deploy/run` anchor the data directory's log; `ledger anchors` finds the
    loop's rows on chain as recorded, and `verify` of an early reading is covered by its anchor."""
    s = setup
    key = tmp_path / "anchor.key"
    made = cli("anchor", "key", "--out", str(key))
    assert made.returncode == 0, made.stderr
    rpc(s.rpc, "hardhat_setBalance", made.stdout.split()[0], hex(10**20))
    chain = ("--rpc", s.rpc, "--key-file", str(key), "--chain-id", "31337")
    deployed = cli("anchor", "deploy", "--data-dir", str(s.data), *chain)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    address = next(line.split('"')[1] for line in deployed.stdout.splitlines() if line.startswith("contract ="))
    loop = Service("anchor", "run", "--data-dir", str(s.data), *chain, "--contract", address, "--every", "1",
                   "--confirmations", "1", log=tmp_path / "anchor.log")
    try:
        loop.wait_output("anchoring sqlite:///")
        wait_for(lambda: anchoring.latest(s.w3, address) is not None, what="the loop's first anchor")
    finally:
        assert loop.stop() == 0, loop.output()
    r = cli("ledger", "anchors", "--data-dir", str(s.data), "--eth-rpc", s.rpc, "--contract", address)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 anchor(s) recorded" in r.stdout and "ok          251" in r.stdout, r.stdout
    code, text = _verify(s, address, "d:3")
    assert code == 0 and "covered by the later anchor at size 251" in text, text


def test_a_custody_events_proof_is_checked_against_the_chain(
        api_parties: tuple[str, Path, Pipeline], eth_rpc: str) -> None:  # noqa: F811
    """A custody bundle carries no checkpoint note: the log size and root its event's signed block
    recorded are what the chain must hold (no note hash to compare)."""
    api, keys, pipeline = api_parties
    register(api, keys, "P-9")
    wait_for(lambda: get_json(f"{api}/custody/events/maker:1")["block_height"] is not None, what="event sealed")
    header = get_json(f"{api}/custody/events/maker:1/proof")["event"]["block"]["header"]
    size, root = header["log_size"], bytes.fromhex(header["log_root"])

    async def checkpoint() -> CheckpointRecord | None:
        store = await Store.open(pipeline.store, readonly=True)
        try:
            return await store.checkpoint_at(size)
        finally:
            await store.close()

    cp = asyncio.run(checkpoint())
    assert cp is not None and cp.root == root
    w3 = anchoring.connect(eth_rpc)
    sender = w3.eth.accounts[0]
    origin = cp.note.split("\n", 1)[0]
    args = ("verify", "maker:1", "--custody", "--api", api, "--ledger-key", str(pipeline.data / "ledger.pub"),
            "--eth-rpc", eth_rpc, "--contract")
    honest = anchoring.deploy(w3, origin, sender)
    anchoring.send_anchor(w3, honest, cp, sender)
    r = cli(*args, honest)
    assert r.returncode == 0 and "anchored at this very size" in r.stdout and f"size {size}" in r.stdout, r.stdout
    forged = anchoring.deploy(w3, origin, sender)
    anchoring.send_anchor(w3, forged, CheckpointRecord(size, b"\x99" * 32, "forged", 0.0), sender)
    r = cli(*args, forged)
    assert r.returncode == 1 and "99" * 32 in r.stderr and root.hex() in r.stderr, r.stdout + r.stderr


# ---- a condition certificate's anchor (issue 18): carried, checked offline and on chain ----------


def test_a_certificate_carries_the_anchor_and_verify_checks_it_offline_and_on_chain(
        setup: Setup, tmp_path: Path) -> None:
    from packproof.anchor.cosignature import CosignerKey
    from packproof.anchor.note import parse_note

    s = setup
    data = tmp_path / "data"
    _seal(data, 0, 250)  # its own log: checkpoints at 100, 200 and 251
    cps = checkpoints(data)
    origin = cps[100].note.split("\n", 1)[0]
    address = anchoring.deploy(s.w3, origin, s.sender)

    def certificate(name: str) -> tuple[Path, dict[str, object]]:
        path = tmp_path / name
        r = cli("certificate", "d", "--out", str(path), "--data-dir", str(data))
        assert r.returncode == 0, r.stdout + r.stderr
        return path, json.loads(path.read_text())

    def verify(path: Path, *chain: str) -> tuple[int, str]:
        r = cli("verify", "--certificate", str(path), "--ledger-key", str(data / "ledger.pub"), *chain)
        assert "Traceback" not in r.stdout + r.stderr
        return r.returncode, r.stdout + r.stderr

    on_chain = ("--eth-rpc", s.rpc, "--contract", address)
    # no anchor yet: null, said so offline; the chain has none either (exit 6)
    path, doc = certificate("none.json")
    assert doc["anchor"] is None
    code, text = verify(path)
    assert code == 0 and "not anchored yet" in text, text
    code, text = verify(path, *on_chain)
    assert code == 6 and "no anchor at or after size 251" in text, text
    # the latest checkpoint anchored and confirmed: carried at the same size, no proof needed
    sent = anchoring.send_anchor(s.w3, address, cps[251], s.sender)
    _record(DataDir(data).store, s, address, sent)
    path, doc = certificate("same.json")
    anchor = doc["anchor"]
    assert isinstance(anchor, dict) and sent.tx_hash is not None
    assert (anchor["size"], anchor["root"], anchor["consistency"]) == (251, cps[251].root.hex(), [])
    assert (anchor["tx_hash"], anchor["block_number"], anchor["chain_id"]) == (
        "0x" + sent.tx_hash.hex(), sent.block_number, 31337)
    code, text = verify(path)
    assert code == 0 and "anchored at this very size" in text, text
    code, text = verify(path, *on_chain)
    assert code == 0 and f"block          {sent.block_number}" in text and "confirmations  " in text, text
    assert "anchored: anchored at this very size: size 251" in text
    # a witness cosigned checkpoint 200: the certificate binds to it and carries the later anchor at
    # 251 with the consistency proof from 200
    witness = CosignerKey.generate("witness.example/w0")

    async def cosign() -> None:
        store = await DataDir(data).open_writer()
        try:
            line = witness.cosign(parse_note(cps[200].note.encode()).text, 1_800_000_000).line()
            await store.save_cosignatures(200, {witness.name: line})
        finally:
            await store.close()

    asyncio.run(cosign())
    path, doc = certificate("later.json")
    anchor = doc["anchor"]
    assert isinstance(anchor, dict) and anchor["size"] == 251 and len(anchor["consistency"]) > 0
    code, text = verify(path)
    assert code == 0 and "covered by the later anchor at size 251" in text, text
    code, text = verify(path, *on_chain)
    assert code == 0 and "confirmations" in text and "anchored:" in text, text
    # a contract holding another root for 251 (exit 1), one holding nothing (exit 6)
    forged = anchoring.deploy(s.w3, origin, s.sender)
    anchoring.send_anchor(s.w3, forged, CheckpointRecord(251, b"\x66" * 32, "forged", 0.0), s.sender)
    code, text = verify(path, "--eth-rpc", s.rpc, "--contract", forged)
    assert code == 1 and "anchor: the chain holds another root for size 251" in text and "66" * 32 in text, text
    empty = anchoring.deploy(s.w3, origin, s.sender)
    code, text = verify(path, "--eth-rpc", s.rpc, "--contract", empty)
    assert code == 6 and "anchor: no anchor at or after size 251" in text, text
    # edits: offline, another root fails naming `anchor`; another transaction only the chain can tell
    for field, value, exit_code, said in (("root", "cd" * 32, 1, "FAIL anchor"),
                                          ("tx_hash", "0x" + "01" * 32, 1, "anchor: the certificate says tx 0x01")):
        edited = json.loads(path.read_text())
        edited["anchor"][field] = value
        (tmp_path / "edited.json").write_text(json.dumps(edited))
        code, text = verify(tmp_path / "edited.json", *on_chain)
        assert code == exit_code and said in text, (field, text)
