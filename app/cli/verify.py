"""`packproof verify`: one reading's proof, from the API or a saved bundle, checked here.

The verifier trusts nothing the API says about the proof: it fetches the bundle and the chain,
and `packproof.anchor.proof` checks every claim against the bytes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from packproof.app.cli.common import Exit, fail, out
from packproof.errors import ConfigError, LedgerIntegrityError, NoteError
from packproof.reading import parse_reading_id
from packproof.timefmt import rfc3339

if TYPE_CHECKING:  # imported where used: `packproof --help` stays quick
    from packproof.anchor.anchor_check import Anchor, AnchoredLog, AnchorVerdict, LogHead
    from packproof.anchor.cosignature import WitnessKey
    from packproof.anchor.ledger import Block
    from packproof.anchor.note import VerifierKey
    from packproof.anchor.proof import LedgerView, LogView, ProofBundle
    from packproof.api.certificate.document import CertificateAnchor


def _http_json(client: Any, url: str) -> Any:
    """GET `url` as JSON. Unreachable, an error status or an answer that is not JSON is exit 3
    (no packproof API answered); 404/422 with the API's own `detail` is bad input (exit 2)."""
    import httpx  # not at start-up: httpx

    from packproof.anchor.proof import strict_json  # not at start-up: cryptography

    try:
        r = client.get(url)
    except httpx.HTTPError as exc:
        fail(Exit.UNREACHABLE, f"cannot reach the API at {url}: {exc}")
    try:
        doc = strict_json(r.content)
    except ValueError as exc:
        fail(Exit.UNREACHABLE, f"{url} answered {r.status_code} with something that is not JSON ({exc}): "
                               f"{r.text[:80]!r}")
    detail = doc.get("detail") if isinstance(doc, dict) else None
    if r.status_code in (404, 422) and isinstance(detail, str):
        fail(Exit.BAD_INPUT, f"{url}: {detail}")
    if r.status_code != 200:
        fail(Exit.UNREACHABLE, f"{url} answered {r.status_code}: {r.text[:200]}")
    return doc


def _api_chain(client: Any, base: str, start: int) -> list[Block]:
    """The ledger's blocks from `start` to the head, page by page, from GET /ledger/blocks."""
    from packproof.anchor.proof import typed_block  # not at start-up: cryptography

    chain: list[Block] = []
    at: int | None = start
    while at is not None:
        url = f"{base}/ledger/blocks?start={at}&limit=1000"
        page = _http_json(client, url)
        blocks, nxt = (page.get("blocks"), page.get("next_start")) if isinstance(page, dict) else (None, None)
        if not isinstance(blocks, list) or not (nxt is None or (type(nxt) is int and nxt > at)):
            fail(Exit.UNREACHABLE, f"{url} did not answer a page of blocks (a list `blocks` and a rising "
                                   "`next_start`)")
        chain += [typed_block(b, f"API block {at + i}") for i, b in enumerate(blocks)]
        at = nxt
    return chain


def _read_bundle(path: Path) -> bytes:
    """The bundle file's bytes, read no further than a bundle can be long."""
    from packproof.anchor.proof import MAX_BUNDLE_BYTES  # not at start-up: cryptography

    try:
        with path.open("rb") as f:
            return f.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        fail(Exit.BAD_INPUT, f"cannot read bundle {path}: {exc.strerror or exc}")


def _read_ledger(path: Path) -> list[Block]:
    from packproof.anchor.ledger import LedgerFile  # not at start-up: cryptography
    from packproof.anchor.proof import typed_block  # not at start-up: cryptography

    if not path.is_file():
        fail(Exit.BAD_INPUT, f"no ledger file at {path}")
    try:
        return [typed_block(b.to_json(), f"{path} block {i}") for i, b in enumerate(LedgerFile(path).read())]
    except OSError as exc:
        fail(Exit.BAD_INPUT, f"cannot read ledger {path}: {exc.strerror or exc}")


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(Exit.BAD_INPUT, f"cannot read {what} {path}: {exc}")


def parse_log_keys(texts: list[str]) -> list[VerifierKey]:
    """`--log-key` values: note verifier keys (`name+hex8+base64`), or files holding one."""
    from packproof.anchor.note import VerifierKey  # not at start-up: cryptography

    keys = []
    for text in texts:
        if Path(text).is_file():
            text = Path(text).read_text().strip()
        try:
            keys.append(VerifierKey.parse(text))
        except NoteError as exc:
            fail(Exit.BAD_INPUT, f"--log-key {text!r}: {exc}")
    return keys


def fetch_consistency(base: str, old: int, new: int) -> list[bytes]:
    """GET /log/consistency?from=old&to=new, its proof decoded (exit 3 when no API answers)."""
    import httpx  # not at start-up: httpx

    with httpx.Client(timeout=10) as client:
        url = f"{base}/log/consistency?from={old}&to={new}"
        doc = _http_json(client, url)
    proof = doc.get("proof") if isinstance(doc, dict) else None
    if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof):
        fail(Exit.UNREACHABLE, f"{url} did not answer a consistency proof (a list `proof` of base64 hashes)")
    try:
        return [base64.b64decode(h, validate=True) for h in proof]
    except binascii.Error:
        fail(Exit.UNREACHABLE, f"{url} answered a proof hash that is not base64")


def _log_view(doc: ProofBundle, later: Path | None, keys: list[VerifierKey], api_url: str | None) -> LogView:
    """What the verifier knows of the log: its keys, a later trusted checkpoint and the proof to it."""
    from packproof.anchor.note import parse_note  # not at start-up: cryptography
    from packproof.anchor.proof import LogView  # not at start-up: cryptography
    from packproof.anchor.tlog_checkpoint import parse_checkpoint  # not at start-up: cryptography

    if later is None:
        return LogView(keys)
    text = read_text(later, "checkpoint")
    proof = None
    if doc.log is not None and api_url is not None:
        try:
            old = parse_checkpoint(parse_note(doc.log.checkpoint.encode()).text).size
            new = parse_checkpoint(parse_note(text.encode()).text).size
        except NoteError as exc:
            fail(Exit.BAD_INPUT, f"a checkpoint is not a signed note: {exc}")
        if old <= new:
            proof = fetch_consistency(api_url.rstrip("/"), old, new)
    return LogView(keys, text, proof)


def _ledger_view(heights: list[int], pinned: bytes | None, chain: list[Block] | None) -> LedgerView:
    """What the verifier knows besides the bundle: the trusted key at each of the bundle's block
    heights (a pinned genesis key followed through the rotations a chain from block 0 announces),
    and the chain from the lowest of those heights to the head."""
    from packproof.anchor.ledger import keys_in_force  # not at start-up: cryptography
    from packproof.anchor.proof import LedgerView  # not at start-up: cryptography

    from_genesis = bool(chain) and chain is not None and chain[0].height == 0
    keys: dict[int, bytes] = {}
    if pinned is not None and chain and from_genesis:
        try:
            keys = keys_in_force(chain, pinned, heights)
        except LedgerIntegrityError as exc:
            fail(Exit.INVALID, f"the chain before this block does not hold: {exc}")
    elif pinned is not None:
        keys = dict.fromkeys(heights, pinned)
    if chain and from_genesis:
        chain = chain[heights[0]:]
    return LedgerView(keys, chain)


def _fetch_proof(base: str, reading_id: str, from_genesis: bool, save: Path | None,
                 ) -> tuple[str, ProofBundle, list[Block]]:
    """The reading id as its body spells it ("P01:007" is P01:7), its bundle from the API, and the
    chain from the bundle's lowest block (from block 0 when a pinned key must follow rotations)."""
    import httpx  # not at start-up: httpx

    from packproof.anchor.proof import bundle_of  # not at start-up: cryptography

    try:
        device_id, seq = parse_reading_id(reading_id)
    except ValueError as exc:
        fail(Exit.BAD_INPUT, str(exc))
    reading_id = f"{device_id}:{seq}"
    with httpx.Client(timeout=10) as client:
        raw = _http_json(client, f"{base}/readings/{reading_id}/proof")
        doc = bundle_of(raw)
        chain = _api_chain(client, base, 0 if from_genesis else min(doc.reading.height, doc.registry.height))
    if save:
        try:
            save.write_text(json.dumps(raw, indent=1))
        except OSError as exc:
            fail(Exit.BAD_INPUT, f"cannot write {save}: {exc.strerror or exc}")
    return reading_id, doc, chain


def _custody(event_id: str | None, api_url: str | None, bundle: Path | None, trusted: bytes | None,
             ledger: Path | None, save: Path | None, custody: bool, on_chain: tuple[str, str] | None) -> bool:
    """A custody event's proof (issue 15), chosen explicitly, never guessed from an id (a party id may
    equal a device id, so `x:1` may name both): a saved bundle whose `format` field is the custody
    bundle's, or an id given with `--custody`. False: a reading's, checked by `verify`."""
    raw = _read_bundle(bundle) if bundle is not None and event_id is None else None
    if raw is not None:
        if _bundle_format(raw) != _custody_format():
            return False
    elif not custody:
        return False
    elif event_id is None or api_url is None:
        fail(Exit.BAD_INPUT, "--custody needs EVENT_ID with --api URL (a saved bundle says what it is itself)")
    _verify_event(event_id, api_url, raw, trusted, _read_ledger(ledger) if ledger else None, save, on_chain)
    return True

def _witness_keys(vkeys: list[str], minimum: int | None) -> tuple[list[WitnessKey], int]:
    """--witness/--min-witnesses read before anything is fetched: the keys, and how many must have cosigned
    (default: all of them)."""
    from packproof.anchor.cosignature import WitnessKey  # not at start-up: cryptography

    try:
        keys = [WitnessKey.parse(v) for v in vkeys]
    except NoteError as exc:
        fail(Exit.BAD_INPUT, f"--witness: {exc}")
    need = len(keys) if minimum is None else minimum
    if not 0 < need <= len(keys):
        fail(Exit.BAD_INPUT, f"--min-witnesses {need}: between 1 and the {len(keys)} --witness key(s) given")
    return keys, need


def _check_witnesses(note: str | None, keys: list[WitnessKey], need: int) -> None:
    """The bundle's log checkpoint (`log.checkpoint`, a signed note) must carry at least `need` valid
    cosignature/v1 lines (c2sp.org/tlog-cosignature) by `keys`; each key is named valid, invalid or
    missing. Exit 1 if not."""
    from packproof.anchor.cosignature import tally  # not at start-up: cryptography

    if note is None:
        fail(Exit.INVALID, "cosignatures: the bundle carries no log checkpoint (`log.checkpoint`) to count them on")
    try:
        t = tally(note.encode(), keys)
    except NoteError as exc:
        fail(Exit.INVALID, f"cosignatures: the bundle's log checkpoint is not a signed note: {exc}")
    for label, names in (("ok  ", t.valid), ("FAIL invalid", t.invalid), ("FAIL missing", t.missing)):
        for name in names:
            out.print(f"  {label} cosignature by {name}", highlight=False)
    if not t.satisfied(need):
        fail(Exit.INVALID, f"the checkpoint carries {len(t.valid)} valid cosignature(s), {need} required "
                           f"(invalid: {', '.join(t.invalid) or 'none'}; missing: {', '.join(t.missing) or 'none'})")
    out.print(f"[green]{len(t.valid)} of {len(keys)} witnesses cosigned the checkpoint ({need} required)[/]")


def verify(
    reading_id: Annotated[str | None, typer.Argument(help="device_id:seq (a reading) or party:seq (a custody "
                                                          "event), fetched from --api.")] = None,
    api_url: Annotated[str | None, typer.Option("--api", help="Base URL of the packproof API.")] = None,
    bundle: Annotated[Path | None, typer.Option(help="A saved proof bundle (JSON), checked offline.")] = None,
    ledger_key: Annotated[str | None, typer.Option(help="Trusted ledger public key (base64 or a file).")] = None,
    ledger: Annotated[Path | None, typer.Option(help="A ledger file to show the block is in the chain.")] = None,
    save: Annotated[Path | None, typer.Option(help="Also write the fetched bundle to this file.")] = None,
    custody: Annotated[bool, typer.Option("--custody", help="The id is a custody event's (party:seq), not a "
                                                            "reading's; a saved bundle needs no flag: its "
                                                            "`format` field says which it is.")] = False,
    checkpoint: Annotated[Path | None, typer.Option(
        help="A later log checkpoint you trust (a signed note, e.g. from `packproof ledger checkpoint`): the bundle's "
             "checkpoint must be a prefix of it (the proof is fetched from --api).")] = None,
    log_key: Annotated[list[str] | None, typer.Option(
        help="The log's verifier key (name+hex8+base64, or a file); default: the ledger keys under the log's "
             "origin.")] = None,
    witness: Annotated[list[str] | None, typer.Option("--witness", help="A witness's cosignature vkey "
                                                      "(repeatable): the bundle's log checkpoint must be cosigned.")]
    = None,
    min_witnesses: Annotated[int | None, typer.Option("--min-witnesses", help="Valid cosignatures required "
                                                      "from the --witness keys (default: all).")] = None,
    eth_rpc: Annotated[str | None, typer.Option("--eth-rpc", help="An Ethereum node's JSON-RPC URL: also find the "
                                                "anchor on chain that covers the proof's log checkpoint (exit 6: "
                                                "none yet).")] = None,
    contract: Annotated[str | None, typer.Option("--contract", help="The anchor contract's address (with "
                                                 "--eth-rpc).")] = None,
    certificate: Annotated[Path | None, typer.Option(
        "--certificate", help="A condition certificate (JSON, issue 18): every claim recomputed from the readings "
                              "it carries, checked offline.")] = None,
) -> None:
    """Check one reading's (or, with --custody, a custody event's) proof: the reading, the device's
    sealed registry record and signature, both Merkle paths, the block hashes and signatures, the
    chain; with --eth-rpc, the Ethereum anchor covering its log checkpoint.

    Every claim printed is derived from proven bytes: the reading id from the reading, the
    device's key and trust level from its sealed registry record.
    """
    from packproof.anchor.proof import parse_bundle, verify_bundle  # not at start-up: cryptography
    from packproof.crypto import read_public_key  # not at start-up: cryptography

    trusted = read_public_key(ledger_key) if ledger_key else None
    witnessed = _witness_keys(witness or [], min_witnesses) if witness or min_witnesses is not None else None
    on_chain = chain_options(eth_rpc, contract)
    if certificate is not None:
        if reading_id is not None or bundle is not None:
            fail(Exit.BAD_INPUT, "--certificate FILE is checked on its own: give no READING_ID or --bundle with it")
        verify_certificate_file(certificate, trusted, parse_log_keys(log_key or []), witnessed, on_chain)
        return
    chain: list[Block] | None = None
    if _custody(reading_id, api_url, bundle, trusted, ledger, save, custody, on_chain):
        return
    if bundle is not None and reading_id is None:
        doc = parse_bundle(_read_bundle(bundle))
    elif reading_id is not None and bundle is None:
        if api_url is None:
            fail(Exit.BAD_INPUT, "READING_ID needs --api URL (or use --bundle FILE)")
        reading_id, doc, chain = _fetch_proof(api_url.rstrip("/"), reading_id, trusted is not None, save)
    else:
        fail(Exit.BAD_INPUT, "give either READING_ID with --api URL, or --bundle FILE")
    if ledger is not None:
        chain = _read_ledger(ledger)
    heights = sorted({doc.reading.height, doc.registry.height})
    view = _ledger_view(heights, trusted, chain)
    view = dataclasses.replace(view, log=_log_view(doc, checkpoint, parse_log_keys(log_key or []), api_url))
    verdict = verify_bundle(doc, view, asked_id=reading_id)
    out.print(f"reading {verdict.reading_id or '(not a valid reading)'} (device trust: {verdict.trust})",
              highlight=False)
    for c in verdict.checks:
        mark = "[green]ok  [/]" if c.ok else ("[yellow]skip[/]" if c.ok is None else "[red]FAIL[/]")
        out.print(f"  {mark} {c.name:24} {c.detail}", highlight=False)
    broken = [c.name for c in verdict.checks if c.ok is False]
    if broken:
        fail(Exit.INVALID, f"proof does not hold: {', '.join(broken)}")
    if witnessed is not None:
        _check_witnesses(doc.log.checkpoint if doc.log else None, *witnessed)
    out.print("[green]proof holds[/]")
    if on_chain is not None:
        if doc.log is None:
            fail(Exit.NOT_ANCHORED, "anchor: the bundle carries no log checkpoint (its block predates the log): "
                                    "nothing the chain could anchor")
        check_anchor(_head_of_note(doc.log.checkpoint), api_url, *on_chain)


# ---- custody events (issue 15): `verify PARTY:SEQ` and custody bundles -----------------------


def _custody_format() -> str:
    from packproof.anchor.custody_proof import FORMAT  # not at start-up: cryptography

    return FORMAT


def _bundle_format(raw: bytes) -> str | None:
    """A saved bundle's `format` field (None: not a JSON object naming one; the reading path then says why)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    value = doc.get("format") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def _verify_event(event_id: str | None, api: str | None, raw: bytes | None, trusted: bytes | None,
                  ledger_chain: Any, save: Path | None, on_chain: tuple[str, str] | None) -> None:
    """Check a custody event's proof: from the API (`event_id`, `api`) or a saved bundle (`raw`)."""
    # not at start-up: cryptography
    from packproof.anchor.custody_proof import heights, parse_custody_bundle, verify_custody_bundle
    from packproof.anchor.proof import strict_json  # not at start-up: cryptography

    chain = None
    if raw is not None:
        try:
            doc = strict_json(raw, name_constants=True)
        except ValueError as exc:
            fail(Exit.BAD_INPUT, f"custody proof bundle is not JSON: {exc}")
    else:
        import httpx  # not at start-up: httpx

        base = (api or "").rstrip("/")
        with httpx.Client(timeout=10) as client:
            doc = _http_json(client, f"{base}/custody/events/{event_id}/proof")
            try:
                bundle = parse_custody_bundle(doc)
            except ConfigError as exc:
                fail(Exit.BAD_INPUT, str(exc))
            chain = _api_chain(client, base, 0 if trusted is not None else heights(bundle)[0])
        if save:
            try:
                save.write_text(json.dumps(doc, indent=1))
            except OSError as exc:
                fail(Exit.BAD_INPUT, f"cannot write {save}: {exc.strerror or exc}")
    try:
        bundle = parse_custody_bundle(doc)
    except ConfigError as exc:
        fail(Exit.BAD_INPUT, str(exc))
    if ledger_chain is not None:
        chain = ledger_chain
    verdict = verify_custody_bundle(bundle, _ledger_view(heights(bundle), trusted, chain), asked_id=event_id)
    out.print(f"custody event {verdict.event_id or '(not a valid event)'}", highlight=False)
    for c in verdict.checks:
        mark = "[green]ok  [/]" if c.ok else ("[yellow]skip[/]" if c.ok is None else "[red]FAIL[/]")
        out.print(f"  {mark} {c.name:28} {c.detail}", highlight=False)
    broken = [c.name for c in verdict.checks if c.ok is False]
    if broken:
        fail(Exit.INVALID, f"proof does not hold: {', '.join(broken)}")
    out.print("[green]proof holds[/]")
    if on_chain is not None:
        check_anchor(_head_of_block(bundle.event.block.header), api, *on_chain)


# ---- the anchor on chain (issue 17): `verify --eth-rpc URL --contract ADDR` -----------------


def chain_options(eth_rpc: str | None, contract: str | None) -> tuple[str, str] | None:
    """--eth-rpc and --contract, both or neither, read before anything is fetched."""
    if eth_rpc is None and contract is None:
        return None
    if eth_rpc is None or contract is None:
        fail(Exit.BAD_INPUT, "--eth-rpc URL and --contract ADDRESS go together (the node and the anchor contract)")
    if not eth_rpc.startswith(("http://", "https://")):
        fail(Exit.BAD_INPUT, f"--eth-rpc {eth_rpc!r}: expected an http(s):// JSON-RPC URL of an Ethereum node")
    if not (contract.startswith("0x") and len(contract) == 42 and not contract[2:].strip("0123456789abcdefABCDEF")):
        fail(Exit.BAD_INPUT, f"--contract {contract!r}: expected an address, 0x and 40 hex digits")
    return eth_rpc, contract


@dataclasses.dataclass(frozen=True)
class _Head:
    """What the proof shows of the log (the anchor step's input), and the log's origin when known."""

    head: LogHead
    origin: str | None


def _head_of_note(note: str) -> _Head:
    """The bundle's checkpoint (already opened with the log's keys by the proof checks): size, root,
    and the hash of its log-signed part (without witnesses' cosignature lines), as anchored."""
    from packproof.anchor.anchor_check import LogHead, log_signed_note  # not at start-up: cryptography
    from packproof.anchor.anchoring import note_hash  # not at start-up: web3
    from packproof.anchor.note import parse_note  # not at start-up: cryptography
    from packproof.anchor.tlog_checkpoint import parse_checkpoint  # not at start-up: cryptography

    try:
        cp = parse_checkpoint(parse_note(note.encode()).text)
        return _Head(LogHead(cp.size, cp.root, note_hash(log_signed_note(note))), cp.origin)
    except NoteError as exc:
        fail(Exit.INVALID, f"anchor: the bundle's checkpoint is not a log-signed note: {exc}")


def _head_of_block(header: Any) -> _Head:
    """A custody bundle carries no checkpoint note: the log state its event's (signed, checked) block
    recorded, log_size and log_root, is what the chain must cover; no note hash to compare."""
    from packproof.anchor.anchor_check import LogHead  # not at start-up: cryptography

    if header.log_size is None or header.log_root is None:
        fail(Exit.NOT_ANCHORED, "anchor: the event's block predates the log: nothing the chain could anchor")
    return _Head(LogHead(header.log_size, bytes.fromhex(header.log_root), None), None)


@dataclasses.dataclass(frozen=True)
class _OnChain:
    """What the node answered: the first anchor at or after a size (None: none), the Anchored event(s)
    of that anchor, the node's head block and the anchor block's time."""

    anchor: Anchor | None
    found: list[AnchoredLog]
    head_block: int
    block_time: int | None


def _read_chain(size: int, origin: str | None, eth_rpc: str, address: str) -> _OnChain:
    """The contract checked (when the log's origin is known) and read for the first anchor at or after
    `size`; exit 3 when the node does not answer, 2 when the address is not the log's contract."""
    from packproof.anchor import anchoring, chainread  # not at start-up: web3

    w3 = anchoring.connect(eth_rpc)

    def read() -> _OnChain:
        if origin is not None:
            anchoring.check_contract(w3, address, origin)
        anchor = anchoring.at_or_after(w3, address, size)
        found = chainread.anchor_events(w3, address, anchor.size, anchor.block_time) if anchor is not None else []
        block_time = int(w3.eth.get_block(found[0].block_number)["timestamp"]) if found else None
        return _OnChain(anchor, found, chainread.head(w3), block_time)

    try:
        return anchoring.call(read, "reading the anchor")
    except anchoring.ChainError as exc:
        fail(Exit.UNREACHABLE, f"the Ethereum node at {eth_rpc} did not answer: {exc}")
    except anchoring.NotTheContract as exc:
        fail(Exit.BAD_INPUT, f"--contract: {exc}")


def _show_anchor(address: str, on: _OnChain) -> None:
    from packproof.anchor import chainread  # not at start-up: web3

    anchor = on.anchor
    if anchor is None:
        return
    out.print(f"anchor on chain (contract {address}):", highlight=False)
    out.print(f"  size           {anchor.size}", highlight=False)
    out.print(f"  root           {anchor.root.hex()}", highlight=False)
    out.print(f"  note hash      {anchor.note_hash.hex()}", highlight=False)
    if on.found:
        e = on.found[0]
        out.print(f"  block          {e.block_number}", highlight=False)
        out.print(f"  block time     {rfc3339(on.block_time if on.block_time is not None else anchor.block_time)}",
                  highlight=False)
        out.print(f"  tx             0x{e.tx_hash.hex()}", highlight=False)
        out.print(f"  confirmations  {chainread.confirmations(on.head_block, e.block_number)} "
                  f"(head block {on.head_block})", highlight=False)
    else:
        out.print(f"  block time     {rfc3339(anchor.block_time)} (the contract's record)", highlight=False)
        out.print("  tx             not found: no Anchored event of this size in the blocks of its time "
                  "(a node that prunes logs?)", highlight=False)


def _conclude(verdict: AnchorVerdict) -> None:
    """Print the anchor verdict; exit 1 on a conflict, 6 when it does not hold (not anchored, unproven)."""
    from packproof.anchor.anchor_check import Outcome  # not at start-up: cryptography

    for warning in verdict.warnings:
        out.print(f"  [yellow]warn[/] {warning}", highlight=False)
    if verdict.outcome is Outcome.CONFLICT:
        fail(Exit.INVALID, f"anchor: {verdict.detail}")
    if not verdict.outcome.holds:
        fail(Exit.NOT_ANCHORED, f"anchor: {verdict.detail}")
    out.print(f"[green]anchored[/]: {verdict.detail}", highlight=False)


def check_anchor(mine: _Head, api_url: str | None, eth_rpc: str, address: str) -> None:
    """Find the anchor covering `mine` on chain, print it and the verdict; exit 1 on a conflict, 6
    when none covers it (yet), 3 when the node does not answer."""
    from packproof.anchor.anchor_check import judge_anchor  # not at start-up: cryptography

    on = _read_chain(mine.head.size, mine.origin, eth_rpc, address)
    proof = None
    if on.anchor is not None and on.anchor.size > mine.head.size and api_url is not None:
        proof = fetch_consistency(api_url.rstrip("/"), mine.head.size, on.anchor.size)
    verdict = judge_anchor(mine.head, on.anchor, proof)
    _show_anchor(address, on)
    _conclude(verdict)


def check_certificate_anchor(carried: CertificateAnchor, origin: str | None, eth_rpc: str, address: str) -> None:
    """A certificate's anchor (already checked offline to cover its checkpoint) against the chain: the
    contract must hold that very size with that root, written by the transaction and block the
    certificate names; exit 1 when it holds another root or another transaction, 6 when that size is
    not on chain."""
    from packproof.anchor.anchor_check import LogHead, judge_anchor  # not at start-up: cryptography

    if carried.contract.lower() != address.lower():
        out.print(f"  [yellow]warn[/] the certificate names contract {carried.contract}; checking {address} "
                  "(--contract)", highlight=False)
    on = _read_chain(carried.size, origin, eth_rpc, address)
    _show_anchor(address, on)
    if on.anchor is not None and on.anchor.size != carried.size:
        fail(Exit.NOT_ANCHORED, f"anchor: the contract holds no anchor at size {carried.size}, the certificate's "
                                f"(the first at or after it is at size {on.anchor.size})")
    head = LogHead(carried.size, bytes.fromhex(carried.root), bytes.fromhex(carried.note_hash))
    verdict = judge_anchor(head, on.anchor, None)
    if verdict.outcome.holds and on.found:
        e = on.found[0]
        if ("0x" + e.tx_hash.hex(), e.block_number) != (carried.tx_hash.lower(), carried.block_number):
            fail(Exit.INVALID, f"anchor: the certificate says tx {carried.tx_hash} in block {carried.block_number}, "
                               f"the chain's Anchored event of size {carried.size} is tx 0x{e.tx_hash.hex()} in "
                               f"block {e.block_number}")
    _conclude(verdict)


# ---- condition certificates (issue 18): `verify --certificate FILE` ------------------------------


def _pooled_signatures(checks: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """`crypto.verify_many` over the machine's cores: a certificate carries every reading's signature."""
    import os  # not at start-up
    from concurrent.futures import ProcessPoolExecutor  # not at start-up: a pool only here

    from packproof.crypto import verify_many  # not at start-up: cryptography

    workers = min(os.cpu_count() or 1, 8)
    if workers == 1 or len(checks) < 5000:
        return verify_many(checks)
    size = -(-len(checks) // workers)
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(verify_many, [checks[k:k + size] for k in range(0, len(checks), size)])
        return [ok for part in parts for ok in part]


def verify_certificate_file(path: Path, trusted: bytes | None, log_keys: list[VerifierKey],
                            witnessed: tuple[list[WitnessKey], int] | None,
                            on_chain: tuple[str, str] | None = None) -> None:
    """Every claim of the certificate recomputed from the readings it carries (api/certificate/verify.py);
    each failed check named, exit 1 if any. With `on_chain` (--eth-rpc, --contract) the carried anchor is
    then looked up on chain (a certificate without one: its checkpoint, as `verify ID --eth-rpc` does)."""
    from packproof.api.certificate.document import (  # not at start-up: pydantic models
        MAX_CERTIFICATE_BYTES,
        PackCertificate,
        parse_certificate,
    )
    from packproof.api.certificate.verify import verify_certificate  # not at start-up: every stage

    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CERTIFICATE_BYTES + 1)
    except OSError as exc:
        fail(Exit.BAD_INPUT, f"cannot read certificate {path}: {exc.strerror or exc}")
    try:
        cert = parse_certificate(raw)
    except ValueError as exc:
        fail(Exit.BAD_INPUT, f"certificate {path}: {exc}")
    broken: list[str] = []
    for verdict in verify_certificate(cert, trusted, log_keys, _pooled_signatures):
        out.print(f"pack {verdict.device_id}", highlight=False)
        for c in verdict.checks:
            mark = "[green]ok  [/]" if c.ok else ("[yellow]skip[/]" if c.ok is None else "[red]FAIL[/]")
            out.print(f"  {mark} {c.name:24} {c.detail}", highlight=False)
        broken += [f"{verdict.device_id}: {c.name}" for c in verdict.checks if c.ok is False]
    if broken:
        fail(Exit.INVALID, f"certificate does not hold: {', '.join(broken[:10])}"
                           + (f" and {len(broken) - 10} more" if len(broken) > 10 else ""))
    packs = [cert] if isinstance(cert, PackCertificate) else cert.packs
    if witnessed is not None:
        for note in dict.fromkeys(p.evidence.log.checkpoint for p in packs):
            _check_witnesses(note, *witnessed)
    out.print("[green]certificate holds: every claim recomputed from its readings[/]")
    if on_chain is not None:  # each distinct anchor (or unanchored checkpoint) of the packs once
        for p in {(p.anchor.size, p.anchor.root) if p.anchor else p.evidence.log.checkpoint: p
                  for p in packs}.values():
            head = _head_of_note(p.evidence.log.checkpoint)
            if p.anchor is None:
                out.print(f"pack {p.subject.device_id}: the certificate carries no anchor (not anchored when "
                          "issued); looking for one on chain", highlight=False)
                check_anchor(head, None, *on_chain)
            else:
                check_certificate_anchor(p.anchor, head.origin, *on_chain)
