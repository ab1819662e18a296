"""`packproof ledger` (verify, rotate-key, export) and `packproof audit`: the sealed ledger on
its own, and the store recomputed against it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from packproof.app.cli.common import Exit, data_dir_of, err, fail, key_id_of, out
from packproof.app.config import Settings
from packproof.app.options import COMMON, Flag, configured
from packproof.errors import NoteError, ProofError

if TYPE_CHECKING:
    from packproof.records import AnchorRow

ledger_app = typer.Typer(no_args_is_help=True, help="Inspect and check the sealed ledger.")
DATA_DIR = (Flag("data_dir"),)


@ledger_app.command("verify")
@configured("ledger verify", DATA_DIR)
def ledger_verify(
    cfg: Settings,
    ledger: Annotated[Path | None, typer.Option(help="Ledger file (default: DATA_DIR/ledger.jsonl).")] = None,
    ledger_key: Annotated[str | None, typer.Option(help="Trusted ledger key (default DATA_DIR/ledger.pub).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="A checkpoint saved earlier (`ledger export`): pin its key and check its block is still there.")] = None,
) -> None:
    """Re-check the whole chain: heights, links, block hashes, signatures."""
    from packproof.anchor.checkpoint import check_against, checkpoint_key  # not at start-up: cryptography
    from packproof.anchor.ledger import LedgerFile, verify_chain  # not at start-up: cryptography
    from packproof.crypto import read_public_key  # not at start-up: cryptography

    dirs = data_dir_of(cfg)
    path = ledger or dirs.ledger
    if not path.exists():
        fail(Exit.BAD_INPUT, f"no ledger at {path}")
    cp = _read_json(checkpoint) if checkpoint else None
    key = checkpoint_key(cp) if cp else read_public_key(ledger_key or str(dirs.ledger_pub))
    blocks = list(LedgerFile(path).read())
    current = verify_chain(blocks, key)
    prev = blocks[-1] if blocks else None
    if current != key:
        out.print(f"key rotations followed: blocks are now signed by key {key_id_of(current)}", highlight=False)
    if cp:
        check_against(cp, blocks)
        out.print(f"checkpoint holds: block {cp['height']} is still {cp['hash']}", highlight=False)
    leaves = sum(b.header["leaf_count"] for b in blocks)
    out.print(f"[green]ledger holds[/]: {len(blocks):,} blocks, {leaves:,} leaves, head "
              f"{prev.hash.hex() if prev else '-'}", highlight=False)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        fail(Exit.BAD_INPUT, f"cannot read {path}: {exc}")
    except ValueError as exc:
        fail(Exit.BAD_INPUT, f"{path} is not JSON: {exc}")


@ledger_app.command("rotate-key")
@configured("ledger rotate-key", DATA_DIR)
def ledger_rotate_key(cfg: Settings) -> None:
    """Make a new ledger key; the next block, signed by the current key, names it, and later blocks use it."""
    # not at start-up: cryptography
    from packproof.crypto import new_private_key, public_key_bytes, write_private_key

    dirs = data_dir_of(cfg)
    if not dirs.ledger_key.exists():
        fail(Exit.BAD_INPUT, f"no ledger key at {dirs.ledger_key}: nothing to rotate")
    nxt = dirs.ledger_key.with_name(dirs.ledger_key.name + ".next")
    if nxt.exists():
        fail(Exit.BAD_INPUT, f"a rotation is already waiting ({nxt}); the sealer applies it with its next block")
    key = new_private_key()
    write_private_key(nxt, key)
    out.print(f"new ledger key {key_id_of(public_key_bytes(key))} waits in {nxt}: the sealer's next block, signed "
              "by the current key, announces it; auditors keep trusting the genesis key in ledger.pub", highlight=False)


@ledger_app.command("export")
@configured("ledger export", DATA_DIR)
def ledger_export(
    cfg: Settings,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the signed checkpoint.")] = Path(
        "checkpoint.json"),
) -> None:
    """Write a signed checkpoint (head height, hash, ledger public key) for auditors to keep."""
    from packproof.anchor.checkpoint import make_checkpoint  # not at start-up: cryptography
    from packproof.anchor.ledger import LedgerFile  # not at start-up: cryptography
    from packproof.crypto import load_or_create_ledger_key  # not at start-up: cryptography

    dirs = data_dir_of(cfg)
    blocks = list(LedgerFile(dirs.ledger).read())
    if not blocks:
        fail(Exit.BAD_INPUT, f"no sealed block in {dirs.ledger} yet")
    if not dirs.ledger_key.exists():
        fail(Exit.BAD_INPUT, f"no ledger key at {dirs.ledger_key}")
    cp = make_checkpoint(blocks[-1], load_or_create_ledger_key(dirs.ledger_key))
    out_file.write_text(json.dumps(cp, indent=1) + "\n")
    out.print(f"checkpoint of block {cp['height']} ({cp['hash']}), key {cp['key_id']}, written to {out_file}",
              highlight=False)


@configured("audit", COMMON)
def audit(
    cfg: Settings,
    ledger_key: Annotated[str | None, typer.Option(help="Trusted ledger key (default DATA_DIR/ledger.pub).")] = None,
    signatures: Annotated[bool, typer.Option(help="Check every reading's device signature against the sealed "
                                                  "registry (the slow part; --no-signatures skips only that).")] = True,
    show: Annotated[int, typer.Option(help="List at most this many problems of each kind.", min=1)] = 20,
) -> None:
    """Recompute every leaf and block root from the store, check them against the ledger, then the chain."""
    # not at start-up: only audit draws a progress bar
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from packproof.anchor.audit import audit as run_audit  # not at start-up: cryptography
    from packproof.anchor.ledger import LedgerFile  # not at start-up: cryptography
    from packproof.crypto import read_public_key  # not at start-up: cryptography
    from packproof.store import Store  # not at start-up: db drivers

    dirs = data_dir_of(cfg)
    key = read_public_key(ledger_key or str(dirs.ledger_pub))

    async def go():  # type: ignore[no-untyped-def]
        store = await Store.open(dirs.store, readonly=True)
        try:
            total = await store.max_id()
            with Progress(TextColumn("auditing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=err, transient=True) as bar:
                task = bar.add_task("readings", total=total)
                return await run_audit(store, LedgerFile(dirs.ledger), key, signatures=signatures,
                                       progress=lambda n: bar.advance(task, n))
        finally:
            await store.close()

    report = asyncio.run(go())
    out.print(f"audited {report.readings:,} sealed readings in {report.blocks:,} blocks"
              f" ({report.unsealed:,} stored rows not sealed yet), {report.quarantine_rows:,} quarantined payloads; "
              + ("device signatures checked" if report.signatures else
                 "device signatures NOT checked (--no-signatures)"),
              highlight=False)
    sections = [("ledger chain", report.chain), ("blocks", [f"block {h}: {m}" for h, m in report.blocks_bad]),
                ("readings", [f"reading {r}: {m}" for r, m in report.readings_bad]),
                ("readings no block covers (store ids)", [str(i) for i in report.uncovered]),
                ("readings two blocks cover (store ids)", [str(i) for i in report.covered_twice]),
                ("registry (table vs sealed records)", report.registry),
                ("quarantine (table vs sealed decisions)", report.quarantine),
                ("parties (table vs sealed records)", report.parties),
                ("custody (tables vs sealed events)", report.custody),
                ("transparency log (store vs the leaves)", report.log)]
    for title, items in sections:
        if items:
            out.print(f"[red]{title}: {len(items):,} problem(s)[/]", highlight=False)
            for line in items[:show]:
                out.print(f"  {line}", highlight=False, markup=False)  # a problem quotes stored data: never markup
            if len(items) > show:
                out.print(f"  ... and {len(items) - show:,} more", highlight=False)
    if not report.ok:
        first = next(items[0] for _, items in sections if items)
        fail(Exit.INVALID, f"audit failed; first problem: {escape(first)}")
    out.print("[green]audit passed[/]: every leaf, root, link and block signature holds; every row's columns match "
              "its bytes; registry, quarantine and parties match their sealed records; custody replays to its tables; "
              "the log, its checkpoints and tiles "
              "match the leaves"
              + ("; every device signature holds" if report.signatures else ""), highlight=False)


# ---- the transparency log (issue 16) ------------------------------------------------------


@ledger_app.command("checkpoint")
@configured("ledger checkpoint", COMMON)
def ledger_checkpoint(
    cfg: Settings,
    vkey: Annotated[bool, typer.Option("--vkey", help="Print the log's verifier key instead "
                                                      "(name+hex8(key id)+base64(0x01 || key)).")] = False,
) -> None:
    """Print the log's latest signed C2SP checkpoint (save it to check consistency later)."""
    from packproof.anchor.logproof import log_keys_for  # not at start-up: cryptography
    from packproof.crypto import read_public_key  # not at start-up: cryptography
    from packproof.store import Store  # not at start-up: db drivers

    dirs = data_dir_of(cfg)

    async def go():  # type: ignore[no-untyped-def]
        store = await Store.open(dirs.store, readonly=True)
        try:
            return await store.latest_checkpoint()
        finally:
            await store.close()

    cp = asyncio.run(go())
    if cp is None:
        fail(Exit.BAD_INPUT, f"the log in {dirs.store} has no checkpoint yet: nothing is sealed")
    if vkey:
        keys = log_keys_for(cp.note, [read_public_key(str(dirs.ledger_pub))])
        out.print(str(keys[0]) if keys else "", highlight=False, markup=False)
        return
    out.file.write(cp.note)
    out.file.flush()


@ledger_app.command("consistency")
@configured("ledger consistency", DATA_DIR)
def ledger_consistency(
    cfg: Settings,
    old: Annotated[Path, typer.Argument(help="A checkpoint saved earlier (signed note).")],
    new: Annotated[Path, typer.Argument(help="A later checkpoint of the same log.")],
    api_url: Annotated[str | None, typer.Option("--api", help="Base URL of the packproof API (for the proof).")] = None,
    ledger_key: Annotated[list[str] | None, typer.Option(
        help="Ledger public key(s) that may sign the checkpoints (default DATA_DIR/ledger.pub).")] = None,
    log_key: Annotated[list[str] | None, typer.Option(help="The log's verifier key(s) (name+hex8+base64).")] = None,
) -> None:
    """Check that NEW extends OLD (RFC 6962 consistency): exit 0 if so, 1 (naming both sizes and roots) if not."""
    from packproof.anchor.logproof import check_consistent, describe, open_log_checkpoint  # not at start-up
    from packproof.app.cli.verify import fetch_consistency, parse_log_keys, read_text  # not at start-up: httpx
    from packproof.crypto import read_public_key  # not at start-up: cryptography

    dirs = data_dir_of(cfg)
    vkeys = parse_log_keys(log_key or [])
    publics = [] if vkeys and not ledger_key else [read_public_key(k) for k in ledger_key or [str(dirs.ledger_pub)]]
    opened = []
    for path in (old, new):
        try:
            opened.append(open_log_checkpoint(read_text(path, "checkpoint"), publics, vkeys))
        except NoteError as exc:
            fail(Exit.INVALID, f"{path} is not a checkpoint the log's key signed: {exc}")
    a, b = opened
    proof: list[bytes] = []
    if a.origin == b.origin and a.size < b.size:
        if api_url is None:
            fail(Exit.BAD_INPUT, f"the proof from size {a.size} to {b.size} comes from the API: give --api URL")
        proof = fetch_consistency(api_url.rstrip("/"), a.size, b.size)
    try:
        check_consistent(a, b, proof)
    except ProofError as exc:
        fail(Exit.INVALID, str(exc))
    out.print(f"[green]consistent[/]: {a.origin} {describe(a)} is a prefix of {describe(b)}", highlight=False)


# ---- anchors on an Ethereum chain (issue 17) --------------------------------------------------


@ledger_app.command("anchors")
@configured("ledger anchors", COMMON)
def ledger_anchors(
    cfg: Settings,
    eth_rpc: Annotated[str, typer.Option("--eth-rpc", help="An Ethereum node's JSON-RPC URL.")],
    contract: Annotated[str, typer.Option("--contract", help="The anchor contract's address.")],
    span: Annotated[int, typer.Option("--log-span", min=1, help="Blocks per eth_getLogs query (public nodes cap "
                                      "the range of one).")] = 10_000,
) -> None:
    """Check every anchor the store recorded against the chain: the contract holds its size, root and
    note hash; its transaction's receipt is in the recorded block and emitted it; and every anchor on
    chain is one the store recorded. Exit 1 naming each anchor that differs."""
    from packproof.anchor import anchoring, chainread  # not at start-up: web3
    from packproof.anchor.anchor_check import compare_anchors  # not at start-up: cryptography
    from packproof.app.cli.verify import chain_options  # not at start-up: httpx
    from packproof.store import Store  # not at start-up: db drivers

    chain_options(eth_rpc, contract)
    dirs = data_dir_of(cfg)

    async def rows() -> tuple[list[AnchorRow], str | None]:
        store = await Store.open(dirs.store, readonly=True)
        try:
            found: list[AnchorRow] = []
            while page := await store.anchors(1000, found[-1].id if found else None):
                found += page
            return found, await store.log_origin()
        finally:
            await store.close()

    every, origin = asyncio.run(rows())
    w3 = anchoring.connect(eth_rpc)
    address = anchoring.Web3.to_checksum_address(contract)

    def read() -> tuple[int, list[AnchorRow], Any, Any, Any]:
        chain_id = int(w3.eth.chain_id)
        if origin is not None:  # code at the address, and the contract of this log (not another's)
            anchoring.check_contract(w3, address, origin)
        elif not w3.eth.get_code(address):
            raise anchoring.NotTheContract(f"no contract at {address} on this chain (chain id {chain_id})")
        mine = sorted((r for r in every if r.chain_id == chain_id and r.contract.lower() == address.lower()),
                      key=lambda r: r.id)
        events = chainread.all_events(w3, address, span)
        stored = {r.size: anchoring.at_or_after(w3, address, r.size) for r in mine}
        receipts = {r.tx_hash: chainread.receipt(w3, address, r.tx_hash) for r in mine}
        return chain_id, mine, events, stored, receipts

    try:
        chain_id, mine, events, stored, receipts = anchoring.call(read, "reading the anchors")
    except anchoring.ChainError as exc:
        fail(Exit.UNREACHABLE, f"the Ethereum node at {eth_rpc} did not answer: {exc}")
    except anchoring.NotTheContract as exc:
        fail(Exit.BAD_INPUT, f"--contract: {exc}")
    findings = compare_anchors(mine, events, stored, receipts)
    others = len(every) - len(mine)
    out.print(f"{len(mine)} anchor(s) recorded for contract {address} on chain {chain_id}"
              + (f" ({others} on other contracts or chains not checked)" if others else "")
              + f"; {len(events)} Anchored event(s) on chain", highlight=False)
    for f in findings:
        mark = "[green]ok  [/]" if f.ok else ("[yellow]skip[/]" if f.ok is None else "[red]FAIL[/]")
        out.print(f"  {mark} {f.size:>10} {escape(f.detail)}", highlight=False)
    bad = [f for f in findings if f.ok is False]
    if bad:
        fail(Exit.INVALID, f"{len(bad)} anchor(s) do not match the chain: first at size {bad[0].size}")
    out.print("[green]anchors hold[/]: every recorded anchor is on chain as recorded, and the chain holds no "
              "other", highlight=False)
