"""`packproof monitor`: follow a packproof log's checkpoints and alarm on a fork or a rollback.

    packproof monitor --api http://host:8000 --log-key VKEY --state monitor.json [--once] [--interval S]
    packproof monitor --tiles https://host/log --log-key VKEY --state monitor.json

Each round fetches the checkpoint (GET /checkpoint, or `<tiles>/checkpoint` of a static C2SP
tlog-tiles directory), checks the log key's signature, and against the checkpoint saved in
--state gets the consistency proof: GET /log/consistency?from=OLD&to=NEW, or computed here from
the hash tiles at the new size (packproof.tiles; any tile server may lie, the proof is checked
against the two signed roots all the same). anchor/monitor.py judges. A verified extension
replaces the saved checkpoint (written to a temporary file, fsynced and renamed over the old one,
so a crash leaves the old or the new state, never half).
An alarm prints one line naming both sizes and roots and ends the monitor with exit 1, leaving
the saved checkpoint as it was, so the next run alarms again. A log unreachable for a round is
reported and retried (with --once: exit 3).
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from packproof.app.cli.common import Exit, err, fail, out
from packproof.errors import NoteError, ProofError

if TYPE_CHECKING:  # imported where used: `packproof --help` stays quick
    import httpx

    from packproof.anchor.note import VerifierKey
    from packproof.anchor.tlog_checkpoint import Checkpoint


class Unreachable(Exception):
    """This round could not fetch what it needs from the log (said in the message)."""


def _load_state(path: Path) -> Checkpoint | None:
    from packproof.anchor.tlog_checkpoint import parse_checkpoint  # not at start-up: cryptography

    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        return parse_checkpoint(doc["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError, NoteError) as exc:
        fail(Exit.BAD_INPUT, f"--state {path}: not a monitor state file ({type(exc).__name__}: {exc})")


def _save_state(path: Path, cp: Checkpoint, note: str) -> None:
    doc = {"origin": cp.origin, "size": cp.size, "root": base64.b64encode(cp.root).decode(),
           "checkpoint": cp.body(), "note": note, "saved_at": time.time()}
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        json.dump(doc, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _get(client: httpx.Client, url: str) -> httpx.Response:
    import httpx  # not at start-up: httpx

    try:
        return client.get(url)
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach {url}: {type(exc).__name__} {exc}".strip()) from None


def _tiles_proof(client: httpx.Client, base: str, m: int, n: int) -> list[bytes]:
    """PROOF(m, n) from the static directory's hash tiles at size n (c2sp.org/tlog-tiles)."""
    from packproof import tiles  # not at start-up: the tile math is only for --tiles

    found: dict[tuple[int, int], bytes] = {}
    for level, index in sorted(tiles.needed_for_consistency(m, n)):
        url = f"{base}/{tiles.tile_path(level, index, tiles.tile_width(level, index, n))}"
        r = _get(client, url)
        if r.status_code != 200:
            raise Unreachable(f"{url} answered {r.status_code}")
        found[(level, index)] = r.content
    try:
        return tiles.consistency_proof(m, n, found)
    except ProofError as exc:  # a short or missing tile: no proof, so conclude() reports what it cannot rule out
        err.print(f"monitor: tiles at {base} do not give a proof from {m} to {n}: {exc}", highlight=False)
        return []


def _proof(client: httpx.Client, base: str, m: int, n: int) -> list[bytes]:
    url = f"{base}/log/consistency?from={m}&to={n}"
    r = _get(client, url)
    if r.status_code != 200:
        raise Unreachable(f"{url} answered {r.status_code}: {r.text[:200]}")
    try:
        doc: Any = r.json()
        if doc.get("from") != m or doc.get("to") != n or not isinstance(doc.get("proof"), list):
            raise ValueError(f"not the proof asked for (from {doc.get('from')!r}, to {doc.get('to')!r})")
        return [base64.b64decode(p, validate=True) for p in doc["proof"]]
    except (ValueError, TypeError, AttributeError) as exc:
        # a malformed answer is no proof: conclude() then reports the fork it cannot rule out
        err.print(f"monitor: {url}: {exc}", highlight=False)
        return []


def _round(client: httpx.Client, base: str, key: VerifierKey, state: Path, static: bool) -> str | None:
    """One look at the log: None when all holds (the state advanced or stayed), else the alarm line."""
    from packproof.anchor.monitor import (  # not at start-up: cryptography
        Advance,
        Alarm,
        NeedProof,
        assess,
        conclude,
        read_checkpoint,
    )

    r = _get(client, f"{base}/checkpoint")
    if r.status_code == 404 and not static:
        out.print("monitor: the log has no checkpoint yet", highlight=False)
        return None
    if r.status_code != 200:
        raise Unreachable(f"{base}/checkpoint answered {r.status_code}: {r.text[:200]}")
    new = read_checkpoint(r.content, key)
    if isinstance(new, Alarm):
        return new.line
    saved = _load_state(state)
    verdict = assess(saved, new)
    if isinstance(verdict, NeedProof) and saved is not None:
        prove = _tiles_proof if static else _proof
        proof = prove(client, base, verdict.old, verdict.new) if verdict.old else []
        verdict = conclude(saved, new, proof)
    if isinstance(verdict, Alarm):
        return verdict.line
    if isinstance(verdict, Advance):
        _save_state(state, new, r.text)
        was = f"from size {saved.size} " if saved else ""
        out.print(f"monitor: {new.origin} {was}to size {new.size} root {base64.b64encode(new.root).decode()}: "
                  "consistent", highlight=False)
    return None


def monitor(
    api: Annotated[str | None, typer.Option("--api", help="Base URL of the packproof API (GET /checkpoint, "
                                                         "GET /log/consistency).")] = None,
    tiles_url: Annotated[str | None, typer.Option("--tiles", help="Base URL of the log's static C2SP tlog-tiles "
                                                               "directory (checkpoint, tile/...), instead of --api.")]
    = None,
    state: Annotated[Path | None, typer.Option("--state", help="JSON file keeping the last verified checkpoint "
                                                               "(made on the first run).")] = None,
    log_key: Annotated[str | None, typer.Option("--log-key", help="The log's verifier key (its checkpoints' signer; "
                                                                 "origin = key name).")] = None,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit (0 holds, 1 alarm, 3 unreachable).")]
    = False,
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="Seconds between rounds.")] = 10.0,
) -> None:
    """Follow the log's checkpoints; alarm (exit 1, one line naming both sizes and roots) on a fork or rollback."""
    import httpx  # not at start-up: httpx

    from packproof.anchor.note import VerifierKey  # not at start-up: cryptography

    if (api is None) == (tiles_url is None):
        fail(Exit.BAD_INPUT, "give one of --api URL or --tiles URL")
    if state is None or log_key is None:
        fail(Exit.BAD_INPUT, "packproof monitor needs --state FILE and --log-key VKEY")
    try:
        key = VerifierKey.parse(log_key)
    except NoteError as exc:
        fail(Exit.BAD_INPUT, f"--log-key: {exc}")
    if not state.parent.is_dir():
        fail(Exit.BAD_INPUT, f"--state {state}: directory {state.parent} does not exist")
    _load_state(state)  # a bad state file is bad input now, not after the first fetch
    base = (api or tiles_url or "").rstrip("/")
    with httpx.Client(timeout=10) as client:
        while True:
            try:
                alarm = _round(client, base, key, state, static=tiles_url is not None)
            except Unreachable as exc:
                if once:
                    fail(Exit.UNREACHABLE, str(exc))
                err.print(f"monitor: {exc}; trying again in {interval:g} s", highlight=False)
                alarm = None
            if alarm is not None:
                fail(Exit.INVALID, alarm)
            if once:
                return
            time.sleep(interval)
